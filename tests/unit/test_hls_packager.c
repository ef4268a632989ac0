/* Unit tests for transcoder/hls/hls_packager: H.264 from libx264 and AAC from
 * FFmpeg's encoder, made in the test, go through the packager; the init and
 * parts it emits must parse back with libavformat with every frame and
 * continuous timestamps, parts must stay within the part target, and
 * segments must begin with keyframes at the segment boundaries. HEVC clips
 * from the ffmpeg CLI (libx265) must come out as 'hvc1' with the CODECS
 * string of their own profile and level. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>

#include "transcoder/hls/hls_packager.h"

#define MAX_PARTS 256

struct collected {
  struct hls_blob *init;
  char codecs[64];
  int init_calls;
  struct hls_blob *parts[MAX_PARTS];
  struct hls_part_info info[MAX_PARTS];
  int n;
};

static void on_init(void *opaque, uint32_t timeline, int rendition, struct hls_blob *init, const char *codecs) {
  struct collected *c = opaque;
  assert_int_equal(timeline, 7);
  assert_int_equal(rendition, 1);
  hls_blob_unref(c->init);
  c->init = init;
  snprintf(c->codecs, sizeof c->codecs, "%s", codecs);
  c->init_calls++;
}

static void on_part(void *opaque, const struct hls_part_info *info, struct hls_blob *part) {
  struct collected *c = opaque;
  assert_true(c->n < MAX_PARTS);
  c->info[c->n] = *info;
  c->parts[c->n++] = part;
}

static void collected_free(struct collected *c) {
  hls_blob_unref(c->init);
  for (int i = 0; i < c->n; i++)
    hls_blob_unref(c->parts[i]);
}

/* ---- making media ---- */

struct encoded {
  AVCodecParameters *par;
  AVPacket *pkts[1024];
  int n;
  AVRational tb;
};

static void encoded_free(struct encoded *e) {
  for (int i = 0; i < e->n; i++)
    av_packet_free(&e->pkts[i]);
  avcodec_parameters_free(&e->par);
}

static void drain(AVCodecContext *enc, struct encoded *e, AVRational to_tb) {
  AVPacket *pkt = av_packet_alloc();
  while (avcodec_receive_packet(enc, pkt) == 0) {
    av_packet_rescale_ts(pkt, enc->time_base, to_tb);
    assert_true(e->n < 1024);
    e->pkts[e->n++] = av_packet_clone(pkt);
    av_packet_unref(pkt);
  }
  av_packet_free(&pkt);
}

/* frames at 30 fps, keyframes every 2 s, packets in milliseconds as RTMP gives them. */
static void make_h264(struct encoded *e, int frames, int bframes) {
  const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
  assert_non_null(codec);
  AVCodecContext *enc = avcodec_alloc_context3(codec);
  enc->width = 160;
  enc->height = 120;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = (AVRational){1, 30};
  enc->framerate = (AVRational){30, 1};
  enc->gop_size = 60;
  enc->max_b_frames = bframes;
  enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  av_opt_set(enc->priv_data, "preset", "ultrafast", 0);
  av_opt_set(enc->priv_data, "x264-params",
             bframes ? "scenecut=0:keyint=60:min-keyint=60:bframes=2" : "scenecut=0:keyint=60:min-keyint=60", 0);
  if (!bframes)
    av_opt_set(enc->priv_data, "tune", "zerolatency", 0);
  assert_int_equal(avcodec_open2(enc, codec, NULL), 0);
  AVFrame *f = av_frame_alloc();
  f->format = enc->pix_fmt;
  f->width = enc->width;
  f->height = enc->height;
  assert_int_equal(av_frame_get_buffer(f, 0), 0);
  e->tb = (AVRational){1, 1000};
  for (int i = 0; i < frames; i++) {
    av_frame_make_writable(f);
    for (int y = 0; y < f->height; y++)
      memset(f->data[0] + y * f->linesize[0], (y + i * 3) & 0xff, (size_t)f->width);
    memset(f->data[1], 128, (size_t)(f->linesize[1] * f->height / 2));
    memset(f->data[2], 128 + (i & 15), (size_t)(f->linesize[2] * f->height / 2));
    f->pts = i;
    f->pict_type = i % 60 == 0 ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
    assert_int_equal(avcodec_send_frame(enc, f), 0);
    drain(enc, e, e->tb);
  }
  avcodec_send_frame(enc, NULL);
  drain(enc, e, e->tb);
  e->par = avcodec_parameters_alloc();
  avcodec_parameters_from_context(e->par, enc);
  av_frame_free(&f);
  avcodec_free_context(&enc);
}

