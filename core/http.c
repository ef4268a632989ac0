/* http: libwebsockets' HTTP callback, the route table, and answering.
 *
 * Every HTTP request arrives in LWS_CALLBACK_HTTP on the loop thread. We
 * pick a route by prefix and hand it a struct http_request; the route calls
 * http_respond() now or later (a parked LL-HLS request). The answer lives
 * in the connection's per-session data until it is written: headers first,
 * then the body in slices, one slice per WRITEABLE callback, so one slow
 * reader never holds the loop. Bodies are borrowed and released exactly
 * once: when written, or when the connection closes first. */
#include "core/http.h"

#include <libwebsockets.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/http_xff.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/memguard.h"

#define HTTP_MAX_ROUTES 16
/* One write per WRITEABLE: large enough to fill a socket buffer quickly,
 * small enough that a thousand readers do not pin much memory. */
#define HTTP_SLICE 16384

struct http_route {
  const char *prefix;
  size_t prefix_len;
  http_route_fn fn;
};

static struct http_route routes[HTTP_MAX_ROUTES];
static int route_count;
static int open_connections;
static uint64_t origin_refused;

/* Per-connection state (lws allocates and zeroes it). */
struct http_session {
  struct lws *wsi;
  int head_only;
  int close_after; /* a refused newcomer: close once answered */
  /* the pending answer */
  int answering;
  int headers_sent;
  int status;
  char content_type[64];
  char *extra_headers; /* owned copy */
  const unsigned char *body;
  size_t body_len, body_off;
  void (*release)(void *);
  void *release_arg;
  /* a parked request */
  void (*park_close)(void *);
  void *park_arg;
};

int http_add_route(const char *prefix, http_route_fn fn) {
  if (route_count >= HTTP_MAX_ROUTES)
    return -ENOSPC;
  routes[route_count++] = (struct http_route){prefix, strlen(prefix), fn};
  return 0;
}

int http_open_connections(void) { return open_connections; }

void http_connection_destroyed(struct lws *wsi) {
  if (lws_get_opaque_user_data(wsi) == &open_connections) {
    lws_set_opaque_user_data(wsi, NULL);
    open_connections--;
  }
}

static void session_release_body(struct http_session *s) {
  if (s->release) {
    void (*release)(void *) = s->release;
    s->release = NULL;
    release(s->release_arg);
  }
  s->body = NULL;
  free(s->extra_headers);
  s->extra_headers = NULL;
}

static void session_reset(struct http_session *s) {
  session_release_body(s);
  s->answering = s->headers_sent = 0;
  s->body_len = s->body_off = 0;
  s->park_close = NULL;
  s->park_arg = NULL;
}

int http_respond(struct lws *wsi, int status, const char *content_type, const char *extra_headers, const void *body,
                 size_t len, void (*release)(void *), void *release_arg) {
  struct http_session *s = lws_wsi_user(wsi);
  if (!s || s->answering) {
    if (release)
      release(release_arg);
    return -EPIPE;
  }
  s->park_close = NULL; /* answered: the parker must not be told of a close */
  s->park_arg = NULL;
  s->answering = 1;
  s->status = status;
  snprintf(s->content_type, sizeof s->content_type, "%s", content_type ? content_type : "text/plain");
  s->extra_headers = extra_headers && *extra_headers ? strdup(extra_headers) : NULL;
  s->body = body;
  s->body_len = len;
  s->body_off = 0;
  s->release = release;
  s->release_arg = release_arg;
  lws_callback_on_writable(wsi);
  return 0;
}

int http_respond_copy(struct lws *wsi, int status, const char *content_type, const char *extra_headers,
                      const void *body, size_t len) {
  void *copy = malloc(len ? len : 1);
  if (!copy)
    return http_respond(wsi, 500, "text/plain", "", "out of memory\n", 14, NULL, NULL);
  memcpy(copy, body, len);
  return http_respond(wsi, status, content_type, extra_headers, copy, len, free, copy);
}

int http_respond_text(struct lws *wsi, int status, const char *text) {
  return http_respond_copy(wsi, status, "text/plain; charset=utf-8", "", text, strlen(text));
}

