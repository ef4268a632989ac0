/* http: the HTTP side of the libwebsockets context (pages, API, metrics,
 * static files) and the small API other modules use to answer requests.
 *
 * Routing is a prefix table in http.c. A route handler either answers at
 * once with http_respond(), or parks the request (LL-HLS blocking reload)
 * with http_park() and answers later from the loop thread; if the client
 * leaves first, the park's on_close callback runs and the wsi must be
 * forgotten. Bodies are borrowed, never copied: `release(release_arg)` is
 * called once the body has been written or the connection has gone, so a
 * refcounted media buffer can be handed out to any number of viewers. */
#ifndef GALARELAY_HTTP_H
#define GALARELAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct lws;
struct lws_protocols;
struct app; /* the daemon's context (the lws context's user pointer); opaque here */

/* The daemon's settings for the HTTP side, set before the context serves and
 * again on every reload. */
struct http_settings {
  char trusted_proxy[64]; /* X-Forwarded-For is believed only from here; "" = nobody */
  int max_connections;    /* past it newcomers get 503, except /healthz and /metrics */
};
void http_configure(const struct http_settings *s);
/* From now on every request is answered 503 "shutting down". */
void http_set_stopping(void);

struct http_request {
  struct app *app;
  struct lws *wsi;
  const char *method;      /* "GET", "HEAD", "POST", "OPTIONS" */
  const char *path;        /* URI path, %-decoded, no query */
  const char *query;       /* raw query string without '?', "" if none */
  const char *client_addr; /* http_client_addr(): the viewer, also behind a trusted proxy */
};

/* What a route returns. */
enum {
  HTTP_DONE = 0,   /* http_respond() was called */
  HTTP_PARKED = 1, /* http_park() was called; answer later */
};

typedef int (*http_route_fn)(struct http_request *req);

/* Answer a request. `extra_headers` is "" or lines "Name: value\r\n".
 * Returns 0, or -EPIPE if the wsi can no longer be answered (release has
 * then already been called). */
int http_respond(struct lws *wsi, int status, const char *content_type, const char *extra_headers, const void *body,
                 size_t len, void (*release)(void *), void *release_arg);
/* Convenience: copy a small body (error pages, JSON). */
int http_respond_copy(struct lws *wsi, int status, const char *content_type, const char *extra_headers,
                      const void *body, size_t len);
int http_respond_text(struct lws *wsi, int status, const char *text);

/* Park a request; on_close(arg) runs if the client goes away before the
 * answer. Keeps the connection alive for up to timeout_s seconds. */
void http_park(struct lws *wsi, int timeout_s, void (*on_close)(void *arg), void *arg);

/* Register a handler for every path starting with prefix (e.g. "/hls/").
 * Call before the context is created; the table is small and fixed: 0, or
 * -ENOSPC when it is full. */
int http_add_route(const char *prefix, http_route_fn fn);

/* The lws protocol entry for HTTP; http_protocols_init() fills the array
 * the context is created with: websocket protocols first (a client that
 * names none is bound to protocols[0]), then HTTP, then the terminator. */
const struct lws_protocols *http_protocol(void);

/* The client's address into out: the peer's ("unknown" if it cannot be
 * read), or, only when the peer is trusted_proxy (config server.
 * trusted_proxy; "" = none), the last X-Forwarded-For entry: the address
 * the proxy itself saw (nginx appends it). IPv4 on a dual-stack socket
 * loses its "::ffff:" prefix, so it compares equal to a plain IPv4
 * trusted_proxy. Works on HTTP and websocket connections alike. */
void http_client_addr(struct lws *wsi, const char *trusted_proxy, char *out, size_t len);

/* The websocket Origin rule ([server] allowed_origins). A handshake may go
 * on when it has no Origin (not a browser: nothing is done on a viewer's
 * behalf), when Origin is the same origin as Host (http or https, default
 * ports left out), or when `allowed` (comma-separated origins, "*" = any)
 * lists it. Case-insensitive. */
bool http_origin_allowed(const char *origin, const char *host, const char *allowed);
/* Applies http_origin_allowed to wsi's Origin and Host headers, from
 * LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: 0 to go on, or (logged, counted,
 * answered 403 before the upgrade) the nonzero value that callback must
 * return to refuse. */
int http_ws_check_origin(struct lws *wsi, const char *allowed);
/* Handshakes refused for their Origin since start. */
uint64_t http_ws_origin_refused(void);
/* The HTTP side's families for /metrics (the Origin refusals). */
void http_metrics(struct buf *out);

/* Open HTTP connections (for /metrics and the connection limit). */
int http_open_connections(void);

/* lws delivers a connection's end (LWS_CALLBACK_WSI_DESTROY) only to
 * protocols[0], whatever protocol served it; that protocol's callback
 * forwards it here so keep-alive connections are counted until they close. */
void http_connection_destroyed(struct lws *wsi);

#endif
