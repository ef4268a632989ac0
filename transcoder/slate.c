/* slate: the standby stream (see slate.h). The encoding happens once, in
 * slate_new(); replaying is reference counting and timestamp arithmetic.
 *
 * Why a replayed GOP is a valid stream: x264 is given the same picture
 * gop_len times with no B-frames, so the GOP is an IDR followed by
 * P-frames that only reference their predecessor. Every replay starts at
 * the IDR (frame_num and POC restart there), and a replay may be cut short
 * at any frame by the next one, so the decoder always sees the sequence
 * x264 wrote, or a prefix of it followed by a fresh IDR. The silent AAC
 * frame repeats: overlapping windows of silence decode to silence. */
#include "transcoder/slate.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libavutil/samplefmt.h>
#include <libavutil/time.h>

#include <uv.h>

#include "core/log.h"
#include "transcoder/slate_picture.h"

struct slate_rend {
  enum hls_media_kind kind;
  AVCodecParameters *par;
  AVPacket **gop; /* video: the encoded GOP */
  int gop_len;
  AVPacket *aac; /* audio: one frame of silence */
  int64_t n;     /* frames returned since the rewind */
  int pos;       /* video: the next GOP index */
  int64_t seg;   /* video: segment index of the last frame */
};

struct slate {
  struct slate_params params;
  struct hls_stream_layout layout;
  struct slate_rend r[HLS_MAX_RENDITIONS];
  int64_t frame_ms, seg_ms;
};

/* ---- encoding, once ---- */

static int encode_gop(struct slate *s, struct slate_rend *r, const struct hls_rendition_desc *d) {
  AVFrame *pic = slate_picture(s->params.title, s->params.image, d->width, d->height);
  const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
  AVCodecContext *c = codec ? avcodec_alloc_context3(codec) : NULL;
  AVPacket *pkt = av_packet_alloc();
  r->gop_len = (int)(s->seg_ms / s->frame_ms) + 2; /* a segment holds at most this many */
  r->gop = calloc((size_t)r->gop_len, sizeof(*r->gop));
  int rc = !pic || !c || !pkt || !r->gop ? AVERROR(ENOMEM) : 0;
  if (rc == 0) {
    c->width = d->width;
    c->height = d->height;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = (AVRational){1, 1000};
    c->framerate = (AVRational){1000, (int)s->frame_ms};
    c->gop_size = r->gop_len + 1; /* no keyframe of x264's own inside the GOP */
    c->keyint_min = 1;
    c->max_b_frames = 0;
    c->thread_count = 1;
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (d->bandwidth > 0) { /* the IDR of each segment within the rendition's peak */
      c->rc_max_rate = d->bandwidth;
      c->rc_buffer_size = (int)(d->bandwidth * s->params.segment_duration);
    }
    av_opt_set(c->priv_data, "preset", "superfast", 0);
    av_opt_set(c->priv_data, "tune", "stillimage", 0);
    av_opt_set(c->priv_data, "profile", "main", 0);
    av_opt_set(c->priv_data, "crf", "26", 0);
    av_opt_set(c->priv_data, "forced-idr", "1", 0);
    av_opt_set(c->priv_data, "x264-params", "scenecut=0:bframes=0:rc-lookahead=0:sync-lookahead=0:mbtree=0", 0);
    rc = avcodec_open2(c, codec, NULL);
  }
  int got = 0;
  for (int i = 0; rc >= 0 && i <= r->gop_len; i++) {
    if (i < r->gop_len) {
      AVFrame *f = av_frame_clone(pic);
      if (!f) {
        rc = AVERROR(ENOMEM);
        break;
      }
      f->pts = i * s->frame_ms;
      f->pict_type = i == 0 ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
      rc = avcodec_send_frame(c, f);
      av_frame_free(&f);
    } else {
      rc = avcodec_send_frame(c, NULL);
    }
    while (rc >= 0 && avcodec_receive_packet(c, pkt) == 0) {
      if (got < r->gop_len)
        r->gop[got++] = av_packet_clone(pkt);
      av_packet_unref(pkt);
    }
  }
  if (rc >= 0 && (got != r->gop_len || !r->gop[0] || !(r->gop[0]->flags & AV_PKT_FLAG_KEY)))
    rc = AVERROR_BUG;
  if (rc >= 0 && (!(r->par = avcodec_parameters_alloc()) || avcodec_parameters_from_context(r->par, c) < 0))
    rc = AVERROR(ENOMEM);
  if (rc < 0)
    log_error("slate", "video not encoded rendition=%s size=%dx%d err=%s", d->name, d->width, d->height,
              av_err2str(rc));
  av_packet_free(&pkt);
  avcodec_free_context(&c);
  av_frame_free(&pic);
  return rc < 0 ? rc : 0;
}

