/* http_xff: the client's address from an X-Forwarded-For header, as a
 * pure function of the header's text (no socket, no lws), so that it can
 * be fuzzed alone. core/http.c calls it only for a request whose peer is
 * the configured trusted proxy. */
#ifndef GALARELAY_HTTP_XFF_H
#define GALARELAY_HTTP_XFF_H

#include <stddef.h>

/* The last entry of the comma-separated list xff (the address the proxy
 * itself saw: nginx appends it), without surrounding spaces or tabs, into
 * out as a string. Returns 0, or -EINVAL with out untouched when that entry is
 * empty or does not fit in len bytes. */
int http_xff_last(const char *xff, char *out, size_t len);

#endif