static void make_aac(struct encoded *e, double seconds) {
  const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_AAC);
  assert_non_null(codec);
  AVCodecContext *enc = avcodec_alloc_context3(codec);
  enc->sample_rate = 48000;
  enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
  av_channel_layout_default(&enc->ch_layout, 2);
  enc->bit_rate = 96000;
  enc->time_base = (AVRational){1, 48000};
  enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  assert_int_equal(avcodec_open2(enc, codec, NULL), 0);
  AVFrame *f = av_frame_alloc();
  f->format = enc->sample_fmt;
  f->nb_samples = enc->frame_size;
  f->sample_rate = 48000;
  av_channel_layout_copy(&f->ch_layout, &enc->ch_layout);
  assert_int_equal(av_frame_get_buffer(f, 0), 0);
  e->tb = (AVRational){1, 48000};
  int64_t total = (int64_t)(seconds * 48000);
  for (int64_t pos = 0; pos < total; pos += enc->frame_size) {
    av_frame_make_writable(f);
    for (int ch = 0; ch < 2; ch++) {
      float *d = (float *)f->data[ch];
      for (int i = 0; i < f->nb_samples; i++)
        d[i] = 0.3f * sinf((float)(pos + i) * 440.0f * 2 * 3.14159265f / 48000);
    }
    f->pts = pos;
    assert_int_equal(avcodec_send_frame(enc, f), 0);
    drain(enc, e, e->tb);
  }
  avcodec_send_frame(enc, NULL);
  drain(enc, e, e->tb);
  e->par = avcodec_parameters_alloc();
  avcodec_parameters_from_context(e->par, enc);
  av_frame_free(&f);
  avcodec_free_context(&enc);
}

/* HEVC from the ffmpeg CLI (libx265), read back with libavformat: hvcC
 * extradata from mp4, Annex B VPS/SPS/PPS from MPEG-TS. */
static void make_hevc(struct encoded *e, const char *path, const char *format) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=320x240:rate=25 -t 2 "
           "-c:v libx265 -x265-params keyint=25:min-keyint=25:scenecut=0:log-level=error -f %s %s",
           format, path);
  assert_int_equal(system(cmd), 0);
  AVFormatContext *fmt = NULL;
  assert_int_equal(avformat_open_input(&fmt, path, NULL, NULL), 0);
  assert_true(avformat_find_stream_info(fmt, NULL) >= 0);
  int v = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
  assert_true(v >= 0);
  e->par = avcodec_parameters_alloc();
  avcodec_parameters_copy(e->par, fmt->streams[v]->codecpar);
  e->tb = fmt->streams[v]->time_base;
  AVPacket *pkt = av_packet_alloc();
  while (av_read_frame(fmt, pkt) >= 0) {
    if (pkt->stream_index == v) {
      assert_true(e->n < 1024);
      e->pkts[e->n++] = av_packet_clone(pkt);
    }
    av_packet_unref(pkt);
  }
  av_packet_free(&pkt);
  avformat_close_input(&fmt);
}

