/* webroot: see webroot.h. Files are read whole per request: the pages and
 * scripts are small and the HTTP cache in front of the relay (docs/) takes
 * the repeat traffic; media never comes from here. */
#include "relay/webroot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "relay/app.h"
#include "relay/log.h"

#define WEBROOT_MAX_FILE (8 * 1024 * 1024)

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

int webroot_path_is_safe(const char *path) {
  if (path[0] != '/')
    return 0;
  for (const char *p = path; *p; p++) {
    if ((unsigned char)*p < 0x20 || *p == '\\' || *p == 0x7f)
      return 0;
  }
  /* walk segments: none may be empty (except the trailing one), "." or ".." */
  const char *seg = path + 1;
  while (*seg) {
    const char *end = strchr(seg, '/');
    size_t len = end ? (size_t)(end - seg) : strlen(seg);
    if (len == 0 && end)
      return 0;
    if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
      return 0;
    if (!end)
      break;
    seg = end + 1;
  }
  return 1;
}

static int serve_file(struct http_request *req, const char *root, const char *rel) {
  char root_real[PATH_MAX], wanted[PATH_MAX * 2], real[PATH_MAX];
  if (!realpath(root, root_real))
    return http_respond_text(req->wsi, 404, "not found\n");
  snprintf(wanted, sizeof wanted, "%s/%s", root_real, rel);
  /* realpath resolves symlinks: whatever it names must still be inside. */
  size_t rl = strlen(root_real);
  if (!realpath(wanted, real) || strncmp(real, root_real, rl) != 0 || (real[rl] != '/' && real[rl] != '\0'))
    return http_respond_text(req->wsi, 404, "not found\n");
  int fd = open(real, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return http_respond_text(req->wsi, 404, "not found\n");
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > WEBROOT_MAX_FILE) {
    close(fd);
    return http_respond_text(req->wsi, 404, "not found\n");
  }
  size_t size = (size_t)st.st_size;
  char *data = malloc(size ? size : 1);
  size_t got = 0;
  while (data && got < size) {
    ssize_t n = read(fd, data + got, size - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  if (!data || got != size) {
    free(data);
    return http_respond_text(req->wsi, 500, "read error\n");
  }
  return http_respond(req->wsi, 200, webroot_mime_type(real),
                      "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n", data, size, free, data);
}

int webroot_route(struct http_request *req) {
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
    return http_respond_text(req->wsi, 405, "method not allowed\n");
  const char *root = req->app->cfg->server.web_root;
  const char *path = req->path;
  if (!webroot_path_is_safe(path))
    return http_respond_text(req->wsi, 404, "not found\n");
  /* Pages that take the channel from their URL. */
  if (strcmp(path, "/") == 0)
    return serve_file(req, root, "index.html");
  if (strncmp(path, "/watch/", 7) == 0 && path[7] && !strchr(path + 7, '/'))
    return serve_file(req, root, "watch.html");
  if (strncmp(path, "/moderate/", 10) == 0 && path[10] && !strchr(path + 10, '/'))
    return serve_file(req, root, "moderate.html");
  if (path[strlen(path) - 1] == '/')
    return http_respond_text(req->wsi, 404, "not found\n"); /* no directory listings */
  return serve_file(req, root, path + 1);
}
