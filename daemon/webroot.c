/* webroot: see webroot.h. A file is read once into a refcounted buffer
 * that every answer borrows (http_respond's release), so hls.min.js is not
 * read and copied per request. The cache is keyed by the file's real path
 * and checked against the file's identity (device, inode, size, mtime) at
 * every request: a deploy that replaces or rewrites a file is served from
 * the next request on (a stat per request, no read), while answers still
 * being written keep the old buffer until they finish. Bounded: at most
 * WEBROOT_CACHE_FILES files and WEBROOT_CACHE_BYTES bytes; a file that
 * does not fit is read for its request alone (as before the cache), and
 * counted. Loop thread only. */
#include "daemon/webroot.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/app.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"

#define WEBROOT_MAX_FILE (8 * 1024 * 1024)
#define WEBROOT_CACHE_FILES 256
#define WEBROOT_CACHE_BYTES (64 * 1024 * 1024)

/* Headers of every answer from the web root. The pages load their scripts,
 * styles and the player from here; hls.js plays through MediaSource
 * (blob: media) and runs its demuxer in a blob: worker; the comment
 * websocket is same-origin (ws:/wss:, which CSP 'self' does not cover in
 * every browser). frame-ancestors keeps the pages out of others' frames. */
#define WEBROOT_HEADERS                                                                                                \
  "Cache-Control: no-cache\r\n"                                                                                        \
  "X-Content-Type-Options: nosniff\r\n"                                                                                \
  "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "           \
  "media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; "                  \
  "base-uri 'none'; form-action 'self'; frame-ancestors 'self'\r\n"

struct webroot_file {
  int refs;   /* the cache's own + one per answer being written */
  char *path; /* real path: the key */
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  unsigned char *data;
  struct webroot_file *next; /* the cache's list, NULL once it left the cache */
};

static struct webroot_file *cache;
static int cache_files;
static size_t cache_bytes;
static struct webroot_stats stats;

static const struct {
  const char *ext;
  const char *type;
} mime_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".webp", "image/webp"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},
    {".m3u8", "application/vnd.apple.mpegurl"},
    {".mp4", "video/mp4"},
    {".m4s", "video/iso.segment"},
};

const char *webroot_mime_type(const char *path) {
  const char *dot = strrchr(path, '.');
  const char *slash = strrchr(path, '/');
  if (dot && (!slash || dot > slash)) {
    for (size_t i = 0; i < sizeof mime_types / sizeof mime_types[0]; i++)
      if (strcasecmp(dot, mime_types[i].ext) == 0)
        return mime_types[i].type;
  }
  return "application/octet-stream";
}

bool webroot_path_is_safe(const char *path) {
  if (path[0] != '/')
    return false;
  for (const char *p = path; *p; p++) {
    if ((unsigned char)*p < 0x20 || *p == '\\' || *p == 0x7f)
      return false;
  }
  /* walk segments: none may be empty (except the trailing one), "." or ".." */
  const char *seg = path + 1;
  while (*seg) {
    const char *end = strchr(seg, '/');
    size_t len = end ? (size_t)(end - seg) : strlen(seg);
    if (len == 0 && end)
      return false;
    if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
      return false;
    if (!end)
      break;
    seg = end + 1;
  }
  return true;
}

static void file_unref(void *arg) {
  struct webroot_file *f = arg;
  if (--f->refs > 0)
    return;
  free(f->path);
  free(f->data);
  free(f);
}

static void cache_remove(struct webroot_file *f) {
  for (struct webroot_file **pp = &cache; *pp; pp = &(*pp)->next) {
    if (*pp == f) {
      *pp = f->next;
      f->next = NULL;
      cache_files--;
      cache_bytes -= (size_t)f->size;
      file_unref(f);
      return;
    }
  }
}

