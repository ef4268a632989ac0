/* Unit tests for the HLS store and playlist rendering: parts fed through a
 * stream's sink (as packagers do) must give exactly the expected playlists
 * (golden text), discontinuities on a new timeline, a trimmed window, and
 * media sequence numbers that keep growing across a restart (state file),
 * also across a kill -9 that loses the state writes in flight, and the last
 * feed's layout kept in the same file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/buf.h"
#include "transcoder/hls/hls_model.h"
#include "transcoder/hls/hls_store_int.h"
#include "transcoder/hls/hls_window_int.h"
#include "transcoder/hls/hls_packager.h"
#include "transcoder/hls/hls_playlist.h"
#include "transcoder/hls/hls_store.h"

#define T0 1700000000000LL /* 2023-11-14T22:13:20.000Z */

struct fixture {
  uv_loop_t loop;
  struct config cfg;
  char dir[64];
  struct hls_server *srv;
  struct hls_stream *st;
  struct hls_packager_sink sink;
  uint32_t timeline;
};

static void layout_std(struct hls_stream_layout *l) {
  memset(l, 0, sizeof *l);
  l->count = 2;
  l->r[0] = (struct hls_rendition_desc){.name = "720p",
                                        .kind = HLS_VIDEO,
                                        .width = 1280,
                                        .height = 720,
                                        .fps = 30,
                                        .bandwidth = 3000000,
                                        .average_bandwidth = 2500000};
  l->r[1] = (struct hls_rendition_desc){
      .name = "audio", .kind = HLS_AUDIO, .bandwidth = 128000, .average_bandwidth = 128000, .channels = 2};
}

static void server_up(struct fixture *f) {
  f->srv = hls_server_new(&f->loop, &f->cfg.hls, f->cfg.server.state_dir);
  assert_non_null(f->srv);
  f->st = hls_stream_get(f->srv, "gala");
  assert_non_null(f->st);
  hls__stream_sink(f->st, &f->sink);
}

static void count_call(void *arg) { (*(int *)arg)++; }

/* hls_server_stop is asynchronous: its callback comes once, after the
 * loop has closed the handles. */
