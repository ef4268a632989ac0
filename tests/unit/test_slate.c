/* test_slate: the standby stream. What the slate replays decodes at every
 * rendition size (one decoder over several segments: the replayed GOPs
 * form one valid stream), the audio is silent AAC, timestamps advance by
 * whole frames, keyframes fall exactly on the segment clock, frames fill
 * LL-HLS parts, an image is letterboxed, and the player thread writes in
 * real time and closes its writers. */
#include <setjmp.h>
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <libavcodec/avcodec.h>

#include "transcoder/slate.h"

static struct hls_stream_layout ladder3(void) {
  struct hls_stream_layout l = {0};
  const struct {
    const char *name;
    int w, h;
  } v[] = {{"source", 640, 360}, {"240p", 426, 240}, {"144p", 256, 144}};
  for (int i = 0; i < 3; i++) {
    snprintf(l.r[i].name, sizeof l.r[i].name, "%s", v[i].name);
    l.r[i].kind = HLS_VIDEO;
    l.r[i].width = v[i].w;
    l.r[i].height = v[i].h;
    l.r[i].bandwidth = 400000;
  }
  snprintf(l.r[3].name, sizeof l.r[3].name, "audio");
  l.r[3].kind = HLS_AUDIO;
  l.r[3].channels = 2;
  l.count = 4;
  return l;
}

static struct slate_params params(void) {
  struct slate_params p = {.segment_duration = 2.0, .part_duration = 0.333};
  snprintf(p.title, sizeof p.title, "留浙云春晚");
  return p;
}

static AVCodecContext *decoder(const AVCodecParameters *par) {
  const AVCodec *c = avcodec_find_decoder(par->codec_id);
  assert_non_null(c);
  AVCodecContext *d = avcodec_alloc_context3(c);
  assert_non_null(d);
  assert_int_equal(avcodec_parameters_to_context(d, par), 0);
  d->pkt_timebase = (AVRational){1, 1000};
  assert_int_equal(avcodec_open2(d, c, NULL), 0);
  return d;
}

/* Decodes the packets of rendition `index` among the first `ms` of the
 * slate with one decoder; returns frames out, checks each frame with fn. */
static int decode_rendition(struct slate *s, int index, int64_t ms, void (*fn)(const AVFrame *, void *), void *arg) {
  AVCodecContext *d = decoder(slate_codecpar(s, index));
  AVPacket *pkt = av_packet_alloc();
  AVFrame *f = av_frame_alloc();
  int frames = 0;
  slate_rewind(s);
  while (slate_peek_pts(s) < ms) {
    assert_int_equal(slate_next(s, pkt), 0);
    if (pkt->stream_index == index) {
      assert_int_equal(avcodec_send_packet(d, pkt), 0);
      while (avcodec_receive_frame(d, f) == 0) {
        assert_int_equal(f->decode_error_flags, 0);
        fn(f, arg);
        frames++;
        av_frame_unref(f);
      }
    }
    av_packet_unref(pkt);
  }
  avcodec_send_packet(d, NULL);
  while (avcodec_receive_frame(d, f) == 0) {
    fn(f, arg);
    frames++;
    av_frame_unref(f);
  }
  av_frame_free(&f);
  av_packet_free(&pkt);
  avcodec_free_context(&d);
  return frames;
}

struct want_size {
  int w, h;
};

static void check_size(const AVFrame *f, void *arg) {
  const struct want_size *w = arg;
  assert_int_equal(f->width, w->w);
  assert_int_equal(f->height, w->h);
}

static void test_video_decodes_at_each_size(void **state) {
  (void)state;
  struct hls_stream_layout l = ladder3();
  struct slate_params p = params();
  struct slate *s = slate_new(&p, &l);
  assert_non_null(s);
  int64_t per_seg = 2000 / slate_frame_ms(s) + 1;
  for (int i = 0; i < 3; i++) {
    const AVCodecParameters *par = slate_codecpar(s, i);
    assert_int_equal(par->codec_id, AV_CODEC_ID_H264);
    assert_true(par->extradata_size > 0);
    struct want_size w = {l.r[i].width, l.r[i].height};
    /* three segments with one decoder: the replayed GOPs are one stream */
    int frames = decode_rendition(s, i, 6000, check_size, &w);
    assert_true(frames >= 3 * (per_seg - 1));
  }
  slate_free(s);
}