/* What ffprobe says of the clip's video: "Main" -> 1, and general_level_idc. */
static void probe_hevc(const char *path, int *profile, int *level) {
  char cmd[512], line[128];
  snprintf(cmd, sizeof cmd,
           "ffprobe -v error -select_streams v:0 -show_entries stream=profile,level "
           "-of default=nw=1 %s",
           path);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  *profile = *level = -1;
  while (fgets(line, sizeof line, p)) {
    if (strcmp(line, "profile=Main\n") == 0)
      *profile = 1;
    else if (strcmp(line, "profile=Main 10\n") == 0)
      *profile = 2;
    sscanf(line, "level=%d", level);
  }
  assert_int_equal(pclose(p), 0);
  assert_true(*profile > 0 && *level > 0);
}

static bool has_box(const struct hls_blob *b, const char *type) {
  for (size_t i = 0; i + 4 <= b->len; i++)
    if (memcmp(b->data + i, type, 4) == 0)
      return true;
  return false;
}

/* ---- reading back ---- */

struct memfile {
  const uint8_t *data;
  size_t len, pos;
};

static int mem_read(void *opaque, uint8_t *buf, int size) {
  struct memfile *m = opaque;
  size_t n = m->len - m->pos < (size_t)size ? m->len - m->pos : (size_t)size;
  if (n == 0)
    return AVERROR_EOF;
  memcpy(buf, m->data + m->pos, n);
  m->pos += n;
  return (int)n;
}

static int64_t mem_seek(void *opaque, int64_t off, int whence) {
  struct memfile *m = opaque;
  if (whence == AVSEEK_SIZE)
    return (int64_t)m->len;
  whence &= ~AVSEEK_FORCE;
  int64_t pos = whence == SEEK_SET ? off : whence == SEEK_CUR ? (int64_t)m->pos + off : (int64_t)m->len + off;
  if (pos < 0 || pos > (int64_t)m->len)
    return -1;
  m->pos = (size_t)pos;
  return pos;
}

struct readback {
  int frames;
  int64_t dts[1024]; /* in microseconds */
  int key[1024];
  uint32_t tag; /* the sample entry's */
};

/* Demux init + parts[from..to) from memory. */
static void read_back(const struct collected *c, int from, int to, struct readback *rb) {
  size_t len = c->init->len;
  for (int i = from; i < to; i++)
    len += c->parts[i]->len;
  uint8_t *all = malloc(len);
  size_t off = c->init->len;
  memcpy(all, c->init->data, off);
  for (int i = from; i < to; i++) {
    memcpy(all + off, c->parts[i]->data, c->parts[i]->len);
    off += c->parts[i]->len;
  }
  struct memfile m = {all, len, 0};
  uint8_t *iobuf = av_malloc(4096);
  AVIOContext *pb = avio_alloc_context(iobuf, 4096, 0, &m, mem_read, NULL, mem_seek);
  AVFormatContext *fmt = avformat_alloc_context();
  fmt->pb = pb;
  assert_int_equal(avformat_open_input(&fmt, NULL, NULL, NULL), 0);
  assert_true(avformat_find_stream_info(fmt, NULL) >= 0);
  AVPacket *pkt = av_packet_alloc();
  memset(rb, 0, sizeof *rb);
  rb->tag = fmt->streams[0]->codecpar->codec_tag;
  while (av_read_frame(fmt, pkt) >= 0) {
    assert_true(rb->frames < 1024);
    rb->dts[rb->frames] = av_rescale_q(pkt->dts, fmt->streams[0]->time_base, (AVRational){1, 1000000});
    rb->key[rb->frames] = !!(pkt->flags & AV_PKT_FLAG_KEY);
    rb->frames++;
    av_packet_unref(pkt);
  }
  av_packet_free(&pkt);
  avformat_close_input(&fmt);
  av_freep(&pb->buffer);
  avio_context_free(&pb);
  free(all);
}

static void run_packager(struct encoded *e, struct collected *c, double part, double seg) {
  struct hls_packager_params params = {.timeline = 7, .rendition = 1, .part_duration = part, .segment_duration = seg};
  struct hls_packager_sink sink = {.on_init = on_init, .on_part = on_part, .opaque = c};
  struct hls_packager *pk = hls_packager_new(&params, &sink, e->par, e->tb);
  assert_non_null(pk);
  for (int i = 0; i < e->n; i++)
    assert_int_equal(hls_packager_write(pk, e->pkts[i], 1700000000000 + i), 0);
  assert_int_equal(hls_packager_flush(pk), 0);
  hls_packager_free(pk);
}

