/* test_pipeline: a channel's feed through the transcoding pipeline into a
 * recording writer. Clips are made at test time by the ffmpeg CLI (small,
 * ultrafast) and read back with libavformat as the channel would deliver
 * them: codec parameters, then packets in milliseconds. Checks: keyframes at
 * the same pts on every rung, the expected sizes, no B-frames, audio passed
 * through byte for byte, and the bad-input cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"
#include <libavformat/avformat.h>
#include <libavutil/time.h>
#include <uv.h>

#include "config/config.h"
#include "relay/channel.h"
#include "core/memguard.h"
#include "transcoder/hls/hls_packager.h"
#include "transcoder/pipeline.h"

#define MAX_PKTS 2048

struct rec_stream {
  int index;
  uint32_t timeline;
  int width, height;
  enum AVCodecID codec;
  int n;
  int64_t pts[MAX_PKTS], dts[MAX_PKTS];
  int size[MAX_PKTS];
  uint32_t sum[MAX_PKTS];
  bool key[MAX_PKTS];
  bool closed, flushed;
};

struct rec {
  struct hls_stream_layout layouts[8];
  int timelines, ended;
  struct rec_stream *s[64];
  int ns;
};

static struct rec rec;
static struct config cfg;

static uint32_t checksum(const uint8_t *d, int n) {
  uint32_t h = 2166136261u;
  for (int i = 0; i < n; i++)
    h = (h ^ d[i]) * 16777619u;
  return h;
}

static int rec_begin(void *opaque, struct pipeline *p, const struct hls_stream_layout *layout) {
  (void)opaque;
  if (rec.timelines < 8)
    rec.layouts[rec.timelines] = *layout;
  rec.timelines++;
  pipeline_begun(p, (uint32_t)rec.timelines);
  return 0;
}

static void *rec_open(void *opaque, uint32_t timeline, int index, const AVCodecParameters *par, AVRational tb) {
  (void)opaque;
  assert_int_equal(tb.num, 1);
  assert_int_equal(tb.den, 1000);
  struct rec_stream *s = calloc(1, sizeof(*s));
  s->index = index;
  s->timeline = timeline;
  s->width = par->width;
  s->height = par->height;
  s->codec = par->codec_id;
  if (par->codec_type == AVMEDIA_TYPE_VIDEO)
    assert_true(par->extradata_size > 0);
  rec.s[rec.ns++] = s;
  return s;
}

static int rec_write(void *w, const AVPacket *pkt, int64_t arrival_ms) {
  struct rec_stream *s = w;
  assert_true(arrival_ms > 0);
  if (s->n < MAX_PKTS) {
    s->pts[s->n] = pkt->pts;
    s->dts[s->n] = pkt->dts;
    s->size[s->n] = pkt->size;
    s->sum[s->n] = checksum(pkt->data, pkt->size);
    s->key[s->n] = pkt->flags & AV_PKT_FLAG_KEY;
    s->n++;
  }
  return 0;
}

static void rec_close(void *w, bool flush) {
  struct rec_stream *s = w;
  s->closed = true;
  s->flushed = flush;
}

static void rec_end(void *opaque) {
  (void)opaque;
  rec.ended++;
}

static const struct pipeline_output rec_out = {
    .begin = rec_begin, .open = rec_open, .write = rec_write, .close = rec_close, .end = rec_end};

static void rec_reset(void) {
  for (int i = 0; i < rec.ns; i++)
    free(rec.s[i]);
  memset(&rec, 0, sizeof(rec));
}

static struct rec_stream *rec_find(uint32_t timeline, int index) {
  for (int i = 0; i < rec.ns; i++)
    if (rec.s[i]->timeline == timeline && rec.s[i]->index == index)
      return rec.s[i];
  return NULL;
}

/* ---- clips ---- */

#define BASE_ARGS                                                                                                      \
  "-f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=44100 "                        \
  "-t 4.5 -c:v libx264 -preset ultrafast -g 60 -pix_fmt yuv420p -c:a aac -b:a 64k"
#define GOP10_ARGS                                                                                                     \
  "-f lavfi -i testsrc2=size=640x360:rate=30 -t 4.5 -c:v libx264 -preset ultrafast -g 300 "                            \
  "-pix_fmt yuv420p"

