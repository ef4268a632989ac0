/* Unit tests for daemon/webroot: a static file is read once into a shared
 * buffer that every answer borrows (two requests get the same bytes at the
 * same address, and the file is read once), a file changed on disk is read
 * again while an answer still being written keeps the old bytes, and every
 * answer carries the security headers. core/http is faked: http_respond
 * records the answer and holds the body until the test releases it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/app.h"
#include "core/http.h"
#include "daemon/webroot.h"

/* ---- fake core/http ---- */

struct answer {
  int status;
  char type[64];
  char headers[1024];
  const void *body;
  size_t len;
  void (*release)(void *);
  void *release_arg;
};
static struct answer last;

int http_respond(struct lws *wsi, int status, const char *content_type, const char *extra_headers, const void *body,
                 size_t len, void (*release)(void *), void *release_arg) {
  (void)wsi;
  last = (struct answer){.status = status, .body = body, .len = len, .release = release, .release_arg = release_arg};
  snprintf(last.type, sizeof last.type, "%s", content_type);
  snprintf(last.headers, sizeof last.headers, "%s", extra_headers);
  return 0;
}

int http_respond_copy(struct lws *wsi, int status, const char *content_type, const char *extra_headers,
                      const void *body, size_t len) {
  return http_respond(wsi, status, content_type, extra_headers, body, len, NULL, NULL);
}

int http_respond_text(struct lws *wsi, int status, const char *text) {
  return http_respond_copy(wsi, status, "text/plain", "", text, strlen(text));
}

/* The answer's body is written: give it back. */
static void done(struct answer *a) {
  if (a->release)
    a->release(a->release_arg);
  a->release = NULL;
}

/* ---- fixture ---- */

struct fixture {
  char root[64];
  struct config cfg;
  struct app app;
};

static void write_file(const char *dir, const char *name, const char *text) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  snprintf(f->root, sizeof f->root, "/tmp/test_webroot.XXXXXX");
  assert_non_null(mkdtemp(f->root));
  config_defaults(&f->cfg);
  snprintf(f->cfg.server.web_root, sizeof f->cfg.server.web_root, "%s", f->root);
  f->app.cfg = &f->cfg;
  char dir[128];
  snprintf(dir, sizeof dir, "%s/vendor", f->root);
  mkdir(dir, 0755);
  write_file(dir, "hls.min.js", "var Hls=function(){};/* the player */\n");
  write_file(f->root, "watch.html", "<!doctype html><title>watch</title>\n");
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  webroot_free();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

static struct answer get(struct fixture *f, const char *path) {
  struct http_request req = {
      .app = &f->app, .wsi = NULL, .method = "GET", .path = path, .query = "", .client_addr = "127.0.0.1"};
  memset(&last, 0, sizeof last);
  webroot_route(&req);
  return last;
}

static void assert_body(const struct answer *a, const char *text) {
  assert_int_equal(a->len, strlen(text));
  assert_memory_equal(a->body, text, a->len);
}

static void test_one_buffer_for_every_request(void **state) {
  struct fixture *f = *state;
  struct webroot_stats before, after;
  webroot_stats(&before);
  struct answer a = get(f, "/vendor/hls.min.js");
  struct answer b = get(f, "/vendor/hls.min.js"); /* while a is still being written */
  assert_int_equal(a.status, 200);
  assert_int_equal(b.status, 200);
  assert_string_equal(a.type, "text/javascript; charset=utf-8");
  assert_body(&a, "var Hls=function(){};/* the player */\n");
  assert_ptr_equal(a.body, b.body); /* borrowed, not copied */
  done(&a);
  done(&b);
  struct answer c = get(f, "/vendor/hls.min.js");
  assert_ptr_equal(c.body, b.body);
  done(&c);
  webroot_stats(&after);
  assert_int_equal(after.reads - before.reads, 1); /* read from disk once */
  assert_int_equal(after.hits - before.hits, 2);
  assert_int_equal(after.cached_files, 1);
  /* the pages: the same buffer under their every channel URL */
  struct answer w1 = get(f, "/watch/gala");
  struct answer w2 = get(f, "/watch/news");
  assert_body(&w1, "<!doctype html><title>watch</title>\n");
  assert_ptr_equal(w1.body, w2.body);
  done(&w1);
  done(&w2);
}

static void test_changed_file_is_read_again(void **state) {
  struct fixture *f = *state;
  char dir[128];
  snprintf(dir, sizeof dir, "%s/vendor", f->root);
  struct answer old = get(f, "/vendor/hls.min.js"); /* a slow reader holds it */
  write_file(dir, "hls.min.js", "var Hls=2;\n");
  struct answer now = get(f, "/vendor/hls.min.js");
  assert_int_equal(now.status, 200);
  assert_body(&now, "var Hls=2;\n");
  assert_body(&old, "var Hls=function(){};/* the player */\n"); /* its bytes stay until written */
  done(&old);
  done(&now);
  /* the same size, a later mtime: read again too */
  write_file(dir, "hls.min.js", "var Hls=3;\n");
  struct timespec times[2] = {{0, UTIME_OMIT}, {time(NULL) + 5, 0}};
  char path[160];
  snprintf(path, sizeof path, "%s/hls.min.js", dir);
  assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
  now = get(f, "/vendor/hls.min.js");
  assert_body(&now, "var Hls=3;\n");
  done(&now);
  /* gone: 404, and the cached copy is not served */
  assert_int_equal(unlink(path), 0);
  now = get(f, "/vendor/hls.min.js");
  assert_int_equal(now.status, 404);
  done(&now);
}

static void test_security_headers(void **state) {
  struct fixture *f = *state;
  const char *paths[] = {"/", "/watch/gala", "/moderate/gala", "/vendor/hls.min.js", "/nope.js", "/vendor/"};
  write_file(f->root, "index.html", "<!doctype html>\n");
  write_file(f->root, "moderate.html", "<!doctype html>\n");
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    struct answer a = get(f, paths[i]);
    assert_true(a.status == 200 || a.status == 404);
    assert_non_null(strstr(a.headers, "X-Content-Type-Options: nosniff\r\n"));
    const char *csp = strstr(a.headers, "Content-Security-Policy: ");
    if (!csp)
      fail_msg("%s: no Content-Security-Policy in %s", paths[i], a.headers);
    assert_non_null(strstr(csp, "frame-ancestors 'self'"));
    assert_non_null(strstr(csp, "media-src 'self' blob:"));
    assert_non_null(strstr(csp, "worker-src 'self' blob:"));
    assert_non_null(strstr(csp, "connect-src 'self' ws: wss:"));
    done(&a);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_one_buffer_for_every_request, setup, teardown),
      cmocka_unit_test_setup_teardown(test_changed_file_is_read_again, setup, teardown),
      cmocka_unit_test_setup_teardown(test_security_headers, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