static int64_t us(const struct encoded *e, int64_t ts) { return av_rescale_q(ts, e->tb, (AVRational){1, 1000000}); }

static void check_video(int bframes) {
  struct encoded e = {0};
  make_h264(&e, 180, bframes);
  assert_int_equal(e.n, 180);
  struct collected c = {0};
  run_packager(&e, &c, 0.333, 2.0);
  assert_int_equal(c.init_calls, 1);
  if (!bframes)
    assert_string_equal(c.codecs, "avc1.42c00b"); /* constrained baseline, level 1.1 */
  assert_memory_equal(c.codecs, "avc1.", 5);

  int segments = 0, frames = 0;
  for (int i = 0; i < c.n; i++) {
    const struct hls_part_info *p = &c.info[i];
    assert_true(p->duration_us <= 333000);
    assert_true(p->frames > 0);
    frames += p->frames;
    if (i > 0 && !p->segment_start)
      assert_int_equal(p->start_us, c.info[i - 1].start_us + c.info[i - 1].duration_us);
    if (p->segment_start) {
      assert_true(p->independent);
      /* segments begin at 0, 2 and 4 s */
      assert_true(llabs(p->start_us - segments * 2000000 - (bframes ? -67000 : 0)) <= 70000);
      segments++;
    }
  }
  assert_int_equal(segments, 3);
  assert_int_equal(frames, 180);
  assert_true(c.info[0].segment_start);

  /* everything parses back, every frame, with the input's dts */
  struct readback rb;
  read_back(&c, 0, c.n, &rb);
  assert_int_equal(rb.frames, 180);
  for (int i = 0; i < 180; i++)
    assert_true(llabs(rb.dts[i] - (us(&e, e.pkts[i]->dts) - us(&e, e.pkts[0]->dts))) <= 1000);

  /* the second segment alone (init + its parts) decodes from a keyframe, at its time */
  int s1 = -1, s2 = -1;
  for (int i = 1; i < c.n; i++)
    if (c.info[i].segment_start) {
      if (s1 < 0)
        s1 = i;
      else if (s2 < 0)
        s2 = i;
    }
  read_back(&c, s1, s2, &rb);
  assert_int_equal(rb.frames, 60);
  assert_true(rb.key[0]);
  assert_true(llabs(rb.dts[0] - (c.info[s1].start_us - c.info[0].start_us)) <= 1000);

  collected_free(&c);
  encoded_free(&e);
}

static void test_video_parts_and_segments(void **state) {
  (void)state;
  check_video(0);
}

static void test_video_bframes(void **state) {
  (void)state;
  check_video(2);
}

static void test_audio(void **state) {
  (void)state;
  struct encoded e = {0};
  make_aac(&e, 5.0);
  struct collected c = {0};
  run_packager(&e, &c, 0.333, 2.0);
  assert_string_equal(c.codecs, "mp4a.40.2");
  int segments = 0, frames = 0;
  for (int i = 0; i < c.n; i++) {
    assert_true(c.info[i].independent);
    assert_true(c.info[i].duration_us <= 333000);
    assert_true(c.info[i].duration_us >= 250000 || i == c.n - 1 || c.info[i + 1].segment_start);
    frames += c.info[i].frames;
    segments += c.info[i].segment_start;
  }
  /* boundaries at 0, 2, 4 s; the encoder's priming packet (pts < 0) is in the first */
  assert_true(e.pkts[0]->pts < 0);
  assert_int_equal(segments, 3);
  assert_int_equal(frames, e.n);
  struct readback rb;
  read_back(&c, 0, c.n, &rb);
  assert_int_equal(rb.frames, e.n);
  for (int i = 1; i < rb.frames; i++)
    assert_true(rb.dts[i] > rb.dts[i - 1]);
  collected_free(&c);
  encoded_free(&e);
}

