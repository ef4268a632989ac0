/* Unit tests for transcoder/hls/hls_http: the /hls/ route against a fake
 * core/http (http_respond records the answer, http_park the parking), on a
 * real libuv loop so blocking reload, hinted parts and timeouts run as in
 * the daemon. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/http.h"
#include "transcoder/hls/hls_http.h"
#include "transcoder/hls/hls_model.h"
#include "transcoder/hls/hls_store_int.h"
#include "transcoder/hls/hls_window_int.h"
#include "transcoder/hls/hls_packager.h"

/* ---- fake core/http ---- */

#define MAX_WSI 64
struct fake_conn {
  int status; /* 0 = not answered */
  char type[64];
  char headers[512];
  char body[8192];
  size_t len;
  int answers;
  void (*on_close)(void *);
  void *close_arg;
  int park_timeout;
};
static struct fake_conn conns[MAX_WSI];
static int next_wsi = 1;
static http_route_fn route;

int http_respond(struct lws *wsi, int status, const char *content_type, const char *extra_headers, const void *body,
                 size_t len, void (*release)(void *), void *release_arg) {
  struct fake_conn *c = &conns[(intptr_t)wsi];
  c->answers++;
  c->status = status;
  snprintf(c->type, sizeof c->type, "%s", content_type);
  snprintf(c->headers, sizeof c->headers, "%s", extra_headers);
  c->len = len < sizeof c->body ? len : sizeof c->body - 1;
  memcpy(c->body, body, c->len);
  c->body[c->len] = 0;
  c->on_close = NULL; /* answered: no close notice */
  if (release)
    release(release_arg);
  return 0;
}

int http_respond_copy(struct lws *wsi, int status, const char *content_type, const char *extra_headers,
                      const void *body, size_t len) {
  return http_respond(wsi, status, content_type, extra_headers, body, len, NULL, NULL);
}

void http_park(struct lws *wsi, int timeout_s, void (*on_close)(void *arg), void *arg) {
  struct fake_conn *c = &conns[(intptr_t)wsi];
  c->on_close = on_close;
  c->close_arg = arg;
  c->park_timeout = timeout_s;
}

int http_add_route(const char *prefix, http_route_fn fn) {
  assert_string_equal(prefix, "/hls/");
  route = fn;
  return 0;
}

/* ---- fixture ---- */