void http_park(struct lws *wsi, int timeout_s, void (*on_close)(void *arg), void *arg) {
  struct http_session *s = lws_wsi_user(wsi);
  if (!s)
    return;
  s->park_close = on_close;
  s->park_arg = arg;
  lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, timeout_s > 0 ? timeout_s : 1);
}

/* Extra headers come as "Name: value\r\n" lines; lws wants them one by one. */
static int add_extra_headers(struct lws *wsi, const char *lines, unsigned char **p, unsigned char *end) {
  const char *line = lines;
  while (line && *line) {
    const char *eol = strstr(line, "\r\n");
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    const char *colon = memchr(line, ':', len);
    if (colon) {
      char name[128];
      size_t nlen = (size_t)(colon - line);
      if (nlen + 2 > sizeof name)
        return -1;
      memcpy(name, line, nlen);
      name[nlen] = ':';
      name[nlen + 1] = '\0';
      const char *value = colon + 1;
      while (*value == ' ')
        value++;
      int vlen = (int)(len - (size_t)(value - line));
      if (lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)value, vlen, p, end))
        return -1;
    }
    line = eol ? eol + 2 : NULL;
  }
  return 0;
}

static int write_headers(struct lws *wsi, struct http_session *s) {
  unsigned char buf[LWS_PRE + 2048];
  unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  if (lws_add_http_common_headers(wsi, (unsigned int)s->status, s->content_type, (lws_filepos_t)s->body_len, &p, end))
    return -1;
  if (s->extra_headers && add_extra_headers(wsi, s->extra_headers, &p, end))
    return -1;
  if (lws_finalize_write_http_header(wsi, start, &p, end))
    return -1;
  s->headers_sent = 1;
  return 0;
}

/* Returns <0 to close the connection, 0 to go on. */
static int write_some(struct lws *wsi, struct http_session *s) {
  if (!s->answering)
    return 0;
  if (!s->headers_sent) {
    if (write_headers(wsi, s) < 0)
      return -1;
    if (s->head_only)
      s->body_off = s->body_len;
    if (s->body_off < s->body_len) {
      lws_callback_on_writable(wsi);
      return 0;
    }
  } else if (s->body_off < s->body_len) {
    unsigned char slice[LWS_PRE + HTTP_SLICE];
    size_t n = s->body_len - s->body_off;
    if (n > HTTP_SLICE)
      n = HTTP_SLICE;
    memcpy(slice + LWS_PRE, s->body + s->body_off, n);
    s->body_off += n;
    int final = s->body_off == s->body_len;
    if (lws_write(wsi, slice + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
      return -1;
    if (!final) {
      lws_callback_on_writable(wsi);
      return 0;
    }
  }
  session_reset(s);
  if (s->close_after)
    return -1;
  if (lws_http_transaction_completed(wsi))
    return -1;
  return 0;
}

static const char *request_method(struct lws *wsi, char *path, size_t size) {
  static const struct {
    enum lws_token_indexes token;
    const char *name;
  } methods[] = {
    {WSI_TOKEN_GET_URI, "GET"},
    {WSI_TOKEN_POST_URI, "POST"},
    {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
#if defined(LWS_WITH_HTTP_UNCOMMON_HEADERS) || 1
    {WSI_TOKEN_HEAD_URI, "HEAD"},
#endif
  };
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    if (lws_hdr_total_length(wsi, methods[i].token) > 0 && lws_hdr_copy(wsi, path, (int)size, methods[i].token) > 0)
      return methods[i].name;
  }
  return NULL;
}

/* lws keeps each query argument as a fragment (and lws_hdr_copy joins them
 * with ','): rebuild the query string as the client sent it, '&'-joined. */
static void collect_query(struct lws *wsi, char *out, size_t size) {
  size_t used = 0;
  out[0] = '\0';
  for (int i = 0;; i++) {
    char frag[512];
    int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
    if (n <= 0)
      break;
    if (used + (used ? 1 : 0) + (size_t)n + 1 > size)
      break; /* an over-long query is cut at an argument boundary */
    if (used)
      out[used++] = '&';
    memcpy(out + used, frag, (size_t)n + 1);
    used += (size_t)n;
  }
}

void http_client_addr(struct lws *wsi, const char *trusted_proxy, char *out, size_t len) {
  if (!len)
    return;
  if (!lws_get_peer_simple(wsi, out, len))
    snprintf(out, len, "unknown");
  if (!strncmp(out, "::ffff:", 7)) /* IPv4 on a dual-stack socket */
    memmove(out, out + 7, strlen(out + 7) + 1);
  char xff[1024]; /* a longer chain is not believed: the proxy's address stays */
  if (!trusted_proxy || !*trusted_proxy || strcmp(trusted_proxy, out) ||
      lws_hdr_copy(wsi, xff, sizeof xff, WSI_TOKEN_X_FORWARDED_FOR) <= 0)
    return;
  http_xff_last(xff, out, len); /* none usable: the proxy's address stays */
}

/* The authority of an http(s) origin into out, without the scheme's default
 * port; false for any other scheme (and for "null"). */
static bool origin_authority(const char *origin, char *out, size_t size) {
  const char *def;
  if (!strncasecmp(origin, "http://", 7)) {
    origin += 7;
    def = ":80";
  } else if (!strncasecmp(origin, "https://", 8)) {
    origin += 8;
    def = ":443";
  } else {
    return false;
  }
  size_t n = strcspn(origin, "/");
  if (n == 0 || n >= size || origin[n + (origin[n] == '/')] != '\0')
    return false; /* an origin has no path */
  memcpy(out, origin, n);
  out[n] = '\0';
  size_t dl = strlen(def);
  if (n > dl && !strcasecmp(out + n - dl, def))
    out[n - dl] = '\0';
  return true;
}

/* Host without a default port (":80" or ":443": which one applies depends on
 * the origin's scheme, and the browser leaves it out of Origin anyway). */
static void host_authority(const char *host, const char *origin, char *out, size_t size) {
  snprintf(out, size, "%s", host);
  const char *def = !strncasecmp(origin, "https://", 8) ? ":443" : ":80";
  size_t n = strlen(out), dl = strlen(def);
  if (n > dl && !strcasecmp(out + n - dl, def))
    out[n - dl] = '\0';
}

bool http_origin_allowed(const char *origin, const char *host, const char *allowed) {
  if (!origin || !*origin)
    return true; /* not a browser: nothing to forge on someone's behalf */
  char a[256], h[256];
  if (host && *host && origin_authority(origin, a, sizeof a)) {
    host_authority(host, origin, h, sizeof h);
    if (!strcasecmp(a, h))
      return true;
  }
  for (const char *p = allowed ? allowed : ""; *p;) {
    p += strspn(p, " \t,");
    size_t n = strcspn(p, ",");
    size_t len = n;
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '/'))
      len--;
    if ((len == 1 && p[0] == '*') || (len && len == strlen(origin) && !strncasecmp(p, origin, len)))
      return true;
    p += n;
  }
  return false;
}