static void test_waits_for_keyframe(void **state) {
  (void)state;
  struct encoded e = {0};
  make_h264(&e, 90, 0);
  struct collected c = {0};
  struct hls_packager_params params = {.timeline = 7, .rendition = 1, .part_duration = 0.5, .segment_duration = 1.0};
  struct hls_packager_sink sink = {.on_init = on_init, .on_part = on_part, .opaque = &c};
  struct hls_packager *pk = hls_packager_new(&params, &sink, e.par, e.tb);
  for (int i = 10; i < e.n; i++) /* join mid-GOP: nothing until the keyframe at 2 s */
    hls_packager_write(pk, e.pkts[i], 0);
  hls_packager_flush(pk);
  hls_packager_free(pk);
  assert_int_equal(c.n > 0, 1);
  assert_true(c.info[0].segment_start && c.info[0].independent);
  assert_true(llabs(c.info[0].start_us - 2000000) <= 1000);
  /* part target 0.5 s, segment 1 s but keyframes only every 2 s: one segment */
  int frames = 0;
  for (int i = 0; i < c.n; i++) {
    frames += c.info[i].frames;
    assert_true(c.info[i].duration_us <= 500000);
    assert_int_equal(c.info[i].segment_start, i == 0 || c.info[i].start_us % 2000000 < 40000);
  }
  assert_int_equal(frames, 30);
  collected_free(&c);
  encoded_free(&e);
}

/* HEVC pass-through: the init's sample entry is 'hvc1' (Safari refuses
 * 'hev1') and CODECS carries the clip's own profile and level. */
static void check_hevc(const char *path, const char *format, bool annexb) {
  struct encoded e = {0};
  make_hevc(&e, path, format);
  assert_true(e.n >= 50);
  assert_true(e.par->extradata_size > 4);
  assert_int_equal(e.par->extradata[0] == 0 && e.par->extradata[1] == 0, annexb); /* else hvcC */
  int profile, level;
  probe_hevc(path, &profile, &level);
  struct collected c = {0};
  run_packager(&e, &c, 0.333, 1.0);
  assert_int_equal(c.init_calls, 1);
  assert_true(has_box(c.init, "hvc1"));
  assert_false(has_box(c.init, "hev1"));
  assert_true(has_box(c.init, "hvcC"));
  /* Main: compatibility flags 1 and 2 -> "6"; main tier; x265's
   * progressive, frame-only source -> constraint byte 0x90 */
  char want[64];
  snprintf(want, sizeof want, "hvc1.%d.%s.L%d.90", profile, profile == 1 ? "6" : "4", level);
  assert_string_equal(c.codecs, want);
  struct readback rb;
  read_back(&c, 0, c.n, &rb);
  assert_int_equal(rb.tag, MKTAG('h', 'v', 'c', '1'));
  assert_int_equal(rb.frames, e.n);
  assert_true(rb.key[0]);
  collected_free(&c);
  encoded_free(&e);
  unlink(path);
}

static void test_hevc_hvcc(void **state) {
  (void)state;
  check_hevc("test_hls_packager_hevc.mp4", "mp4", false);
}

static void test_hevc_annexb(void **state) {
  (void)state;
  check_hevc("test_hls_packager_hevc.ts", "mpegts", true);
}

static void set_extradata(AVCodecParameters *par, const uint8_t *x, size_t n) {
  av_freep(&par->extradata);
  par->extradata = av_mallocz(n + AV_INPUT_BUFFER_PADDING_SIZE);
  memcpy(par->extradata, x, n);
  par->extradata_size = (int)n;
}