static const char *clip(const char *name, const char *args) {
  static char path[8][512];
  static int next;
  char *out = path[next++ % 8];
  snprintf(out, sizeof(path[0]), "test_pipeline_%s.flv", name);
  if (access(out, R_OK) == 0)
    return out;
  char cmd[2048];
  snprintf(cmd, sizeof(cmd), "ffmpeg -nostdin -loglevel error -y %s -f flv %s", args, out);
  assert_int_equal(system(cmd), 0);
  return out;
}

/* Input packets as the channel hands them over (ms time base). */
struct feed {
  AVFormatContext *fmt;
  int vstream, astream;
  struct channel_feed_info info;
};

static void feed_open(struct feed *f, const char *path) {
  memset(f, 0, sizeof(*f));
  assert_int_equal(avformat_open_input(&f->fmt, path, NULL, NULL), 0);
  assert_true(avformat_find_stream_info(f->fmt, NULL) >= 0);
  f->vstream = av_find_best_stream(f->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
  f->astream = av_find_best_stream(f->fmt, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
  if (f->vstream >= 0) {
    f->info.video = f->fmt->streams[f->vstream]->codecpar;
    f->info.fps = av_q2d(f->fmt->streams[f->vstream]->avg_frame_rate);
  }
  if (f->astream >= 0)
    f->info.audio = f->fmt->streams[f->astream]->codecpar;
}

/* mutate: called for each packet before it is pushed (may change it). */
typedef void (*mutate_fn)(AVPacket *pkt, int n);

static int feed_run(struct feed *f, struct pipeline *p, mutate_fn mutate, int64_t ts_shift,
                    struct rec_stream *audio_in) {
  AVPacket *pkt = av_packet_alloc();
  int n = 0;
  while (av_read_frame(f->fmt, pkt) >= 0) {
    AVStream *st = f->fmt->streams[pkt->stream_index];
    int idx = pkt->stream_index == f->vstream ? CHANNEL_VIDEO : pkt->stream_index == f->astream ? CHANNEL_AUDIO : -1;
    if (idx < 0) {
      av_packet_unref(pkt);
      continue;
    }
    av_packet_rescale_ts(pkt, st->time_base, (AVRational){1, 1000});
    pkt->pts += ts_shift;
    pkt->dts += ts_shift;
    pkt->stream_index = idx;
    if (mutate)
      mutate(pkt, n);
    if (idx == CHANNEL_AUDIO && audio_in && audio_in->n < MAX_PKTS)
      audio_in->sum[audio_in->n++] = checksum(pkt->data, pkt->size);
    pipeline_packet(p, pkt, 1700000000000 + pkt->dts);
    av_packet_unref(pkt);
    n++;
  }
  av_packet_free(&pkt);
  return n;
}

static void feed_close(struct feed *f) { avformat_close_input(&f->fmt); }

/* ---- checks ---- */

static int keys_of(const struct rec_stream *s, int64_t *out, int max) {
  int k = 0;
  for (int i = 0; i < s->n && k < max; i++)
    if (s->key[i])
      out[k++] = s->pts[i];
  return k;
}

static void assert_no_bframes(const struct rec_stream *s) {
  for (int i = 0; i < s->n; i++) {
    assert_int_equal(s->pts[i], s->dts[i]);
    if (i > 0)
      assert_true(s->dts[i] > s->dts[i - 1]);
  }
}

static int setup(void **state) {
  (void)state;
  rec_reset();
  config_defaults(&cfg);
  cfg.transcoder.rung_count = 2;
  struct config_rung *r = cfg.transcoder.rungs;
  snprintf(r[0].name, sizeof(r[0].name), "270p");
  r[0].height = 270;
  snprintf(r[1].name, sizeof(r[1].name), "180p");
  r[1].height = 180;
  for (int i = 0; i < 2; i++) {
    snprintf(r[i].preset, sizeof(r[i].preset), "ultrafast");
    snprintf(r[i].profile, sizeof(r[i].profile), "baseline");
    r[i].video_bitrate = 300;
    r[i].max_rate = 400;
    r[i].priority = 10 * (2 - i);
  }
  cfg.transcoder.threads = 1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  rec_reset();
  return 0;
}

static struct pipeline *run_clip(const char *path, mutate_fn mutate, struct rec_stream *audio_in) {
  struct pipeline *p = pipeline_new("test", &cfg.transcoder, &cfg.hls, &rec_out, false);
  assert_non_null(p);
  struct feed f;
  feed_open(&f, path);
  assert_int_equal(pipeline_start(p, &f.info), 0);
  feed_run(&f, p, mutate, 0, audio_in);
  pipeline_stop(p);
  pipeline_wait_idle(p);
  feed_close(&f);
  return p;
}

/* ---- cases ---- */

static void ladder_aligned_keyframes(void **state) {
  (void)state;
  const char *path = clip("base", BASE_ARGS);
  static struct rec_stream audio_in;
  memset(&audio_in, 0, sizeof(audio_in));
  struct pipeline *p = run_clip(path, NULL, &audio_in);

  assert_int_equal(rec.timelines, 1);
  assert_int_equal(rec.ended, 1);
  const struct hls_stream_layout *lay = &rec.layouts[0];
  assert_int_equal(lay->count, 4); /* source, 270p, 180p, audio */
  assert_string_equal(lay->r[0].name, "source");
  assert_string_equal(lay->r[1].name, "270p");
  assert_int_equal(lay->r[1].width, 480);
  assert_int_equal(lay->r[1].height, 270);
  assert_string_equal(lay->r[2].name, "180p");
  assert_int_equal(lay->r[2].width, 320);
  assert_int_equal(lay->r[3].kind, HLS_AUDIO);

  struct rec_stream *src = rec_find(1, 0), *r270 = rec_find(1, 1), *r180 = rec_find(1, 2), *aud = rec_find(1, 3);
  assert_non_null(src);
  assert_non_null(r270);
  assert_non_null(r180);
  assert_non_null(aud);
  assert_int_equal(r270->width, 480);
  assert_int_equal(r270->height, 270);
  assert_int_equal(r180->width, 320);
  assert_int_equal(r180->height, 180);
  assert_int_equal(r270->codec, AV_CODEC_ID_H264);

  int64_t k1[16], k2[16], ks[16];
  int n1 = keys_of(r270, k1, 16), n2 = keys_of(r180, k2, 16), ns = keys_of(src, ks, 16);
  assert_int_equal(n1, 3); /* 0, 2 s, 4 s */
  assert_int_equal(n2, 3);
  for (int i = 0; i < n1; i++) {
    assert_int_equal(k1[i], k2[i]);
    if (i == 0)
      assert_int_equal(k1[0], r270->pts[0]); /* the first frame */
    else                                     /* then the first frame at or past each multiple of 2 s */
      assert_true(k1[i] >= i * 2000 && k1[i] < i * 2000 + 34);
  }
  assert_true(ns >= 3); /* the source passed through keeps its own */
  bool has2000 = false;
  for (int i = 0; i < ns; i++)
    has2000 = has2000 || ks[i] == k1[1];
  assert_true(has2000);
  assert_no_bframes(r270);
  assert_no_bframes(r180);
  assert_true(r270->n >= 130 && r180->n == r270->n);
  assert_true(r270->flushed && r180->flushed && src->flushed && aud->flushed);

  /* audio: every packet, untouched */
  assert_int_equal(aud->n, audio_in.n);
  for (int i = 0; i < aud->n; i++)
    assert_int_equal(aud->sum[i], audio_in.sum[i]);

  struct pipeline_stats st;
  pipeline_get_stats(p, &st);
  assert_int_equal(st.decode_errors, 0);
  assert_int_equal(st.input_dropped, 0);
  pipeline_free(p);
}

static void long_gop_source_left_out(void **state) {
  (void)state;
  const char *path = clip("gop10", GOP10_ARGS);
  struct pipeline *p = run_clip(path, NULL, NULL);
  assert_int_equal(rec.timelines, 1);
  const struct hls_stream_layout *lay = &rec.layouts[0];
  assert_int_equal(lay->count, 2); /* 270p, 180p; no source, no audio */
  assert_string_equal(lay->r[0].name, "270p");
  struct rec_stream *r = rec_find(1, 0);
  int64_t k[16];
  assert_int_equal(keys_of(r, k, 16), 3); /* still 2 s segments */
  assert_int_equal(k[1], 2000);
  assert_int_equal(k[2], 4000);
  pipeline_free(p);
}

/* What the channel measured of a standby feed (channel_feed_info) decides
 * at the first keyframe: the source's bandwidth is the channel's bitrate,
 * and a keyframe interval past the segment leaves the source rung out
 * without waiting to see it. */
static void channel_measures_used(void **state) {
  (void)state;
  const char *path = clip("base", BASE_ARGS);
  for (int round = 0; round < 2; round++) {
    rec_reset();
    struct pipeline *p = pipeline_new("test", &cfg.transcoder, &cfg.hls, &rec_out, false);
    assert_non_null(p);
    struct feed f;
    feed_open(&f, path);
    f.info.key_interval_ms = round == 0 ? 1000 : 10000;
    f.info.video_kbps = 777;
    assert_int_equal(pipeline_start(p, &f.info), 0);
    feed_run(&f, p, NULL, 0, NULL);
    pipeline_stop(p);
    pipeline_wait_idle(p);
    feed_close(&f);
    assert_int_equal(rec.timelines, 1);
    const struct hls_stream_layout *lay = &rec.layouts[0];
    if (round == 0) {
      assert_string_equal(lay->r[0].name, "source");
      assert_int_equal(lay->r[0].average_bandwidth, 777000);
    } else {
      assert_string_equal(lay->r[0].name, "270p");
    }
    pipeline_free(p);
  }
}

static void shift_back(AVPacket *pkt, int n) {
  (void)n;
  if (pkt->dts >= 2500) { /* the encoder restarted its clock */
    pkt->dts -= 2000;
    pkt->pts -= 2000;
  }
}

static void timestamps_going_back_are_rebased(void **state) {
  (void)state;
  const char *path = clip("base", BASE_ARGS);
  struct pipeline *p = run_clip(path, shift_back, NULL);
  struct pipeline_stats st;
  pipeline_get_stats(p, &st);
  assert_true(st.ts_rebased >= 1);
  for (int i = 0; i < rec.ns; i++)
    for (int j = 1; j < rec.s[i]->n; j++)
      assert_true(rec.s[i]->dts[j] >= rec.s[i]->dts[j - 1]);
  struct rec_stream *r = rec_find(1, 1);
  assert_true(r->n >= 130);
  pipeline_free(p);
}

static void corrupt(AVPacket *pkt, int n) {
  if (pkt->stream_index != CHANNEL_VIDEO || n % 17 != 5 || (pkt->flags & AV_PKT_FLAG_KEY))
    return;
  if (av_packet_make_writable(pkt) < 0)
    return;
  for (int i = 4; i < pkt->size; i += 3)
    pkt->data[i] ^= 0x5a;
}

static void corrupt_nalus_counted(void **state) {
  (void)state;
  const char *path = clip("base", BASE_ARGS);
  struct pipeline *p = run_clip(path, corrupt, NULL);
  struct pipeline_stats st;
  pipeline_get_stats(p, &st);
  assert_true(st.decode_errors > 0);
  struct rec_stream *r = rec_find(1, 1);
  assert_non_null(r);
  assert_true(r->n > 60); /* the stream went on */
  pipeline_free(p);
}

static void audio_only_and_video_only(void **state) {
  (void)state;
  const char *a = clip("audio", "-f lavfi -i sine=sample_rate=48000 -t 2 -c:a aac");
  struct pipeline *p = run_clip(a, NULL, NULL);
  assert_int_equal(rec.timelines, 1);
  assert_int_equal(rec.layouts[0].count, 1);
  assert_int_equal(rec.layouts[0].r[0].kind, HLS_AUDIO);
  assert_true(rec_find(1, 0)->n > 80);
  pipeline_free(p);
  rec_reset();

  const char *v = clip("gop10", GOP10_ARGS);
  cfg.transcoder.source_passthrough = false;
  p = run_clip(v, NULL, NULL);
  assert_int_equal(rec.layouts[0].count, 2);
  assert_int_equal(rec.layouts[0].r[1].kind, HLS_VIDEO);
  pipeline_free(p);
}

static void new_parameters_new_timeline(void **state) {
  (void)state;
  const char *a = clip("base", BASE_ARGS);
  const char *b = clip("small", "-f lavfi -i testsrc2=size=426x240:rate=30 -t 2.5 -c:v libx264 "
                                "-preset ultrafast -g 60 -pix_fmt yuv420p");
  struct pipeline *p = pipeline_new("test", &cfg.transcoder, &cfg.hls, &rec_out, false);
  struct feed f;
  feed_open(&f, a);
  pipeline_start(p, &f.info);
  feed_run(&f, p, NULL, 0, NULL);
  feed_close(&f);
  feed_open(&f, b); /* the encoder changed resolution: the channel starts again */
  pipeline_start(p, &f.info);
  feed_run(&f, p, NULL, 5000, NULL);
  pipeline_stop(p);
  pipeline_wait_idle(p);
  feed_close(&f);
  assert_int_equal(rec.timelines, 2);
  assert_int_equal(rec.ended, 2);
  assert_int_equal(rec.layouts[1].count, 2); /* source 426x240, 180p, no audio */
  assert_int_equal(rec.layouts[1].r[0].width, 426);
  assert_int_equal(rec.layouts[1].r[1].height, 180);
  assert_int_equal(rec.layouts[1].r[1].width, 320);
  struct rec_stream *r = rec_find(2, 1);
  int64_t k[8];
  assert_int_equal(keys_of(r, k, 8), 2);
  /* the first frame, then where the source's segment is cut: its keyframe
   * at 7000, the first in a new slot of the 2 s clock (not 6000, where the
   * source has none: segment N would differ between renditions) */
  assert_int_equal(k[0], 5000);
  assert_int_equal(k[1], 7000);
  pipeline_free(p);
}

static void in_band_size_change_reconfigures(void **state) {
  (void)state;
  /* SPS/PPS repeated in band: the decoder sees the new size by itself */
  const char *a = clip("inband_a", "-f lavfi -i testsrc2=size=640x360:rate=30 -t 2.5 -c:v libx264 "
                                   "-preset ultrafast -g 30 -x264-params repeat-headers=1 -pix_fmt yuv420p");
  const char *b = clip("inband_b", "-f lavfi -i testsrc2=size=480x360:rate=30 -t 2.5 -c:v libx264 "
                                   "-preset ultrafast -g 30 -x264-params repeat-headers=1 -pix_fmt yuv420p");
  struct pipeline *p = pipeline_new("test", &cfg.transcoder, &cfg.hls, &rec_out, false);
  struct feed f;
  feed_open(&f, a);
  pipeline_start(p, &f.info);
  feed_run(&f, p, NULL, 0, NULL);
  feed_close(&f);
  feed_open(&f, b); /* same feed, no new start */
  feed_run(&f, p, NULL, 3000, NULL);
  pipeline_stop(p);
  pipeline_wait_idle(p);
  feed_close(&f);
  struct pipeline_stats st;
  pipeline_get_stats(p, &st);
  assert_int_equal(st.reconfigures, 1);
  assert_int_equal(rec.timelines, 2);
  assert_int_equal(rec.ended, 2);
  assert_int_equal(rec.layouts[1].r[1].name[0], '2'); /* 270p: 360x270 now */
  assert_int_equal(rec.layouts[1].r[1].width, 360);
  struct rec_stream *r = rec_find(2, 1);
  assert_non_null(r);
  assert_int_equal(r->width, 360);
  assert_true(r->n > 50);
  assert_true(r->key[0]);
  pipeline_free(p);
}

/* The clip's video alone into p, paced like a live feed or as fast as it
 * is read; returns the packets pushed. */
static int feed_video(struct feed *f, struct pipeline *p, bool paced) {
  AVPacket *pkt = av_packet_alloc();
  int64_t t0 = av_gettime_relative();
  int video = 0;
  while (av_read_frame(f->fmt, pkt) >= 0) {
    if (pkt->stream_index != f->vstream) {
      av_packet_unref(pkt);
      continue;
    }
    av_packet_rescale_ts(pkt, f->fmt->streams[pkt->stream_index]->time_base, (AVRational){1, 1000});
    pkt->stream_index = CHANNEL_VIDEO;
    int64_t due = t0 + pkt->dts * 1000, now = av_gettime_relative();
    if (paced && due > now)
      usleep((useconds_t)(due - now));
    pipeline_packet(p, pkt, 1700000000000 + pkt->dts);
    av_packet_unref(pkt);
    video++;
  }
  av_packet_free(&pkt);
  return video;
}

/* A slow writer on the lowest-priority rung: in real time the pipeline
 * sheds that rung's GOPs, never the source, and the other rung goes on. */
static int slow_write(void *w, const AVPacket *pkt, int64_t arrival_ms) {
  struct rec_stream *s = w;
  if (s->index == 2)
    usleep(100 * 1000);
  return rec_write(w, pkt, arrival_ms);
}

static void overload_sheds_lowest_priority(void **state) {
  (void)state;
  struct pipeline_output out = rec_out;
  out.write = slow_write;
  struct pipeline *p = pipeline_new("test", &cfg.transcoder, &cfg.hls, &out, true);
  struct feed f;
  feed_open(&f, clip("base", BASE_ARGS));
  pipeline_start(p, &f.info);
  int video = feed_video(&f, p, true);
  pipeline_stop(p);
  pipeline_wait_idle(p);
  struct pipeline_stats st;
  pipeline_get_stats(p, &st);
  feed_close(&f);
  assert_false(st.live);
  assert_int_equal(st.rendition_count, 3); /* source, 270p, 180p */
  assert_string_equal(st.r[2].name, "180p");
  assert_true(st.r[2].gops_dropped >= 1);
  assert_int_equal(st.r[1].gops_dropped, 0);
  assert_int_equal(st.r[1].frames_out, (uint64_t)video);
  assert_int_equal(rec_find(1, 0)->n, video); /* the source: every packet */
  pipeline_free(p);
}

/* Near the memory ceiling (server.memory_limit_mb) the lowest-priority
 * rung is shed first though nothing lags, and the source keeps every
 * packet; with the guard gone, nothing more is shed. */
static void memory_ceiling_sheds_lowest_priority(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  assert_int_equal(memguard_start(&loop, 1), 0); /* 1 MiB: we are past 90 % of it */
  assert_true(memguard_near_limit());
  struct pipeline *p = pipeline_new("test", &cfg.transcoder, &cfg.hls, &rec_out, true);
  struct feed f;
  feed_open(&f, clip("base", BASE_ARGS));
  pipeline_start(p, &f.info);
  int video = feed_video(&f, p, false);
  pipeline_stop(p);
  pipeline_wait_idle(p);
  memguard_stop();
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_false(memguard_near_limit());
  struct pipeline_stats st;
  pipeline_get_stats(p, &st);
  feed_close(&f);
  assert_int_equal(st.rendition_count, 3); /* source, 270p, 180p */
  assert_true(st.r[2].gops_dropped >= 1);
  assert_true(st.r[2].gops_dropped >= st.r[1].gops_dropped); /* the lowest priority first */
  assert_int_equal(rec_find(1, 0)->n, video);                /* the source: every packet */
  pipeline_free(p);
}

/* ---- through the real packager ---- */

struct pk_rec {
  _Atomic int init_count; /* from every rung thread */
  int segs[8];            /* per rendition: segment starts */
  int64_t seg_start_us[8][16];
  int parts[8];
};
static struct pk_rec pkr;

static void pk_on_init(void *opaque, uint32_t timeline, int rendition, struct hls_blob *init, const char *codecs) {
  (void)opaque;
  (void)timeline;
  (void)rendition;
  assert_true(strlen(codecs) > 0);
  pkr.init_count++;
  hls_blob_unref(init);
}

static void pk_on_part(void *opaque, const struct hls_part_info *info, struct hls_blob *part) {
  (void)opaque;
  int r = info->rendition;
  if (r >= 0 && r < 8) {
    pkr.parts[r]++;
    if (info->segment_start && pkr.segs[r] < 16)
      pkr.seg_start_us[r][pkr.segs[r]++] = info->start_us;
  }
  hls_blob_unref(part);
}

static void *pk_open(void *opaque, uint32_t timeline, int index, const AVCodecParameters *par, AVRational tb) {
  (void)opaque;
  struct hls_packager_params params = {
      .timeline = timeline, .rendition = index, .part_duration = 0.333, .segment_duration = 2.0};
  struct hls_packager_sink sink = {.on_init = pk_on_init, .on_part = pk_on_part};
  return hls_packager_new(&params, &sink, par, tb);
}

static int pk_write(void *w, const AVPacket *pkt, int64_t arrival_ms) { return hls_packager_write(w, pkt, arrival_ms); }

static void pk_close(void *w, bool flush) {
  if (flush)
    hls_packager_flush(w);
  hls_packager_free(w);
}

/* Segments of every rendition start at the same times: with an encoder
 * whose GOP divides the segment, from timestamp 0; and with a 1.5 s GOP on
 * a clock that starts at 1234 ms (an encoder after a reconnect, a feed on
 * the channel's output clock), where the source is cut at 1234, 2734 and
 * 4234 (its first keyframe in each new 2 s slot) and the rungs must be too. */
static void segments_align_in_the_packager(void **state) {
  (void)state;
  const char *clips[2] = {clip("base", BASE_ARGS),
                          clip("gop45", "-f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i "
                                        "sine=frequency=440:sample_rate=44100 -t 4.5 -c:v libx264 "
                                        "-preset ultrafast -g 45 -pix_fmt yuv420p -c:a aac -b:a 64k")};
  const int64_t shift[2] = {0, 1234};
  const int64_t want_starts[2][3] = {{0, 2000, 4000}, {1234, 2734, 4234}};
  for (int c = 0; c < 2; c++) {
    memset(&pkr, 0, sizeof(pkr));
    struct pipeline_output out = rec_out;
    out.open = pk_open;
    out.write = pk_write;
    out.close = pk_close;
    struct pipeline *p = pipeline_new("test", &cfg.transcoder, &cfg.hls, &out, false);
    struct feed f;
    feed_open(&f, clips[c]);
    pipeline_start(p, &f.info);
    feed_run(&f, p, NULL, shift[c], NULL);
    pipeline_stop(p);
    pipeline_wait_idle(p);
    feed_close(&f);
    assert_int_equal(pkr.init_count, 4);
    /* source, 270p, 180p: segments start at the same times */
    assert_int_equal(pkr.segs[0], 3);
    for (int r = 0; r < 3; r++) {
      assert_int_equal(pkr.segs[r], pkr.segs[0]);
      for (int i = 0; i < pkr.segs[0]; i++) /* (the timeline may start at the audio's priming) */
        assert_int_equal(pkr.seg_start_us[r][i] - pkr.seg_start_us[0][0],
                         (want_starts[c][i] - want_starts[c][0]) * 1000);
    }
    assert_true(pkr.parts[1] >= 12 && pkr.parts[3] >= 12);
    pipeline_free(p);
  }
}

int main(void) {
  av_log_set_level(AV_LOG_QUIET);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(ladder_aligned_keyframes, setup, teardown),
      cmocka_unit_test_setup_teardown(long_gop_source_left_out, setup, teardown),
      cmocka_unit_test_setup_teardown(channel_measures_used, setup, teardown),
      cmocka_unit_test_setup_teardown(timestamps_going_back_are_rebased, setup, teardown),
      cmocka_unit_test_setup_teardown(corrupt_nalus_counted, setup, teardown),
      cmocka_unit_test_setup_teardown(audio_only_and_video_only, setup, teardown),
      cmocka_unit_test_setup_teardown(new_parameters_new_timeline, setup, teardown),
      cmocka_unit_test_setup_teardown(in_band_size_change_reconfigures, setup, teardown),
      cmocka_unit_test_setup_teardown(overload_sheds_lowest_priority, setup, teardown),
      cmocka_unit_test_setup_teardown(memory_ceiling_sheds_lowest_priority, setup, teardown),
      cmocka_unit_test_setup_teardown(segments_align_in_the_packager, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