static void check_silence(const AVFrame *f, void *arg) {
  int *samples = arg;
  assert_int_equal(f->sample_rate, SLATE_SAMPLE_RATE);
  assert_int_equal(f->ch_layout.nb_channels, 2);
  assert_int_equal(f->format, AV_SAMPLE_FMT_FLTP);
  for (int c = 0; c < 2; c++) {
    const float *x = (const float *)f->extended_data[c];
    for (int k = 0; k < f->nb_samples; k++)
      assert_true(x[k] > -1e-4f && x[k] < 1e-4f);
  }
  *samples += f->nb_samples;
}

static void test_audio_is_silent_aac(void **state) {
  (void)state;
  struct hls_stream_layout l = ladder3();
  struct slate_params p = params();
  struct slate *s = slate_new(&p, &l);
  assert_non_null(s);
  const AVCodecParameters *par = slate_codecpar(s, 3);
  assert_int_equal(par->codec_id, AV_CODEC_ID_AAC);
  assert_true(par->extradata_size >= 2); /* AudioSpecificConfig */
  int samples = 0;
  int frames = decode_rendition(s, 3, 3000, check_silence, &samples);
  assert_true(frames >= 140); /* 3 s of 1024-sample frames at 48 kHz */
  assert_true(samples >= 140 * 1024);
  slate_free(s);
}

static void test_timestamps_and_segment_clock(void **state) {
  (void)state;
  struct hls_stream_layout l = ladder3();
  struct slate_params p = params();
  struct slate *s = slate_new(&p, &l);
  assert_non_null(s);
  int64_t fms = slate_frame_ms(s);
  assert_true(fms > 0 && fms <= 100);
  /* frames fill a part: at least 85% of PART-TARGET, never over it */
  int64_t per_part = 333 / fms;
  assert_true(per_part * fms <= 333 && per_part * fms * 100 >= 333 * 85);
  AVPacket *pkt = av_packet_alloc();
  int64_t last[4] = {-1, -1, -1, -1}, prev_any = -1;
  int keys[3] = {0};
  while (slate_peek_pts(s) < 10000) {
    assert_int_equal(slate_next(s, pkt), 0);
    int i = pkt->stream_index;
    assert_true(i >= 0 && i < 4);
    assert_true(pkt->pts >= prev_any); /* one timeline, in order */
    prev_any = pkt->pts;
    assert_int_equal(pkt->pts, pkt->dts);
    assert_true(pkt->pts > last[i]);
    assert_true(pkt->duration > 0);
    if (i < 3) {
      assert_int_equal(pkt->pts % fms, 0);
      assert_int_equal(pkt->duration, fms);
      bool first_of_segment = last[i] < 0 || pkt->pts / 2000 != last[i] / 2000;
      bool key = pkt->flags & AV_PKT_FLAG_KEY;
      assert_int_equal(key, first_of_segment);
      keys[i] += key;
    } else {
      assert_true(pkt->duration == 21 || pkt->duration == 22);
      if (last[i] >= 0) /* 1024 samples at 48 kHz = 21.33 ms, in whole ms */
        assert_true(pkt->pts - last[i] == 21 || pkt->pts - last[i] == 22);
    }
    last[i] = pkt->pts;
    av_packet_unref(pkt);
  }
  for (int i = 0; i < 3; i++)
    assert_int_equal(keys[i], 5); /* 0, 2, 4, 6, 8 s */
  slate_rewind(s);
  assert_int_equal(slate_peek_pts(s), 0);
  av_packet_free(&pkt);
  slate_free(s);
}