/* A client's header as one log token: blanks and control bytes become '?',
 * so it cannot end its key=value field or forge a line. */
static const char *log_safe(const char *in, char *out, size_t size) {
  size_t i = 0;
  for (; in[i] && i + 1 < size; i++)
    out[i] = (unsigned char)in[i] > 0x20 && (unsigned char)in[i] < 0x7f ? in[i] : '?';
  out[i] = '\0';
  return out;
}

/* Answer the handshake 403 instead of the upgrade; the value the filter
 * callback returns to refuse. One log line per thousand (the first one
 * included): the metric counts them all. */
static int ws_refuse(struct lws *wsi, const char *origin, const char *host) {
  if (origin_refused++ % 1000 == 0) {
    char addr[64], o[256], h[256];
    http_client_addr(wsi, NULL, addr, sizeof addr);
    log_warn("http",
             "websocket refused: origin not allowed origin=%s host=%s peer=%s refused=%" PRIu64
             " (see [server] allowed_origins)",
             log_safe(origin, o, sizeof o), log_safe(host, h, sizeof h), addr, origin_refused);
  }
  lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, NULL); /* an answer, not a reset */
  return -1;
}

int http_ws_check_origin(struct lws *wsi, const char *allowed) {
  char origin[256] = "", host[256] = "";
  if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) >= (int)sizeof origin ||
      lws_hdr_total_length(wsi, WSI_TOKEN_HOST) >= (int)sizeof host)
    return ws_refuse(wsi, "(too long)", "");
  if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0)
    lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HOST) > 0)
    lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST);
  if (http_origin_allowed(origin, host, allowed))
    return 0;
  return ws_refuse(wsi, origin, host);
}