static bool same_file(const struct webroot_file *f, const struct stat *st) {
  return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
         f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* The whole file behind fd, one reference for the caller; NULL on error. */
static struct webroot_file *file_read(int fd, const char *real, const struct stat *st) {
  struct webroot_file *f = calloc(1, sizeof *f);
  size_t size = (size_t)st->st_size, got = 0;
  if (f) {
    f->data = malloc(size ? size : 1);
    f->path = strdup(real);
  }
  while (f && f->data && got < size) {
    ssize_t n = read(fd, f->data + got, size - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  if (!f || !f->data || !f->path || got != size) {
    if (f) {
      free(f->data);
      free(f->path);
    }
    free(f);
    return NULL;
  }
  f->refs = 1;
  f->dev = st->st_dev;
  f->ino = st->st_ino;
  f->size = st->st_size;
  f->mtime = st->st_mtim;
  stats.reads++;
  return f;
}

/* The cached buffer of real (read again if the file changed), one
 * reference for the caller; NULL on error. */
static struct webroot_file *file_get(int fd, const char *real, const struct stat *st) {
  for (struct webroot_file *f = cache; f; f = f->next) {
    if (strcmp(f->path, real) != 0)
      continue;
    if (same_file(f, st)) {
      f->refs++;
      stats.hits++;
      return f;
    }
    cache_remove(f); /* changed on disk: answers in flight keep the old bytes */
    break;
  }
  struct webroot_file *f = file_read(fd, real, st);
  if (!f)
    return NULL;
  if (cache_files < WEBROOT_CACHE_FILES && cache_bytes + (size_t)st->st_size <= WEBROOT_CACHE_BYTES) {
    f->refs++; /* the cache's */
    f->next = cache;
    cache = f;
    cache_files++;
    cache_bytes += (size_t)st->st_size;
  } else {
    stats.uncached++; /* drop policy: past the bound, read for this request alone */
  }
  return f;
}

static int not_found(struct http_request *req) {
  return http_respond_copy(req->wsi, 404, "text/plain; charset=utf-8", WEBROOT_HEADERS, "not found\n", 10);
}

static int serve_file(struct http_request *req, const char *root, const char *rel) {
  char root_real[PATH_MAX], wanted[PATH_MAX * 2], real[PATH_MAX];
  if (!realpath(root, root_real))
    return not_found(req);
  snprintf(wanted, sizeof wanted, "%s/%s", root_real, rel);
  /* realpath resolves symlinks: whatever it names must still be inside. */
  size_t rl = strlen(root_real);
  if (!realpath(wanted, real) || strncmp(real, root_real, rl) != 0 || (real[rl] != '/' && real[rl] != '\0'))
    return not_found(req);
  int fd = open(real, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return not_found(req);
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > WEBROOT_MAX_FILE) {
    close(fd);
    return not_found(req);
  }
  struct webroot_file *f = file_get(fd, real, &st);
  close(fd);
  if (!f)
    return http_respond_text(req->wsi, 500, "read error\n");
  return http_respond(req->wsi, 200, webroot_mime_type(real), WEBROOT_HEADERS, f->data, (size_t)f->size, file_unref, f);
}

void webroot_stats(struct webroot_stats *out) {
  *out = stats;
  out->cached_files = (uint32_t)cache_files;
  out->cached_bytes = cache_bytes;
}

void webroot_metrics(struct buf *out) {
  static const struct metric rows[] = {
      METRIC_FIELD("galarelay_webroot_reads_total", METRIC_COUNTER,
                   "Static files read from disk (once per file and change).", struct webroot_stats, reads),
      METRIC_FIELD("galarelay_webroot_hits_total", METRIC_COUNTER, "Static answers from a buffer already in memory.",
                   struct webroot_stats, hits),
      METRIC_FIELD("galarelay_webroot_uncached_total", METRIC_COUNTER,
                   "Static files read for one request: the cache was full.", struct webroot_stats, uncached),
      METRIC_FIELD("galarelay_webroot_cached_bytes", METRIC_GAUGE, "Bytes of static files held in memory.",
                   struct webroot_stats, cached_bytes),
  };
  struct webroot_stats st;
  webroot_stats(&st);
  metrics_write(out, rows, METRICS_COUNT(rows), &st);
}

void webroot_free(void) {
  while (cache)
    cache_remove(cache);
}

int webroot_route(struct http_request *req) {
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
    return http_respond_text(req->wsi, 405, "method not allowed\n");
  const char *root = req->app->cfg->server.web_root;
  const char *path = req->path;
  if (!webroot_path_is_safe(path))
    return not_found(req);
  /* Pages that take the channel from their URL. */
  if (strcmp(path, "/") == 0)
    return serve_file(req, root, "index.html");
  if (strncmp(path, "/watch/", 7) == 0 && path[7] && !strchr(path + 7, '/'))
    return serve_file(req, root, "watch.html");
  if (strncmp(path, "/moderate/", 10) == 0 && path[10] && !strchr(path + 10, '/'))
    return serve_file(req, root, "moderate.html");
  if (path[strlen(path) - 1] == '/')
    return not_found(req); /* no directory listings */
  return serve_file(req, root, path + 1);
}