static void test_hevc_codec_string(void **state) {
  (void)state;
  AVCodecParameters *par = avcodec_parameters_alloc();
  char out[64];
  par->codec_id = AV_CODEC_ID_HEVC;
  /* hvcC: Main 10, high tier, level 5.1 (153), constraint bytes B0 00 00 00 00 01 */
  uint8_t hvcc[23] = {1, 0x22, 0x20, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0x01, 153};
  set_extradata(par, hvcc, sizeof hvcc);
  hls_codec_string(par, out, sizeof out);
  assert_string_equal(out, "hvc1.2.4.H153.B0.0.0.0.0.1");
  /* profile space 1 ("A"), profile 4 with flags 4 and 5 (reversed: 0x30),
   * trailing zero constraint bytes left out */
  uint8_t rext[23] = {1, 0x44, 0x0c, 0, 0, 0, 0x98, 0x08, 0, 0, 0, 0, 93};
  set_extradata(par, rext, sizeof rext);
  hls_codec_string(par, out, sizeof out);
  assert_string_equal(out, "hvc1.A4.30.L93.98.8");
  /* Annex B VPS + SPS as x265 writes them (Main, level 3.1 = 93): the
   * zero bytes carry emulation prevention bytes (00 00 03) */
  static const uint8_t annexb[] = {0,    0,    0,    1,    0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0,
                                   0,    0x03, 0,    0x90, 0,    0,    0x03, 0,    0,    0x03, 0,    0x5d, 0x95,
                                   0x98, 0x09, 0,    0,    0,    1,    0x42, 0x01, 0x01, 0x01, 0x60, 0,    0,
                                   0x03, 0,    0x90, 0,    0,    0x03, 0,    0,    0x03, 0,    0x5d, 0xa0, 0x02,
                                   0x80, 0x80, 0,    0,    0,    1,    0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40};
  set_extradata(par, annexb, sizeof annexb);
  hls_codec_string(par, out, sizeof out);
  assert_string_equal(out, "hvc1.1.6.L93.90");
  /* the SPS alone (no VPS) and the VPS alone give the same */
  set_extradata(par, annexb + 28, 26);
  hls_codec_string(par, out, sizeof out);
  assert_string_equal(out, "hvc1.1.6.L93.90");
  set_extradata(par, annexb, 28);
  hls_codec_string(par, out, sizeof out);
  assert_string_equal(out, "hvc1.1.6.L93.90");
  /* nothing to read: Main at the demuxer's level, not a crash */
  set_extradata(par, annexb, 8);
  par->level = 120;
  hls_codec_string(par, out, sizeof out);
  assert_string_equal(out, "hvc1.1.6.L120.B0");
  avcodec_parameters_free(&par);
}

static void test_codec_string(void **state) {
  (void)state;
  AVCodecParameters *par = avcodec_parameters_alloc();
  char out[64];
  par->codec_id = AV_CODEC_ID_H264;
  static const uint8_t annexb[] = {0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1f, 0xaa, 0, 0, 0, 1, 0x68, 0xce};
  par->extradata = av_mallocz(sizeof annexb + AV_INPUT_BUFFER_PADDING_SIZE);
  memcpy(par->extradata, annexb, sizeof annexb);
  par->extradata_size = sizeof annexb;
  hls_codec_string(par, out, sizeof out);
  assert_string_equal(out, "avc1.4d401f");
  par->extradata[0] = 1; /* avcC: version, profile, compat, level */
  par->extradata[1] = 0x64;
  par->extradata[2] = 0x00;
  par->extradata[3] = 0x28;
  hls_codec_string(par, out, sizeof out);
  assert_string_equal(out, "avc1.640028");
  par->codec_id = AV_CODEC_ID_AAC;
  par->extradata[0] = 0x2b; /* AOT 5 (HE-AAC) */
  hls_codec_string(par, out, sizeof out);
  assert_string_equal(out, "mp4a.40.5");
  avcodec_parameters_free(&par);
}

int main(void) {
  av_log_set_level(AV_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_video_parts_and_segments),
      cmocka_unit_test(test_video_bframes),
      cmocka_unit_test(test_audio),
      cmocka_unit_test(test_waits_for_keyframe),
      cmocka_unit_test(test_codec_string),
      cmocka_unit_test(test_hevc_hvcc),
      cmocka_unit_test(test_hevc_annexb),
      cmocka_unit_test(test_hevc_codec_string),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
