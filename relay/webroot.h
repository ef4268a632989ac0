/* webroot: static files (pages, scripts, the vendored player) from the
 * configured web root. No directory listings, nothing outside the root
 * (symlinks included), MIME types by extension. /watch/CHANNEL and
 * /moderate/CHANNEL are pages of the web root that read the channel from
 * their own URL. */
#ifndef GALARELAY_WEBROOT_H
#define GALARELAY_WEBROOT_H

#include "relay/http.h"

/* The route for "/" (registered last: every other prefix wins). */
int webroot_route(struct http_request *req);

/* MIME type for a file name by its extension; "application/octet-stream"
 * when unknown. */
const char *webroot_mime_type(const char *path);

/* 1 if the decoded URL path is safe to map under a root (no "..", no
 * empty or dot segments, no backslash or control characters). */
int webroot_path_is_safe(const char *path);

#endif
