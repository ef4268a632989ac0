/* webroot: static files (pages, scripts, the vendored player) from the
 * configured web root. No directory listings, nothing outside the root
 * (symlinks included), MIME types by extension. /watch/CHANNEL and
 * /moderate/CHANNEL are pages of the web root that read the channel from
 * their own URL.
 *
 * Every file is read once into a shared, refcounted buffer that answers
 * borrow; a file changed on disk (another inode, size or mtime) is read
 * again at its next request, so a deploy needs no restart or SIGHUP.
 * Every answer carries X-Content-Type-Options: nosniff and a
 * Content-Security-Policy (frame-ancestors 'self'). Loop thread only. */
#ifndef GALARELAY_WEBROOT_H
#define GALARELAY_WEBROOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/http.h"

struct webroot_stats {
  uint64_t reads;        /* files read from disk */
  uint64_t hits;         /* answers from a buffer already read */
  uint64_t uncached;     /* files read for one request: the cache was full */
  uint32_t cached_files; /* now */
  size_t cached_bytes;   /* now */
};

/* The route for "/" (registered last: every other prefix wins). */
int webroot_route(struct http_request *req);

/* MIME type for a file name by its extension; "application/octet-stream"
 * when unknown. */
const char *webroot_mime_type(const char *path);

/* Whether the decoded URL path is safe to map under a root (no "..", no
 * empty or dot segments, no backslash or control characters). */
bool webroot_path_is_safe(const char *path);

/* Counters since start, and what the cache holds now. */
void webroot_stats(struct webroot_stats *out);

/* Prometheus lines: galarelay_webroot_{reads,hits,uncached}_total,
 * galarelay_webroot_cached_bytes. */
struct buf;
void webroot_metrics(struct buf *out);

/* Drop the cache (at exit, once no answer is being written). */
void webroot_free(void);

#endif