static int encode_silence(struct slate_rend *r) {
  const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_AAC);
  AVCodecContext *c = codec ? avcodec_alloc_context3(codec) : NULL;
  AVFrame *f = av_frame_alloc();
  AVPacket *pkt = av_packet_alloc();
  int rc = !c || !f || !pkt ? AVERROR(ENOMEM) : 0;
  if (rc == 0) {
    c->sample_fmt = AV_SAMPLE_FMT_FLTP;
    c->sample_rate = SLATE_SAMPLE_RATE;
    av_channel_layout_default(&c->ch_layout, 2);
    c->bit_rate = 64000;
    c->time_base = (AVRational){1, SLATE_SAMPLE_RATE};
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    rc = avcodec_open2(c, codec, NULL);
  }
  if (rc == 0) {
    f->nb_samples = c->frame_size > 0 ? c->frame_size : SLATE_AAC_FRAME;
    f->format = c->sample_fmt;
    f->sample_rate = c->sample_rate;
    rc = av_channel_layout_copy(&f->ch_layout, &c->ch_layout);
  }
  if (rc == 0)
    rc = av_frame_get_buffer(f, 0);
  if (rc == 0)
    rc = av_samples_set_silence(f->extended_data, 0, f->nb_samples, 2, c->sample_fmt);
  /* past the encoder's priming every frame of silence is the same: keep
   * the last of a few */
  for (int i = 0; rc >= 0 && i < 8; i++) {
    f->pts = (int64_t)i * f->nb_samples;
    rc = avcodec_send_frame(c, f);
    while (rc >= 0 && avcodec_receive_packet(c, pkt) == 0) {
      av_packet_free(&r->aac);
      r->aac = av_packet_clone(pkt);
      av_packet_unref(pkt);
    }
  }
  if (rc >= 0 && !r->aac)
    rc = AVERROR_BUG;
  if (rc >= 0 && (!(r->par = avcodec_parameters_alloc()) || avcodec_parameters_from_context(r->par, c) < 0))
    rc = AVERROR(ENOMEM);
  if (rc >= 0)
    r->par->initial_padding = 0; /* the replayed frames start at 0, no priming to hide */
  if (rc < 0)
    log_error("slate", "silence not encoded err=%s", av_err2str(rc));
  av_packet_free(&pkt);
  av_frame_free(&f);
  avcodec_free_context(&c);
  return rc < 0 ? rc : 0;
}

struct slate *slate_new(const struct slate_params *params, const struct hls_stream_layout *layout) {
  if (layout->count <= 0 || layout->count > HLS_MAX_RENDITIONS || params->segment_duration <= 0 ||
      params->part_duration <= 0)
    return NULL;
  struct slate *s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  s->params = *params;
  s->layout = *layout;
  s->frame_ms = slate_frame_ms_for(params->part_duration);
  s->seg_ms = (int64_t)(params->segment_duration * 1000 + 0.5);
  int64_t t0 = av_gettime_relative();
  for (int i = 0; i < layout->count; i++) {
    const struct hls_rendition_desc *d = &layout->r[i];
    s->r[i].kind = d->kind;
    int rc = d->kind == HLS_VIDEO ? encode_gop(s, &s->r[i], d) : encode_silence(&s->r[i]);
    if (rc < 0) {
      slate_free(s);
      return NULL;
    }
  }
  log_info("slate", "ready renditions=%d frame_ms=%lld image=%s took_ms=%lld", layout->count, (long long)s->frame_ms,
           params->image[0] ? params->image : "(card)", (long long)((av_gettime_relative() - t0) / 1000));
  slate_rewind(s);
  return s;
}

void slate_free(struct slate *s) {
  if (!s)
    return;
  for (int i = 0; i < HLS_MAX_RENDITIONS; i++) {
    struct slate_rend *r = &s->r[i];
    for (int k = 0; r->gop && k < r->gop_len; k++)
      av_packet_free(&r->gop[k]);
    free(r->gop);
    av_packet_free(&r->aac);
    avcodec_parameters_free(&r->par);
  }
  free(s);
}