static void test_matches(void **state) {
  (void)state;
  struct hls_stream_layout l = ladder3();
  struct slate_params p = params();
  struct slate *s = slate_new(&p, &l);
  assert_non_null(s);
  assert_true(slate_matches(s, &p, &l));
  struct slate_params q = p;
  snprintf(q.title, sizeof q.title, "other");
  assert_false(slate_matches(s, &q, &l));
  struct hls_stream_layout m = l;
  m.r[1].height = 180;
  assert_false(slate_matches(s, &p, &m));
  assert_false(slate_matches(NULL, &p, &l));
  slate_free(s);
}

/* ---- images ---- */

/* A w x h PNG of one colour (RGB), written with libavcodec's encoder. */
static void write_png(const char *path, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  const AVCodec *c = avcodec_find_encoder(AV_CODEC_ID_PNG);
  assert_non_null(c);
  AVCodecContext *e = avcodec_alloc_context3(c);
  e->width = w;
  e->height = h;
  e->pix_fmt = AV_PIX_FMT_RGB24;
  e->time_base = (AVRational){1, 1};
  assert_int_equal(avcodec_open2(e, c, NULL), 0);
  AVFrame *f = av_frame_alloc();
  f->width = w;
  f->height = h;
  f->format = AV_PIX_FMT_RGB24;
  assert_int_equal(av_frame_get_buffer(f, 0), 0);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint8_t *px = f->data[0] + y * f->linesize[0] + 3 * x;
      px[0] = r;
      px[1] = g;
      px[2] = b;
    }
  f->pts = 0;
  AVPacket *pkt = av_packet_alloc();
  assert_int_equal(avcodec_send_frame(e, f), 0);
  avcodec_send_frame(e, NULL);
  assert_int_equal(avcodec_receive_packet(e, pkt), 0);
  FILE *out = fopen(path, "wb");
  assert_non_null(out);
  assert_int_equal(fwrite(pkt->data, 1, (size_t)pkt->size, out), (size_t)pkt->size);
  fclose(out);
  av_packet_free(&pkt);
  av_frame_free(&f);
  avcodec_free_context(&e);
}

struct luma {
  int center, left;
};

static void sample_luma(const AVFrame *f, void *arg) {
  struct luma *l = arg;
  l->center = f->data[0][(f->height / 2) * f->linesize[0] + f->width / 2];
  l->left = f->data[0][(f->height / 2) * f->linesize[0] + 4];
}

static void test_image_is_letterboxed(void **state) {
  (void)state;
  char path[64];
  snprintf(path, sizeof path, "/tmp/test_slate_%d.png", (int)getpid());
  write_png(path, 320, 240, 255, 255, 255); /* 4:3 white into 16:9: pillarbox */
  struct hls_stream_layout l = ladder3();
  l.count = 1;
  struct slate_params p = params();
  snprintf(p.image, sizeof p.image, "%s", path);
  struct slate *s = slate_new(&p, &l);
  unlink(path);
  assert_non_null(s);
  struct luma y = {0};
  assert_true(decode_rendition(s, 0, 100, sample_luma, &y) >= 1);
  assert_true(y.center > 200); /* the image */
  assert_true(y.left < 40);    /* the black bar */
  slate_free(s);
}

static void test_unreadable_image_falls_back_to_card(void **state) {
  (void)state;
  struct hls_stream_layout l = ladder3();
  struct slate_params p = params();
  snprintf(p.image, sizeof p.image, "/nonexistent/slate.png");
  struct slate *s = slate_new(&p, &l);
  assert_non_null(s);
  struct want_size w = {640, 360};
  assert_true(decode_rendition(s, 0, 500, check_size, &w) >= 1);
  slate_free(s);
}

/* ---- the player ---- */

struct rec {
  int opened, closed, flushed;
  int64_t packets[HLS_MAX_RENDITIONS];
  int64_t last_pts[HLS_MAX_RENDITIONS];
  int64_t first_arrival, last_arrival;
  struct rec_writer {
    struct rec *r;
    int index;
  } w[HLS_MAX_RENDITIONS];
};