uint64_t http_ws_origin_refused(void) { return origin_refused; }

struct http_stats {
  uint64_t origin_refused;
};

void http_metrics(struct buf *out) {
  static const struct metric rows[] = {
      METRIC_FIELD("galarelay_websocket_origin_refused_total", METRIC_COUNTER,
                   "Websocket handshakes answered 403: their Origin is neither the same origin nor in [server] "
                   "allowed_origins.",
                   struct http_stats, origin_refused),
  };
  struct http_stats st = {origin_refused};
  metrics_write(out, rows, METRICS_COUNT(rows), &st);
}

/* What the daemon tells the HTTP side (http_configure, http_set_stopping):
 * kept here so that core/ knows nothing of the config or the daemon. Loop
 * thread only, like everything in this file. */
static struct http_settings settings = {.max_connections = 1 << 30};
static bool stopping;

void http_configure(const struct http_settings *s) {
  settings = *s;
  settings.trusted_proxy[sizeof settings.trusted_proxy - 1] = '\0';
}

void http_set_stopping(void) { stopping = true; }

static int handle_request(struct lws *wsi, struct http_session *s) {
  struct app *app = lws_context_user(lws_get_context(wsi));
  char path[1024], query[1024] = "", addr[64] = "";
  session_reset(s);
  s->wsi = wsi;
  s->close_after = 0;
  const char *method = request_method(wsi, path, sizeof path);
  if (!method) {
    http_respond_text(wsi, 405, "method not allowed\n");
    return 0;
  }
  s->head_only = strcmp(method, "HEAD") == 0;
  collect_query(wsi, query, sizeof query);
  http_client_addr(wsi, settings.trusted_proxy, addr, sizeof addr);

  if (stopping) {
    http_respond_text(wsi, 503, "shutting down\n");
    return 0;
  }
  if (!lws_get_opaque_user_data(wsi)) {
    /* A connection's first request: count it until the connection closes
     * (per-session data lives per request on keep-alive, the opaque
     * pointer lives per connection). Past the limit, refuse newcomers and
     * close them, rather than slow everyone already watching. */
    lws_set_opaque_user_data(wsi, &open_connections);
    open_connections++;
    bool operator_path = strcmp(path, "/healthz") == 0 || strcmp(path, "/metrics") == 0;
    bool over = open_connections > settings.max_connections || memguard_over_limit();
    if (over && !operator_path) { /* health checks and metrics must answer most of all under load */
      s->close_after = 1;
      http_respond_copy(wsi, 503, "text/plain", "Retry-After: 2\r\nConnection: close\r\n", "busy, retry\n", 12);
      return 0;
    }
  }

  struct http_request req = {app, wsi, method, path, query, addr};
  for (int i = 0; i < route_count; i++) {
    const struct http_route *r = &routes[i];
    size_t n = r->prefix_len;
    /* "/healthz" matches "/healthz" only; "/hls/" matches anything below. */
    bool match = r->prefix[n - 1] == '/' ? strncmp(path, r->prefix, n) == 0 : strcmp(path, r->prefix) == 0;
    if (match) {
      r->fn(&req);
      return 0;
    }
  }
  http_respond_text(wsi, 404, "not found\n");
  return 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  struct http_session *s = user;
  switch (reason) {
  case LWS_CALLBACK_HTTP: return handle_request(wsi, s);
  case LWS_CALLBACK_HTTP_BODY: return 0; /* no route takes a body yet: ignore it */
  case LWS_CALLBACK_HTTP_BODY_COMPLETION: return 0;
  case LWS_CALLBACK_HTTP_WRITEABLE:
    if (!s)
      return -1;
    return write_some(wsi, s);
  case LWS_CALLBACK_CLOSED_HTTP:
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    if (s) {
      if (s->park_close) {
        void (*cb)(void *) = s->park_close;
        s->park_close = NULL;
        cb(s->park_arg);
      }
      session_reset(s);
    }
    break;
  default: break;
  }
  (void)in;
  (void)len;
  return 0;
}

static const struct lws_protocols http_proto = {
    .name = "http",
    .callback = http_callback,
    .per_session_data_size = sizeof(struct http_session),
    .rx_buffer_size = 0,
};

const struct lws_protocols *http_protocol(void) { return &http_proto; }