bool slate_matches(const struct slate *s, const struct slate_params *p, const struct hls_stream_layout *l) {
  if (!s || strcmp(s->params.title, p->title) != 0 || strcmp(s->params.image, p->image) != 0 ||
      s->params.segment_duration != p->segment_duration || s->params.part_duration != p->part_duration ||
      s->layout.count != l->count)
    return false;
  for (int i = 0; i < l->count; i++) {
    const struct hls_rendition_desc *a = &s->layout.r[i], *b = &l->r[i];
    if (a->kind != b->kind || a->width != b->width || a->height != b->height || a->bandwidth != b->bandwidth ||
        strcmp(a->name, b->name) != 0)
      return false;
  }
  return true;
}

int64_t slate_frame_ms_for(double part_duration) {
  /* frames of ~100 ms or less that fill a part (parts must be at least
   * 85% of PART-TARGET): 333 ms parts -> 4 frames of 83 ms */
  int64_t part_ms = (int64_t)(part_duration * 1000 + 0.5);
  int64_t per_part = (part_ms + 99) / 100;
  int64_t ms = part_ms / (per_part > 0 ? per_part : 1);
  return ms > 0 ? ms : 1;
}

const AVCodecParameters *slate_codecpar(const struct slate *s, int index) {
  return index >= 0 && index < s->layout.count ? s->r[index].par : NULL;
}

int64_t slate_frame_ms(const struct slate *s) { return s->frame_ms; }

/* ---- replay ---- */

static int64_t rend_pts(const struct slate *s, const struct slate_rend *r, int64_t n) {
  if (r->kind == HLS_AUDIO)
    return n * SLATE_AAC_FRAME * 1000 / SLATE_SAMPLE_RATE;
  return n * s->frame_ms;
}

void slate_rewind(struct slate *s) {
  for (int i = 0; i < s->layout.count; i++) {
    s->r[i].n = 0;
    s->r[i].pos = 0;
    s->r[i].seg = -1;
  }
}

static int next_index(const struct slate *s) {
  int best = -1;
  int64_t best_pts = INT64_MAX;
  for (int i = 0; i < s->layout.count; i++) {
    int64_t pts = rend_pts(s, &s->r[i], s->r[i].n);
    if (pts < best_pts) { /* ties: the lower index (video first) */
      best = i;
      best_pts = pts;
    }
  }
  return best;
}

int64_t slate_peek_pts(const struct slate *s) {
  int i = next_index(s);
  return i < 0 ? INT64_MAX : rend_pts(s, &s->r[i], s->r[i].n);
}

int slate_next(struct slate *s, AVPacket *pkt) {
  int i = next_index(s);
  if (i < 0)
    return AVERROR_EOF;
  struct slate_rend *r = &s->r[i];
  int64_t pts = rend_pts(s, r, r->n);
  const AVPacket *src = r->aac;
  if (r->kind == HLS_VIDEO) {
    int64_t seg = pts / s->seg_ms;
    if (seg != r->seg || r->pos >= r->gop_len)
      r->pos = 0; /* a segment begins: the IDR */
    r->seg = seg;
    src = r->gop[r->pos++];
  }
  int rc = av_packet_ref(pkt, src);
  if (rc < 0)
    return rc;
  pkt->pts = pkt->dts = pts;
  pkt->duration = rend_pts(s, r, r->n + 1) - pts;
  pkt->stream_index = i;
  pkt->time_base = (AVRational){1, 1000};
  r->n++;
  return 0;
}

/* ---- the player thread ---- */