struct fixture {
  uv_loop_t loop;
  struct config cfg;
  struct hls_server *hls;
  struct hls_stream *st;
  struct hls_packager_sink sink;
  uint32_t timeline;
  int k[2]; /* parts fed per rendition */
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  config_defaults(&f->cfg);
  f->cfg.server.state_dir[0] = 0;
  f->cfg.hls.part_duration = 0.5;
  f->cfg.hls.segment_duration = 2.0;
  f->cfg.hls.block_timeout = 0.3;
  memset(conns, 0, sizeof conns);
  next_wsi = 1;
  f->hls = hls_http_start(&f->loop, &f->cfg.hls, f->cfg.server.state_dir);
  assert_non_null(f->hls);
  assert_true(route == hls_http_handle);
  f->st = hls_stream_get(f->hls, "gala");
  hls__stream_sink(f->st, &f->sink);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  hls_http_stop(f->hls, NULL, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  free(f);
  return 0;
}

static struct fake_conn *get_from(struct fixture *f, const char *addr, const char *method, const char *path,
                                  const char *query, int *ret) {
  (void)f; /* the route finds the store itself */
  int id = next_wsi++;
  assert_true(id < MAX_WSI);
  struct http_request req = {.wsi = (struct lws *)(intptr_t)id,
                             .method = method,
                             .path = path,
                             .query = query ? query : "",
                             .client_addr = addr};
  int r = route(&req);
  if (ret)
    *ret = r;
  return &conns[id];
}

static struct fake_conn *get(struct fixture *f, const char *method, const char *path, const char *query, int *ret) {
  return get_from(f, "127.0.0.1", method, path, query, ret);
}

static void begin(struct fixture *f, bool inits) {
  struct hls_stream_layout l = {.count = 2};
  l.r[0] = (struct hls_rendition_desc){
      .name = "360p", .kind = HLS_VIDEO, .width = 640, .height = 360, .fps = 25, .bandwidth = 800000};
  l.r[1] = (struct hls_rendition_desc){.name = "audio", .kind = HLS_AUDIO, .bandwidth = 96000};
  f->timeline = hls_stream_begin(f->st, &l);
  f->k[0] = f->k[1] = 0;
  if (inits) {
    f->sink.on_init(f->sink.opaque, f->timeline, 0, hls_blob_copy("IV", 2), "avc1.4d401e");
    f->sink.on_init(f->sink.opaque, f->timeline, 1, hls_blob_copy("IA", 2), "mp4a.40.2");
    hls_stream_drain(f->st);
  }
}

static void feed(struct fixture *f, int rendition, int n) {
  for (int i = 0; i < n; i++) {
    int k = f->k[rendition]++;
    char bytes[16];
    snprintf(bytes, sizeof bytes, "<%d:%d>", rendition, k);
    struct hls_part_info info = {.timeline = f->timeline,
                                 .rendition = rendition,
                                 .segment_start = k % 4 == 0,
                                 .independent = k % 4 == 0,
                                 .duration_us = 500000,
                                 .pdt_ms = 1700000000000LL + k * 500};
    f->sink.on_part(f->sink.opaque, &info, hls_blob_copy(bytes, strlen(bytes)));
  }
  hls_stream_drain(f->st);
}

/* Run the loop for ms milliseconds. */
static void stop_timer(uv_timer_t *t) { uv_timer_stop(t); }

static void run_for(struct fixture *f, int ms) {
  uv_timer_t t;
  uv_timer_init(&f->loop, &t);
  uv_timer_start(&t, stop_timer, (uint64_t)ms, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* the store's own handles are unref'd */
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void test_master(void **state) {
  struct fixture *f = *state;
  assert_int_equal(get(f, "GET", "/hls/gala/master.m3u8", NULL, NULL)->status, 404);
  assert_int_equal(get(f, "GET", "/hls/nope/master.m3u8", NULL, NULL)->status, 404);
  begin(f, false);
  int ret;
  struct fake_conn *c = get(f, "GET", "/hls/gala/master.m3u8", NULL, &ret);
  assert_int_equal(ret, HTTP_PARKED); /* waits for the init segments */
  assert_int_equal(c->status, 0);
  f->sink.on_init(f->sink.opaque, f->timeline, 0, hls_blob_copy("IV", 2), "avc1.4d401e");
  hls_stream_drain(f->st);
  assert_int_equal(c->status, 0);
  f->sink.on_init(f->sink.opaque, f->timeline, 1, hls_blob_copy("IA", 2), "mp4a.40.2");
  hls_stream_drain(f->st);
  assert_int_equal(c->status, 200);
  assert_string_equal(c->type, "application/vnd.apple.mpegurl");
  assert_non_null(strstr(c->headers, "Cache-Control: no-cache"));
  assert_non_null(strstr(c->headers, "Access-Control-Allow-Origin: *"));
  assert_non_null(strstr(c->body, "CODECS=\"avc1.4d401e,mp4a.40.2\""));
  assert_non_null(strstr(c->body, "\n360p/index.m3u8\n"));
  hls_stream_end(f->st);
  assert_int_equal(get(f, "GET", "/hls/gala/master.m3u8", NULL, NULL)->status, 404);
}

static void test_media_and_files(void **state) {
  struct fixture *f = *state;
  begin(f, true);
  assert_int_equal(get(f, "GET", "/hls/gala/360p/index.m3u8", NULL, NULL)->status, 404);
  feed(f, 0, 6); /* segment 0 complete, segment 1 has parts 0 and 1 */
  struct fake_conn *c = get(f, "GET", "/hls/gala/360p/index.m3u8", NULL, NULL);
  assert_int_equal(c->status, 200);
  assert_non_null(strstr(c->body, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-1-6.m4s\""));
  c = get(f, "GET", "/hls/gala/360p/init-1.mp4", NULL, NULL);
  assert_int_equal(c->status, 200);
  assert_string_equal(c->body, "IV");
  assert_non_null(strstr(c->headers, "immutable"));
  assert_non_null(strstr(c->headers, "Access-Control-Allow-Origin: *"));
  c = get(f, "GET", "/hls/gala/360p/seg-0.m4s", NULL, NULL);
  assert_int_equal(c->status, 200);
  assert_string_equal(c->body, "<0:0><0:1><0:2><0:3>");
  c = get(f, "GET", "/hls/gala/360p/part-1-5.m4s", NULL, NULL);
  assert_int_equal(c->status, 200);
  assert_string_equal(c->body, "<0:5>");
  assert_int_equal(get(f, "GET", "/hls/gala/360p/part-1-9.m4s", NULL, NULL)->status, 404);
  assert_int_equal(get(f, "GET", "/hls/gala/360p/seg-9.m4s", NULL, NULL)->status, 404);
  assert_int_equal(get(f, "GET", "/hls/gala/360p/init-9.mp4", NULL, NULL)->status, 404);
  assert_int_equal(get(f, "GET", "/hls/gala/360p/../x", NULL, NULL)->status, 404);
  assert_int_equal(get(f, "GET", "/hls/gala/1080p/index.m3u8", NULL, NULL)->status, 404);
  assert_int_equal(get(f, "POST", "/hls/gala/360p/index.m3u8", NULL, NULL)->status, 405);
  c = get(f, "OPTIONS", "/hls/gala/360p/index.m3u8", NULL, NULL);
  assert_int_equal(c->status, 204);
  assert_non_null(strstr(c->headers, "Access-Control-Allow-Origin: *"));

  /* the open segment is answered when it closes */
  int ret;
  c = get(f, "GET", "/hls/gala/360p/seg-1.m4s", NULL, &ret);
  assert_int_equal(ret, HTTP_PARKED);
  feed(f, 0, 2);
  assert_int_equal(c->status, 0);
  feed(f, 0, 1);
  assert_int_equal(c->status, 200);
  assert_string_equal(c->body, "<0:4><0:5><0:6><0:7>");
}

/* Media names are parsed strictly: one object, one URL. Every spelling
 * that strtoul or sscanf would read as the same number is a 404. */
static void test_strict_names(void **state) {
  struct fixture *f = *state;
  begin(f, true);
  feed(f, 0, 6); /* seg-0 complete, parts 0..5 of timeline 1 */
  static const char *const ok[] = {"init-1.mp4", "seg-0.m4s", "part-1-5.m4s", "part-1-0.m4s"};
  static const char *const bad[] = {"seg-00.m4s",
                                    "seg-+0.m4s",
                                    "seg- 0.m4s",
                                    "seg-0x.m4s",
                                    "seg-0.m4sx",
                                    "seg-.m4s",
                                    "seg--0.m4s",
                                    "seg-0.m4s ",
                                    "seg-\t0.m4s",
                                    "seg-18446744073709551616.m4s",
                                    "seg-99999999999999999999999.m4s",
                                    "part-01-5.m4s",
                                    "part-1-05.m4s",
                                    "part-+1-5.m4s",
                                    "part-1-+5.m4s",
                                    "part-1- 5.m4s",
                                    "part- 1-5.m4s",
                                    "part-1--5.m4s",
                                    "part-1-5x.m4s",
                                    "part-4294967297-5.m4s",
                                    "part-1-18446744073709551621.m4s",
                                    "init-01.mp4",
                                    "init-+1.mp4",
                                    "init- 1.mp4",
                                    "init-1x.mp4",
                                    "init-4294967297.mp4",
                                    "init-99999999999999999999999.mp4"};
  char path[128];
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    snprintf(path, sizeof path, "/hls/gala/360p/%s", ok[i]);
    assert_int_equal(get(f, "GET", path, NULL, NULL)->status, 200);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(path, sizeof path, "/hls/gala/360p/%s", bad[i]);
    int ret;
    struct fake_conn *c = get(f, "GET", path, NULL, &ret);
    if (c->status != 404)
      fail_msg("%s: status %d, want 404", bad[i], c->status);
    assert_int_equal(ret, HTTP_DONE);
  }
}

static void test_blocking_reload(void **state) {
  struct fixture *f = *state;
  begin(f, true);
  feed(f, 0, 6); /* last: msn 1 part 1 */
  int ret;
  struct fake_conn *now = get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=1,_HLS_part=1", &ret);
  /* (lws joins query arguments with ',': both separators work) */
  assert_int_equal(ret, HTTP_DONE);
  assert_int_equal(now->status, 200);
  struct fake_conn *c = get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=1&_HLS_part=2", &ret);
  assert_int_equal(ret, HTTP_PARKED);
  assert_true(c->park_timeout >= 1);
  struct fake_conn *seg = get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=1", &ret);
  assert_int_equal(ret, HTTP_PARKED);
  struct fake_conn *next = get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=2&_HLS_part=0", &ret);
  assert_int_equal(ret, HTTP_PARKED);
  feed(f, 1, 3); /* another rendition's parts wake nobody here */
  assert_int_equal(c->status, 0);
  feed(f, 0, 1);
  assert_int_equal(c->status, 200);
  assert_non_null(strstr(c->body, "part-1-6.m4s"));
  assert_int_equal(seg->status, 0);
  assert_int_equal(next->status, 0);
  feed(f, 0, 1); /* part 3 of msn 1 */
  assert_int_equal(seg->status, 0);
  assert_int_equal(next->status, 0);
  feed(f, 0, 1); /* msn 2 part 0: msn 1 is complete */
  assert_int_equal(seg->status, 200);
  assert_int_equal(next->status, 200);
  assert_int_equal(seg->answers, 1);

  /* too far ahead: 400 at once; malformed: 400 */
  assert_int_equal(get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=5", NULL)->status, 400);
  assert_int_equal(get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=2&_HLS_part=20", NULL)->status, 400);
  assert_int_equal(get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_part=1", NULL)->status, 400);
  assert_int_equal(get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=x", NULL)->status, 400);
  /* the past: at once */
  assert_int_equal(get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=0&_HLS_part=0", NULL)->status, 200);
}

/* Arguments other than _HLS_msn/_HLS_part/_HLS_skip are ignored: a
 * cache-busting ?x=random gets the answer the plain URL gets, parks like
 * it, and is never a 400. */
static void test_other_arguments_ignored(void **state) {
  struct fixture *f = *state;
  begin(f, true);
  feed(f, 0, 6);
  struct fake_conn *plain = get(f, "GET", "/hls/gala/360p/index.m3u8", NULL, NULL);
  struct fake_conn *busted = get(f, "GET", "/hls/gala/360p/index.m3u8", "x=123&_HLS_=1&_hls_msn=9", NULL);
  assert_int_equal(busted->status, 200);
  assert_string_equal(busted->body, plain->body);
  assert_int_equal(get(f, "GET", "/hls/gala/360p/part-1-5.m4s", "x=1", NULL)->status, 200);
  assert_int_equal(get(f, "GET", "/hls/gala/360p/seg-0.m4s", "v=2", NULL)->status, 200);
  int ret;
  struct fake_conn *c = get(f, "GET", "/hls/gala/360p/index.m3u8", "x=1&_HLS_msn=1&y=&_HLS_part=2&_HLS_skip=YES", &ret);
  assert_int_equal(ret, HTTP_PARKED);
  feed(f, 0, 1);
  assert_int_equal(c->status, 200);
}

static void test_hinted_part(void **state) {
  struct fixture *f = *state;
  begin(f, true);
  feed(f, 0, 4);
  int ret;
  struct fake_conn *c = get(f, "GET", "/hls/gala/360p/part-1-4.m4s", NULL, &ret);
  assert_int_equal(ret, HTTP_PARKED);
  assert_int_equal(c->status, 0);
  feed(f, 0, 1); /* part 4 is the first of segment 1: the hint still names it */
  assert_int_equal(c->status, 200);
  assert_string_equal(c->body, "<0:4>");
  assert_non_null(strstr(c->headers, "immutable"));
}

static void test_timeout_and_leaving(void **state) {
  struct fixture *f = *state;
  begin(f, true);
  feed(f, 0, 2);
  int ret;
  struct fake_conn *pl = get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=0&_HLS_part=3", &ret);
  assert_int_equal(ret, HTTP_PARKED);
  struct fake_conn *part = get(f, "GET", "/hls/gala/360p/part-1-2.m4s", NULL, &ret);
  assert_int_equal(ret, HTTP_PARKED);
  struct fake_conn *gone = get(f, "GET", "/hls/gala/360p/part-1-2.m4s", NULL, &ret);
  assert_int_equal(ret, HTTP_PARKED);
  gone->on_close(gone->close_arg);   /* the client leaves */
  run_for(f, 500);                   /* block_timeout is 0.3 s */
  assert_int_equal(pl->status, 200); /* the playlist as it is */
  assert_int_equal(part->status, 503);
  assert_int_equal(gone->answers, 0);
  feed(f, 0, 1);
  assert_int_equal(gone->answers, 0);
  assert_int_equal(pl->answers, 1);
}

/* Parked requests are bounded (HLS_PARKED_MAX, 8 in this test's build):
 * past it a blocking request gets 503 at once; a slot frees when one is
 * answered or its client leaves. */
static void test_parked_bound(void **state) {
  struct fixture *f = *state;
  begin(f, true);
  feed(f, 0, 2);
  int ret;
  struct fake_conn *c[8];
  for (int i = 0; i < 8; i++) {
    c[i] = get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=0&_HLS_part=3", &ret);
    assert_int_equal(ret, HTTP_PARKED);
  }
  struct fake_conn *over = get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=0&_HLS_part=3", &ret);
  assert_int_equal(ret, HTTP_DONE);
  assert_int_equal(over->status, 503);
  c[0]->on_close(c[0]->close_arg); /* a client leaves: its slot is free */
  struct fake_conn *again = get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=0&_HLS_part=3", &ret);
  assert_int_equal(ret, HTTP_PARKED);
  feed(f, 0, 2); /* part 3 exists: every parked one is answered */
  for (int i = 1; i < 8; i++)
    assert_int_equal(c[i]->status, 200);
  assert_int_equal(again->status, 200);
  struct fake_conn *next = get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=1", &ret);
  assert_int_equal(ret, HTTP_PARKED);
  (void)next;
}

/* hls.max_parked_per_address: one address (an IPv6 /64 as one) gets that
 * many parked requests; the next is a 503 with Retry-After at once, while
 * other addresses still park; a slot frees when one is answered or leaves. */
static void test_parked_per_address(void **state) {
  struct fixture *f = *state;
  f->cfg.hls.max_parked_per_address = 3;
  hls_server_reload(f->hls, &f->cfg.hls, f->cfg.server.state_dir);
  begin(f, true);
  feed(f, 0, 2);
  const char *pl = "/hls/gala/360p/index.m3u8", *wait = "_HLS_msn=0&_HLS_part=3";
  int ret;
  struct fake_conn *v4[3], *v6[3];
  for (int i = 0; i < 3; i++) {
    v4[i] = get_from(f, "192.0.2.1", "GET", pl, wait, &ret);
    assert_int_equal(ret, HTTP_PARKED);
  }
  struct fake_conn *over = get_from(f, "192.0.2.1", "GET", "/hls/gala/360p/part-1-2.m4s", NULL, &ret);
  assert_int_equal(ret, HTTP_DONE); /* a hinted part counts too */
  assert_int_equal(over->status, 503);
  assert_non_null(strstr(over->headers, "Retry-After: 1\r\n"));
  assert_int_equal(get_from(f, "::ffff:192.0.2.1", "GET", pl, wait, &ret)->status, 503);
  v6[0] = get_from(f, "2001:db8:0:1::1", "GET", pl, wait, &ret);
  v6[1] = get_from(f, "2001:db8:0:1::2", "GET", pl, wait, &ret);
  v6[2] = get_from(f, "2001:db8:0:1:ffff::3", "GET", pl, wait, &ret);
  for (int i = 0; i < 3; i++)
    assert_int_equal(v6[i]->status, 0);
  assert_int_equal(get_from(f, "2001:db8:0:1::99", "GET", pl, wait, &ret)->status, 503);
  struct fake_conn *other = get_from(f, "192.0.2.2", "GET", pl, wait, &ret);
  assert_int_equal(ret, HTTP_PARKED);
  v4[0]->on_close(v4[0]->close_arg); /* one leaves: its address may park one more */
  struct fake_conn *again = get_from(f, "192.0.2.1", "GET", pl, wait, &ret);
  assert_int_equal(ret, HTTP_PARKED);

  struct buf m;
  buf_init(&m);
  hls_http_metrics(f->hls, f->cfg.channels, f->cfg.channel_count, &m);
  hls_server_metrics(f->hls, &m);
  assert_non_null(strstr(m.data, "galarelay_hls_parked_requests 7\n"));
  assert_non_null(strstr(m.data, "galarelay_hls_parked_refused_total{reason=\"address\"} 3\n"));
  buf_free(&m);

  feed(f, 0, 2); /* every parked one is answered; the counters go back to zero */
  for (int i = 1; i < 3; i++)
    assert_int_equal(v4[i]->status, 200);
  assert_int_equal(again->status, 200);
  assert_int_equal(other->status, 200);
  for (int i = 0; i < 3; i++)
    assert_int_equal(v6[i]->status, 200);
  for (int i = 0; i < 3; i++) {
    get_from(f, "192.0.2.1", "GET", pl, "_HLS_msn=1&_HLS_part=3", &ret);
    assert_int_equal(ret, HTTP_PARKED);
  }
  f->cfg.hls.max_parked_per_address = 0; /* 0: no bound but the server's */
  hls_server_reload(f->hls, &f->cfg.hls, f->cfg.server.state_dir);
  get_from(f, "192.0.2.1", "GET", pl, "_HLS_msn=1&_HLS_part=3", &ret);
  assert_int_equal(ret, HTTP_PARKED);
}

static void test_stop_answers_parked(void **state) {
  struct fixture *f = *state;
  begin(f, true);
  feed(f, 0, 2);
  int ret;
  struct fake_conn *c = get(f, "GET", "/hls/gala/360p/index.m3u8", "_HLS_msn=1", &ret);
  assert_int_equal(ret, HTTP_PARKED);
  hls_http_stop(f->hls, NULL, NULL);
  assert_true(c->status >= 400);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  f->hls = hls_server_new(&f->loop, &f->cfg.hls, f->cfg.server.state_dir); /* for teardown */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_master, setup, teardown),
      cmocka_unit_test_setup_teardown(test_media_and_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_strict_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_blocking_reload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_other_arguments_ignored, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hinted_part, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout_and_leaving, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parked_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parked_per_address, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_answers_parked, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