static void *rec_open(void *opaque, uint32_t timeline, int index, const AVCodecParameters *par, AVRational tb) {
  struct rec *r = opaque;
  assert_int_equal(timeline, 7);
  assert_non_null(par);
  assert_int_equal(tb.num, 1);
  assert_int_equal(tb.den, 1000);
  r->opened++;
  r->w[index].r = r;
  r->w[index].index = index;
  r->last_pts[index] = -1;
  return &r->w[index];
}

static int rec_write(void *writer, const AVPacket *pkt, int64_t arrival_ms) {
  struct rec_writer *w = writer;
  struct rec *r = w->r;
  assert_int_equal(pkt->stream_index, w->index);
  assert_true(pkt->pts > r->last_pts[w->index]);
  r->last_pts[w->index] = pkt->pts;
  r->packets[w->index]++;
  if (!r->first_arrival)
    r->first_arrival = arrival_ms;
  r->last_arrival = arrival_ms;
  return 0;
}

static void rec_close(void *writer, bool flush) {
  struct rec_writer *w = writer;
  w->r->closed++;
  w->r->flushed += flush;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_player_real_time(void **state) {
  (void)state;
  struct rec rec = {0};
  struct slate_output out = {.open = rec_open, .write = rec_write, .close = rec_close, .opaque = &rec};
  struct slate_player *sp = slate_player_new("test", &out);
  assert_non_null(sp);
  struct hls_stream_layout l = ladder3();
  struct slate_params p = params();
  assert_int_equal(slate_player_play(sp, &p, &l, 7), 0);
  assert_true(slate_player_playing(sp));
  assert_int_equal(slate_player_play(sp, &p, &l, 7), -EBUSY); /* one at a time */
  /* wait for the first packet (the slate is made on the player's thread) */
  int64_t t0 = now_ms();
  while (slate_player_packets(sp) == 0 && now_ms() - t0 < 10000)
    usleep(5000);
  int64_t started = now_ms();
  usleep(1500 * 1000);
  int64_t elapsed = now_ms() - started;
  slate_player_halt(sp, true);
  assert_false(slate_player_playing(sp));
  assert_int_equal(rec.opened, 4);
  assert_int_equal(rec.closed, 4);
  assert_int_equal(rec.flushed, 4);
  /* real time: media written ~ time elapsed (one frame of slack + timers) */
  for (int i = 0; i < 4; i++) {
    assert_true(rec.last_pts[i] >= elapsed - 250);
    assert_true(rec.last_pts[i] <= elapsed + 250);
  }
  assert_true(rec.last_arrival - rec.first_arrival >= elapsed - 250);
  /* played again: the slate is reused, timestamps restart */
  memset(&rec, 0, sizeof rec);
  assert_int_equal(slate_player_play(sp, &p, &l, 7), 0);
  usleep(300 * 1000);
  slate_player_halt(sp, false);
  assert_int_equal(rec.flushed, 0);
  assert_int_equal(rec.closed, 4);
  assert_true(rec.packets[0] >= 1 && rec.last_pts[0] < 1000);
  slate_player_free(sp);
}

static void test_player_free_while_playing(void **state) {
  (void)state;
  struct rec rec = {0};
  struct slate_output out = {.open = rec_open, .write = rec_write, .close = rec_close, .opaque = &rec};
  struct slate_player *sp = slate_player_new("test", &out);
  struct hls_stream_layout l = ladder3();
  struct slate_params p = params();
  assert_int_equal(slate_player_play(sp, &p, &l, 7), 0);
  usleep(50 * 1000);
  slate_player_free(sp); /* halts, joins */
  assert_int_equal(rec.flushed, 0);
}

int main(void) {
  av_log_set_level(AV_LOG_ERROR); /* x264's statistics per encoder */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_video_decodes_at_each_size),
      cmocka_unit_test(test_audio_is_silent_aac),
      cmocka_unit_test(test_timestamps_and_segment_clock),
      cmocka_unit_test(test_matches),
      cmocka_unit_test(test_image_is_letterboxed),
      cmocka_unit_test(test_unreadable_image_falls_back_to_card),
      cmocka_unit_test(test_player_real_time),
      cmocka_unit_test(test_player_free_while_playing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