static void server_down(struct fixture *f) {
  int stopped = 0;
  hls_server_stop(f->srv, count_call, &stopped);
  assert_int_equal(stopped, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(stopped, 1);
  f->srv = NULL;
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  config_defaults(&f->cfg);
  snprintf(f->dir, sizeof f->dir, "/tmp/hls-test-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->cfg.server.state_dir, sizeof f->cfg.server.state_dir, "%s/state", f->dir);
  f->cfg.hls.part_duration = 0.5;
  f->cfg.hls.segment_duration = 2.0;
  f->cfg.hls.window_segments = 4;
  f->cfg.hls.block_timeout = 1.0;
  server_up(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  if (f->srv)
    server_down(f);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

static void feed_init(struct fixture *f, int rendition, const char *codecs) {
  f->sink.on_init(f->sink.opaque, f->timeline, rendition, hls_blob_copy("INIT", 4), codecs);
}

/* One part of 0.5 s; segment k begins at part 4k. */
static void feed_part(struct fixture *f, int rendition, int k, const char *bytes) {
  struct hls_part_info info = {
      .timeline = f->timeline,
      .rendition = rendition,
      .segment_start = k % 4 == 0,
      .independent = k % 2 == 0,
      .start_us = k * 500000LL,
      .duration_us = 500000,
      .pdt_ms = T0 + k * 500LL,
      .frames = 15,
  };
  f->sink.on_part(f->sink.opaque, &info, hls_blob_copy(bytes, strlen(bytes)));
}

static char *render(struct hls_rendition *r) {
  struct hls_blob *b = hls__rendition_playlist(r);
  assert_non_null(b);
  char *s = strndup((const char *)b->data, b->len);
  hls_blob_unref(b);
  return s;
}

static void begin_std(struct fixture *f) {
  struct hls_stream_layout l;
  layout_std(&l);
  f->timeline = hls_stream_begin(f->st, &l);
  assert_true(f->timeline > 0);
  feed_init(f, 0, "avc1.64001f");
  feed_init(f, 1, "mp4a.40.2");
}

static void test_media_playlist_golden(void **state) {
  struct fixture *f = *state;
  begin_std(f);
  for (int k = 0; k < 22; k++) /* 5 complete segments and 2 parts of the 6th */
    feed_part(f, 0, k, "vv");
  for (int k = 0; k < 21; k++)
    feed_part(f, 1, k, "a");
  hls_stream_drain(f->st);
  struct hls_rendition *r = hls__stream_rendition(f->st, "720p");
  char *text = render(r);
  const char *want = "#EXTM3U\n"
                     "#EXT-X-VERSION:6\n"
                     "#EXT-X-TARGETDURATION:2\n"
                     "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500\n"
                     "#EXT-X-PART-INF:PART-TARGET=0.500\n"
                     "#EXT-X-MEDIA-SEQUENCE:1\n"
                     "#EXT-X-DISCONTINUITY-SEQUENCE:0\n"
                     "#EXT-X-INDEPENDENT-SEGMENTS\n"
                     "#EXT-X-MAP:URI=\"init-1.mp4\"\n"
                     "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n"
                     "#EXTINF:2.00000,\n"
                     "seg-1.m4s\n"
                     "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-8.m4s\",INDEPENDENT=YES\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-9.m4s\"\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-10.m4s\",INDEPENDENT=YES\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-11.m4s\"\n"
                     "#EXTINF:2.00000,\n"
                     "seg-2.m4s\n"
                     "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.000Z\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-12.m4s\",INDEPENDENT=YES\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-13.m4s\"\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-14.m4s\",INDEPENDENT=YES\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-15.m4s\"\n"
                     "#EXTINF:2.00000,\n"
                     "seg-3.m4s\n"
                     "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:28.000Z\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-16.m4s\",INDEPENDENT=YES\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-17.m4s\"\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-18.m4s\",INDEPENDENT=YES\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-19.m4s\"\n"
                     "#EXTINF:2.00000,\n"
                     "seg-4.m4s\n"
                     "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:30.000Z\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-20.m4s\",INDEPENDENT=YES\n"
                     "#EXT-X-PART:DURATION=0.50000,URI=\"part-1-21.m4s\"\n"
                     "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-1-22.m4s\"\n"
                     "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=5,LAST-PART=0\n";
  assert_string_equal(text, want);
  free(text);

  /* a whole segment is its parts concatenated; old parts leave memory */
  struct hls_segment *s = hls__rendition_segment(r, 4);
  assert_non_null(s);
  assert_int_equal(s->data->len, 8);
  assert_memory_equal(s->data->data, "vvvvvvvv", 8);
  assert_non_null(hls__rendition_part(r, f->timeline, 21));
  assert_null(hls__rendition_part(r, f->timeline, 3));
  assert_true(hls__rendition_has(r, 5, 1));
  assert_false(hls__rendition_has(r, 5, 2));
  assert_true(hls__rendition_has(r, 4, -1));
  assert_false(hls__rendition_has(r, 5, -1));
}

static void test_master_golden(void **state) {
  struct fixture *f = *state;
  begin_std(f);
  feed_part(f, 0, 0, "v");
  hls_stream_drain(f->st);
  struct hls_blob *b = hls__stream_master(f->st);
  assert_non_null(b);
  const char *want = "#EXTM3U\n"
                     "#EXT-X-VERSION:6\n"
                     "#EXT-X-INDEPENDENT-SEGMENTS\n"
                     "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,"
                     "CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n"
                     "#EXT-X-STREAM-INF:BANDWIDTH=3128000,AVERAGE-BANDWIDTH=2628000,RESOLUTION=1280x720,"
                     "CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=30.000,AUDIO=\"audio\"\n"
                     "720p/index.m3u8\n";
  assert_int_equal(b->len, strlen(want));
  assert_memory_equal(b->data, want, b->len);
  hls_blob_unref(b);
}

static void test_discontinuity_and_restart(void **state) {
  struct fixture *f = *state;
  begin_std(f);
  for (int k = 0; k < 9; k++) /* segments 0, 1 complete; 2 open */
    feed_part(f, 0, k, "v");
  hls_stream_drain(f->st);
  hls_stream_end(f->st);
  assert_false(hls_stream_live(f->st));
  uint32_t first = f->timeline;
  begin_std(f); /* the publisher reconnects */
  assert_int_equal(f->timeline, first + 1);
  for (int k = 0; k < 5; k++)
    feed_part(f, 0, k, "w");
  hls_stream_drain(f->st);
  struct hls_rendition *r = hls__stream_rendition(f->st, "720p");
  char *text = render(r);
  /* segment 2 was closed at the end; the new timeline continues at 3 after a discontinuity */
  assert_non_null(strstr(text, "#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
  assert_non_null(strstr(text, "seg-2.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\"\n"));
  assert_non_null(strstr(text, "seg-3.m4s\n"));
  assert_non_null(strstr(text, "URI=\"part-2-"));
  free(text);
  /* old segments' init is still served */
  assert_non_null(hls__rendition_init(r, first));

  /* restart: a new server on the same state_dir starts above what was used */
  server_down(f);
  server_up(f);
  begin_std(f);
  assert_int_equal(f->timeline, first + 2);
  feed_part(f, 0, 0, "x");
  hls_stream_drain(f->st);
  r = hls__stream_rendition(f->st, "720p");
  text = render(r);
  assert_non_null(strstr(text, "#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-DISCONTINUITY-SEQUENCE:2\n"));
  assert_non_null(strstr(text, "URI=\"part-3-0.m4s\""));
  free(text);
}

static char *read_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  char *text = calloc(1, 256);
  assert_true(fread(text, 1, 255, fp) > 0);
  fclose(fp);
  return text;
}

static void write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
  fclose(fp);
}

static uint64_t media_sequence(struct fixture *f) {
  char *text = render(hls__stream_rendition(f->st, "720p"));
  const char *p = strstr(text, "#EXT-X-MEDIA-SEQUENCE:");
  assert_non_null(p);
  uint64_t msn = strtoull(p + strlen("#EXT-X-MEDIA-SEQUENCE:"), NULL, 10);
  free(text);
  return msn;
}

/* kill -9 while the state file is being written: the process had listed
 * segments whose numbers reached no write that landed, and the restart
 * reads the file as the last finished write left it. Every MSN (and
 * timeline) it begins with must still be above all those served. */
static void test_crash_restart(void **state) {
  struct fixture *f = *state;
  char path[128];
  snprintf(path, sizeof path, "%s/state/hls-gala.state", f->dir);
  begin_std(f);
  for (int k = 0; k < 8; k++) /* segments 0, 1 */
    feed_part(f, 0, k, "v");
  hls_stream_drain(f->st);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* the writes submitted so far land */
  char *on_disk = read_file(path);
  uint32_t first = f->timeline;

  /* up to half a reservation more: segments 2 .. 1 + HLS_MSN_RESERVE/2,
   * listed while their writes are in flight (and lost below); a feed switch
   * in between begins a new timeline */
  int last = 1 + HLS_MSN_RESERVE / 2;
  for (int k = 8; k < 4 * 8; k++)
    feed_part(f, 0, k, "v");
  hls_stream_drain(f->st);
  hls_stream_end(f->st);
  begin_std(f);
  for (int k = 0; k < 4 * (last - 8) + 1; k++)
    feed_part(f, 0, k, "w");
  hls_stream_drain(f->st);
  struct hls_rendition *r = hls__stream_rendition(f->st, "720p");
  assert_non_null(hls__rendition_segment(r, (uint64_t)last));
  assert_null(hls__rendition_segment(r, (uint64_t)last + 1));
  uint32_t served_timeline = f->timeline;
  assert_int_equal(served_timeline, first + 1);

  server_down(f);
  write_file(path, on_disk); /* the writes after it never happened */
  free(on_disk);
  server_up(f);
  begin_std(f);
  assert_true(f->timeline > served_timeline);
  feed_part(f, 0, 0, "x");
  hls_stream_drain(f->st);
  uint64_t msn = media_sequence(f);
  assert_true(msn > (uint64_t)last);
  assert_true(msn <= (uint64_t)last + HLS_MSN_RESERVE); /* skips ahead, but not far */

  /* and again: numbers only grow */
  uint64_t before = msn;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  on_disk = read_file(path);
  for (int k = 1; k < 9; k++)
    feed_part(f, 0, k, "x");
  hls_stream_drain(f->st);
  server_down(f);
  write_file(path, on_disk);
  free(on_disk);
  server_up(f);
  begin_std(f);
  feed_part(f, 0, 0, "y");
  hls_stream_drain(f->st);
  assert_true(media_sequence(f) > before + 2);
}

static void layout_small(struct hls_stream_layout *l) {
  memset(l, 0, sizeof *l);
  l->count = 3;
  l->r[0] = (struct hls_rendition_desc){.name = "source",
                                        .kind = HLS_VIDEO,
                                        .width = 640,
                                        .height = 360,
                                        .fps = 29.97,
                                        .bandwidth = 1200000,
                                        .average_bandwidth = 900000};
  l->r[1] = (struct hls_rendition_desc){.name = "240p",
                                        .kind = HLS_VIDEO,
                                        .width = 426,
                                        .height = 240,
                                        .fps = 29.97,
                                        .bandwidth = 450000,
                                        .average_bandwidth = 300000};
  l->r[2] = (struct hls_rendition_desc){
      .name = "audio", .kind = HLS_AUDIO, .bandwidth = 64000, .average_bandwidth = 64000, .channels = 2};
}

static void assert_layout_equal(const struct hls_stream_layout *a, const struct hls_stream_layout *b) {
  assert_int_equal(a->count, b->count);
  for (int i = 0; i < a->count; i++) {
    assert_string_equal(a->r[i].name, b->r[i].name);
    assert_int_equal(a->r[i].kind, b->r[i].kind);
    assert_int_equal(a->r[i].width, b->r[i].width);
    assert_int_equal(a->r[i].height, b->r[i].height);
    assert_true(a->r[i].fps == b->r[i].fps);
    assert_int_equal(a->r[i].bandwidth, b->r[i].bandwidth);
    assert_int_equal(a->r[i].average_bandwidth, b->r[i].average_bandwidth);
    assert_int_equal(a->r[i].channels, b->r[i].channels);
  }
}

/* The last feed's layout survives a restart (the slate after it lists the
 * feed's renditions); the slate's own timelines do not replace it. */
static void test_saved_layout_restart(void **state) {
  struct fixture *f = *state;
  struct hls_stream_layout got, feed;
  assert_int_equal(hls_stream_saved_layout(f->st, &got), -ENOENT); /* no feed yet */
  layout_small(&feed);
  f->timeline = hls_stream_begin(f->st, &feed);
  assert_true(f->timeline > 0);
  hls_stream_save_layout(f->st, &feed);
  begin_std(f); /* a slate-like timeline, not saved */
  assert_int_equal(hls_stream_saved_layout(f->st, &got), 0);
  assert_layout_equal(&got, &feed);

  server_down(f);
  server_up(f);
  memset(&got, 0, sizeof got);
  assert_int_equal(hls_stream_saved_layout(f->st, &got), 0);
  assert_layout_equal(&got, &feed);
  /* kept through a restart with no feed (the numbers are written again) */
  begin_std(f);
  for (int k = 0; k < 8 * HLS_MSN_RESERVE; k++)
    feed_part(f, 0, k, "v");
  hls_stream_drain(f->st);
  server_down(f);
  server_up(f);
  assert_int_equal(hls_stream_saved_layout(f->st, &got), 0);
  assert_layout_equal(&got, &feed);
}

/* The state file is outside input: files of older versions (no layout) and
 * malformed layout lines give no saved layout but keep the numbers. */
static void test_saved_layout_bad_files(void **state) {
  struct fixture *f = *state;
  char path[128];
  snprintf(path, sizeof path, "%s/state/hls-gala.state", f->dir);
  static const char *const bad[] = {
      "rendition=source video 640 360 30 1000 900\n",                     /* a field short */
      "rendition=source video 640 360 30 1000 900 0 7\n",                 /* one too many */
      "rendition=source film 640 360 30 1000 900 0\n",                    /* kind */
      "rendition=../x video 640 360 30 1000 900 0\n",                     /* name */
      "rendition=source video 640x 360 30 1000 900 0\n",                  /* number */
      "rendition=source video 99999999999 360 30 1000 900 0\n",           /* range */
      "rendition=source video 0 360 30 1000 900 0\n",                     /* no size */
      "rendition=source video 640 360 nan 1000 900 0\n",                  /* fps */
      "rendition=source video 640 360 30 -1 900 0\n",                     /* bandwidth */
      "rendition=a video 2 2 30 1 1 0\nrendition=a video 2 2 30 1 1 0\n", /* duplicate */
      "rendition=a audio 0 0 0 1 1 2\nrendition=b audio 0 0 0 1 1 2\n",   /* two audio */
      "rendition=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa video 2 2\n",
      "rendition=\n",
      "", /* an old file: numbers only */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    server_down(f);
    char text[1024];
    snprintf(text, sizeof text, "msn=40\ndisc=3\ntimeline=7\n%s", bad[i]);
    write_file(path, text);
    server_up(f);
    struct hls_stream_layout got;
    assert_int_equal(hls_stream_saved_layout(f->st, &got), -ENOENT);
    begin_std(f); /* the numbers were read all the same */
    assert_int_equal(f->timeline, 8);
  }
  /* thirteen renditions: more than a layout holds */
  server_down(f);
  char text[2048] = "msn=40\n";
  for (int i = 0; i < HLS_MAX_RENDITIONS + 1; i++)
    snprintf(text + strlen(text), sizeof text - strlen(text), "rendition=r%d video 2 2 30 1 1 0\n", i);
  write_file(path, text);
  server_up(f);
  struct hls_stream_layout got;
  assert_int_equal(hls_stream_saved_layout(f->st, &got), -ENOENT);
  /* a well-formed one, as an operator might write it */
  server_down(f);
  write_file(path, "msn=40\nrendition=source video 640 360 30 1200000 900000 0\n"
                   "rendition=audio audio 0 0 0 64000 64000 2");
  server_up(f);
  assert_int_equal(hls_stream_saved_layout(f->st, &got), 0);
  assert_int_equal(got.count, 2);
  assert_int_equal(got.r[0].width, 640);
  assert_int_equal(got.r[1].kind, HLS_AUDIO);
}

/* The largest layout fits in a state write. */
static void test_saved_layout_full(void **state) {
  struct fixture *f = *state;
  struct hls_stream_layout l;
  memset(&l, 0, sizeof l);
  l.count = HLS_MAX_RENDITIONS;
  for (int i = 0; i < l.count; i++) {
    struct hls_rendition_desc *d = &l.r[i];
    snprintf(d->name, sizeof d->name, "rendition_%021d", i); /* 31 characters */
    d->kind = i == 0 ? HLS_AUDIO : HLS_VIDEO;
    d->width = d->height = 16384;
    d->fps = 1.0 / 3.0 + 29;
    d->bandwidth = d->average_bandwidth = INT64_MAX / 2;
    d->channels = 64;
  }
  assert_true(hls_stream_begin(f->st, &l) > 0);
  hls_stream_save_layout(f->st, &l);
  server_down(f);
  server_up(f);
  struct hls_stream_layout got;
  assert_int_equal(hls_stream_saved_layout(f->st, &got), 0);
  assert_layout_equal(&got, &l);
}

static void test_old_timeline_dropped(void **state) {
  struct fixture *f = *state;
  begin_std(f);
  uint32_t old = f->timeline;
  feed_part(f, 0, 0, "v");
  begin_std(f);
  struct hls_part_info info = {
      .timeline = old, .rendition = 0, .segment_start = true, .independent = true, .duration_us = 500000, .pdt_ms = T0};
  f->sink.on_part(f->sink.opaque, &info, hls_blob_copy("old", 3));
  hls_stream_drain(f->st);
  struct hls_rendition *r = hls__stream_rendition(f->st, "720p");
  assert_int_equal(r->seg_count, 1); /* the part queued before begin went in; the late one not */
  assert_int_equal(r->segs[0]->timeline, old);
}

/* Between a new timeline's begin and its first part, the playlist ends with
 * the old timeline's segment: a preload hint would name a part of the old
 * timeline that never comes (the next part is part-NEW-SEQ). */
static void test_preload_hint_across_timelines(void **state) {
  struct fixture *f = *state;
  begin_std(f);
  uint32_t old = f->timeline;
  for (int k = 0; k < 3; k++)
    feed_part(f, 0, k, "v");
  hls_stream_drain(f->st);
  hls_stream_end(f->st);
  begin_std(f);
  hls_stream_drain(f->st);
  struct hls_rendition *r = hls__stream_rendition(f->st, "720p");
  char *text = render(r);
  char bad[64];
  snprintf(bad, sizeof bad, "PRELOAD-HINT:TYPE=PART,URI=\"part-%u-", old);
  assert_null(strstr(text, bad));
  free(text);
  feed_part(f, 0, 0, "w");
  hls_stream_drain(f->st);
  text = render(r);
  char good[80];
  snprintf(good, sizeof good, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-%u-4.m4s\"\n", f->timeline);
  assert_non_null(strstr(text, good));
  free(text);
}

static void test_layout_change_removes_rendition(void **state) {
  struct fixture *f = *state;
  begin_std(f);
  feed_part(f, 0, 0, "v");
  hls_stream_drain(f->st);
  struct hls_stream_layout l;
  layout_std(&l);
  snprintf(l.r[0].name, sizeof l.r[0].name, "480p");
  f->timeline = hls_stream_begin(f->st, &l);
  assert_null(hls__stream_rendition(f->st, "720p"));
  assert_non_null(hls__stream_rendition(f->st, "480p"));
  /* bad layouts are refused */
  snprintf(l.r[0].name, sizeof l.r[0].name, "../x");
  assert_int_equal(hls_stream_begin(f->st, &l), 0);
}

/* A server that mirrors to DIR/rec, with the standard layout begun. */
static void begin_recording(struct fixture *f) {
  server_down(f);
  snprintf(f->cfg.hls.record_dir, sizeof f->cfg.hls.record_dir, "%s/rec", f->dir);
  server_up(f);
  begin_std(f);
}

static void test_record_dir(void **state) {
  struct fixture *f = *state;
  begin_recording(f);
  for (int k = 0; k < 6; k++)
    feed_part(f, 0, k, "ab");
  hls_stream_drain(f->st);
  hls_stream_end(f->st);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* the threadpool writes */
  char path[256];
  snprintf(path, sizeof path, "%s/rec/gala/720p/seg-1.m4s", f->dir);
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  char got[16] = {0};
  assert_int_equal(fread(got, 1, sizeof got, fp), 4); /* parts 4 and 5 */
  fclose(fp);
  assert_string_equal(got, "abab");
  snprintf(path, sizeof path, "%s/rec/gala/720p/init-1.mp4", f->dir);
  assert_int_equal(access(path, R_OK), 0);
  snprintf(path, sizeof path, "%s/state/hls-gala.state", f->dir);
  assert_int_equal(access(path, R_OK), 0);
}

/* The recording queue is bounded: with the loop not running, no write
 * completes, so the queue fills; past HLS_RECORD_MAX_JOBS a segment is not
 * mirrored and is counted, and once the queue drains segments are mirrored
 * again. */
static void test_record_queue_bound(void **state) {
  struct fixture *f = *state;
  begin_recording(f);
  /* two inits (video, audio) and HLS_RECORD_MAX_JOBS + 4 closed segments */
  int n = 4 * (HLS_RECORD_MAX_JOBS + 5);
  for (int k = 0; k < n; k++)
    feed_part(f, 0, k, "ab");
  hls_stream_drain(f->st);
  struct buf b;
  buf_init(&b);
  hls_server_metrics(f->srv, &b);
  char want[96];
  snprintf(want, sizeof want, "galarelay_hls_record_queued %d\n", HLS_RECORD_MAX_JOBS);
  assert_non_null(strstr(b.data, want));
  if (!strstr(b.data, "galarelay_hls_record_dropped_total 6\n"))
    fail_msg("%s", b.data);
  buf_free(&b);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* the queued writes land */
  char path[256];
  snprintf(path, sizeof path, "%s/rec/gala/720p/seg-%d.m4s", f->dir, HLS_RECORD_MAX_JOBS - 3);
  assert_int_equal(access(path, R_OK), 0); /* the last one queued */
  snprintf(path, sizeof path, "%s/rec/gala/720p/seg-%d.m4s", f->dir, HLS_RECORD_MAX_JOBS - 2);
  assert_int_not_equal(access(path, R_OK), 0); /* the first one dropped */
  for (int k = n; k < n + 8; k++)              /* room again: mirrored */
    feed_part(f, 0, k, "ab");
  hls_stream_drain(f->st);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  snprintf(path, sizeof path, "%s/rec/gala/720p/seg-%d.m4s", f->dir, n / 4);
  assert_int_equal(access(path, R_OK), 0);
  buf_init(&b);
  hls_server_metrics(f->srv, &b);
  assert_non_null(strstr(b.data, "galarelay_hls_record_queued 0\n"));
  assert_non_null(strstr(b.data, "galarelay_hls_record_dropped_total 6\n"));
  buf_free(&b);
}

/* A feed without keyframes cannot grow a segment without limit: past
 * HLS_SEGMENT_MAX_TARGETS segment durations the open segment is closed as
 * it is, parts are dropped until a keyframe starts the next segment, and
 * the cut is counted. */
/* The part queue (packagers -> loop) is bounded: with the loop not
 * draining, HLS_QUEUE_MAX parts wait and the next is dropped and counted
 * (galarelay_hls_parts_dropped_total); after the drain the rendition drops
 * parts up to the next segment start, whose segment comes in clean. */
static void test_part_queue_bound(void **state) {
  struct fixture *f = *state;
  begin_std(f);
  hls_stream_drain(f->st); /* the inits: the queue is empty */
  for (int k = 0; k < HLS_QUEUE_MAX + 1; k++)
    feed_part(f, 0, k, "p");
  struct buf b;
  buf_init(&b);
  hls_server_metrics(f->srv, &b);
  assert_non_null(strstr(b.data, "galarelay_hls_parts_dropped_total{channel=\"gala\"} 1\n"));
  buf_free(&b);
  hls_stream_drain(f->st);
  struct hls_rendition *r = hls__stream_rendition(f->st, "720p");
  assert_int_equal(r->parts_in, HLS_QUEUE_MAX);
  int k = HLS_QUEUE_MAX + 1;
  assert_int_equal(k % 4, 1); /* not a segment start: skipped after the loss */
  for (; k % 4 != 0; k++)
    feed_part(f, 0, k, "q");
  hls_stream_drain(f->st);
  assert_int_equal(r->parts_in, HLS_QUEUE_MAX);
  assert_int_equal(r->parts_dropped, 3);
  feed_part(f, 0, k, "s"); /* a segment start: taken */
  hls_stream_drain(f->st);
  assert_int_equal(r->parts_in, HLS_QUEUE_MAX + 1);
  assert_non_null(hls__rendition_open(r));
  assert_int_equal(hls__rendition_open(r)->part_count, 1);
}

static void test_segment_without_keyframe_is_cut(void **state) {
  struct fixture *f = *state;
  begin_std(f);
  int cap_parts = (int)(HLS_SEGMENT_MAX_TARGETS * f->cfg.hls.segment_duration / 0.5); /* 0.5 s parts */
  for (int k = 0; k < cap_parts + 10; k++) {                                          /* one keyframe, at the start */
    struct hls_part_info info = {.timeline = f->timeline,
                                 .rendition = 0,
                                 .segment_start = k == 0,
                                 .independent = k == 0,
                                 .start_us = k * 500000LL,
                                 .duration_us = 500000,
                                 .pdt_ms = T0 + k * 500LL,
                                 .frames = 15};
    f->sink.on_part(f->sink.opaque, &info, hls_blob_copy("p", 1));
  }
  hls_stream_drain(f->st);
  struct hls_rendition *r = hls__stream_rendition(f->st, "720p");
  struct hls_segment *s = hls__rendition_segment(r, 0);
  assert_non_null(s);
  assert_true(s->complete);
  assert_int_equal(s->part_count, cap_parts);
  assert_true(s->duration <= HLS_SEGMENT_MAX_TARGETS * f->cfg.hls.segment_duration + 1e-9);
  assert_int_equal(s->data->len, cap_parts);
  assert_null(hls__rendition_open(r));
  assert_int_equal(r->parts_dropped, 10);
  assert_int_equal(r->segments_cut, 1);
  char *pl = render(r);
  assert_non_null(strstr(pl, "#EXT-X-TARGETDURATION:6\n"));
  free(pl);
  /* the next keyframe starts the next segment */
  struct hls_part_info key = {.timeline = f->timeline,
                              .rendition = 0,
                              .segment_start = true,
                              .independent = true,
                              .start_us = 20000000,
                              .duration_us = 500000,
                              .pdt_ms = T0 + 20000,
                              .frames = 15};
  f->sink.on_part(f->sink.opaque, &key, hls_blob_copy("k", 1));
  hls_stream_drain(f->st);
  assert_non_null(hls__rendition_open(r));
  assert_int_equal(hls__rendition_open(r)->msn, 1);
  struct buf b;
  buf_init(&b);
  hls_server_metrics(f->srv, &b);
  assert_non_null(strstr(b.data, "galarelay_hls_segments_cut_total{channel=\"gala\",rendition=\"720p\"} 1\n"));
  buf_free(&b);
}

static void test_pdt_format(void **state) {
  (void)state;
  char s[40];
  hls_format_pdt(T0 + 123, s, sizeof s);
  assert_string_equal(s, "2023-11-14T22:13:20.123Z");
}

static void test_metrics(void **state) {
  struct fixture *f = *state;
  begin_std(f);
  feed_part(f, 0, 0, "v");
  hls_stream_drain(f->st);
  struct buf b;
  buf_init(&b);
  hls_server_metrics(f->srv, &b);
  assert_non_null(strstr(b.data, "galarelay_hls_parts_total{channel=\"gala\",rendition=\"720p\"} 1\n"));
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_media_playlist_golden, setup, teardown),
      cmocka_unit_test_setup_teardown(test_master_golden, setup, teardown),
      cmocka_unit_test_setup_teardown(test_discontinuity_and_restart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crash_restart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_saved_layout_restart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_saved_layout_bad_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_saved_layout_full, setup, teardown),
      cmocka_unit_test_setup_teardown(test_old_timeline_dropped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_preload_hint_across_timelines, setup, teardown),
      cmocka_unit_test_setup_teardown(test_layout_change_removes_rendition, setup, teardown),
      cmocka_unit_test_setup_teardown(test_record_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_record_queue_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_segment_without_keyframe_is_cut, setup, teardown),
      cmocka_unit_test_setup_teardown(test_part_queue_bound, setup, teardown),
      cmocka_unit_test(test_pdt_format),
      cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