struct slate_player {
  char channel[64];
  struct slate_output out;
  uv_mutex_t mu; /* guards stop, flush */
  uv_cond_t cond;
  bool stop, flush;
  uv_thread_t thread;
  bool running; /* owner's thread only */
  struct slate_params params;
  struct hls_stream_layout layout;
  uint32_t timeline;
  struct slate *cache; /* the player thread's while running, else the owner's */
  _Atomic uint64_t packets;
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps until the monotonic time at_ms or a halt; true when halted.
 * uv_cond_timedwait waits on the monotonic clock too (a relative timeout);
 * spurious wake-ups go round again with what is left. */
static bool wait_until(struct slate_player *sp, int64_t at_ms) {
  uv_mutex_lock(&sp->mu);
  for (;;) {
    int64_t left = at_ms - mono_ms();
    if (sp->stop || left <= 0)
      break;
    uv_cond_timedwait(&sp->cond, &sp->mu, (uint64_t)left * 1000000u);
  }
  bool stop = sp->stop;
  uv_mutex_unlock(&sp->mu);
  return stop;
}

static void player_main(void *arg) {
  struct slate_player *sp = arg;
  if (!slate_matches(sp->cache, &sp->params, &sp->layout)) {
    slate_free(sp->cache);
    sp->cache = slate_new(&sp->params, &sp->layout);
  }
  struct slate *s = sp->cache;
  AVPacket *pkt = av_packet_alloc();
  void *w[HLS_MAX_RENDITIONS] = {0};
  if (!s || !pkt) {
    log_error("slate", "no slate channel=%s: the renditions stay empty until a feed", sp->channel);
    av_packet_free(&pkt);
    return;
  }
  slate_rewind(s);
  for (int i = 0; i < sp->layout.count; i++)
    w[i] = sp->out.open(sp->out.opaque, sp->timeline, i, slate_codecpar(s, i), (AVRational){1, 1000});
  int64_t t0 = mono_ms(), wall0 = wall_ms();
  int64_t tick = slate_frame_ms(s);
  bool halted = false;
  while (!halted) {
    int64_t now = mono_ms() - t0;
    while (slate_peek_pts(s) <= now && slate_next(s, pkt) == 0) {
      void *wr = w[pkt->stream_index];
      if (wr)
        sp->out.write(wr, pkt, wall0 + pkt->pts);
      av_packet_unref(pkt);
      atomic_fetch_add(&sp->packets, 1);
    }
    /* one wake-up per video frame; audio due meanwhile goes with it */
    halted = wait_until(sp, t0 + (now / tick + 1) * tick);
  }
  uv_mutex_lock(&sp->mu);
  bool flush = sp->flush;
  uv_mutex_unlock(&sp->mu);
  for (int i = 0; i < sp->layout.count; i++)
    if (w[i])
      sp->out.close(w[i], flush);
  av_packet_free(&pkt);
}

struct slate_player *slate_player_new(const char *channel, const struct slate_output *out) {
  struct slate_player *sp = calloc(1, sizeof(*sp));
  if (!sp)
    return NULL;
  snprintf(sp->channel, sizeof(sp->channel), "%s", channel);
  sp->out = *out;
  if (uv_cond_init(&sp->cond) != 0) {
    free(sp);
    return NULL;
  }
  if (uv_mutex_init(&sp->mu) != 0) {
    uv_cond_destroy(&sp->cond);
    free(sp);
    return NULL;
  }
  return sp;
}

int slate_player_play(struct slate_player *sp, const struct slate_params *params,
                      const struct hls_stream_layout *layout, uint32_t timeline) {
  if (sp->running)
    return -EBUSY;
  sp->params = *params;
  sp->layout = *layout;
  sp->timeline = timeline;
  sp->stop = sp->flush = false;
  atomic_store(&sp->packets, 0);
  int e = uv_thread_create(&sp->thread, player_main, sp);
  if (e != 0) {
    log_error("slate", "thread not started channel=%s err=%s", sp->channel, uv_strerror(e));
    return e;
  }
  sp->running = true;
  return 0;
}

void slate_player_halt(struct slate_player *sp, bool flush) {
  if (!sp || !sp->running)
    return;
  uv_mutex_lock(&sp->mu);
  sp->stop = true;
  sp->flush = flush;
  uv_cond_broadcast(&sp->cond);
  uv_mutex_unlock(&sp->mu);
  uv_thread_join(&sp->thread);
  sp->running = false;
}

bool slate_player_playing(const struct slate_player *sp) { return sp && sp->running; }

uint64_t slate_player_packets(struct slate_player *sp) { return atomic_load(&sp->packets); }

void slate_player_free(struct slate_player *sp) {
  if (!sp)
    return;
  slate_player_halt(sp, false);
  slate_free(sp->cache);
  uv_cond_destroy(&sp->cond);
  uv_mutex_destroy(&sp->mu);
  free(sp);
}
