/* pipeline_rung: the bounded queues of the pipeline and the rung encoder
 * threads (libx264 through libavcodec). A rung thread takes frames from
 * its queue, encodes them (a keyframe where the decode thread forced one)
 * and writes the packets to its rendition's writer; at end of timeline it
 * drains the encoder and closes the writer. */
#include "transcoder/pipeline_rung_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavutil/opt.h>

#include "core/log.h"
#include "transcoder/pipeline_int.h"

/* ---- bounded queue ---- */

int pipeline__q_init(struct queue *q, int bound) {
  q->bound = bound;
  q->size = bound + CONTROL_RESERVE;
  q->items = calloc((size_t)q->size, sizeof(*q->items));
  q->head = q->count = 0;
  q->closed = false;
  if (!q->items)
    return -ENOMEM;
  int e = uv_mutex_init(&q->mu);
  if (e == 0 && (e = uv_cond_init(&q->nonempty)) != 0)
    uv_mutex_destroy(&q->mu);
  if (e == 0 && (e = uv_cond_init(&q->nonfull)) != 0) {
    uv_cond_destroy(&q->nonempty);
    uv_mutex_destroy(&q->mu);
  }
  if (e != 0) {
    free(q->items);
    q->items = NULL;
  }
  return e;
}

void pipeline__qitem_clear(struct qitem *it) {
  av_packet_free(&it->pkt);
  av_frame_free(&it->frame);
  avcodec_parameters_free(&it->vpar);
  avcodec_parameters_free(&it->apar);
}

void pipeline__q_destroy(struct queue *q) {
  for (int i = 0; i < q->count; i++)
    pipeline__qitem_clear(&q->items[(q->head + i) % q->size]);
  free(q->items);
  q->items = NULL;
  uv_mutex_destroy(&q->mu);
  uv_cond_destroy(&q->nonempty);
  uv_cond_destroy(&q->nonfull);
}

int pipeline__q_push(struct queue *q, struct qitem *it, bool block) {
  bool control = it->kind != Q_PACKET && it->kind != Q_FRAME;
  int limit = control ? q->size : q->bound;
  uv_mutex_lock(&q->mu);
  while (q->count >= limit && !q->closed) {
    if (!block) {
      uv_mutex_unlock(&q->mu);
      return -EAGAIN;
    }
    uv_cond_wait(&q->nonfull, &q->mu);
  }
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    return -EPIPE;
  }
  q->items[(q->head + q->count) % q->size] = *it;
  q->count++;
  uv_cond_signal(&q->nonempty);
  uv_mutex_unlock(&q->mu);
  memset(it, 0, sizeof(*it));
  return 0;
}

bool pipeline__q_pop(struct queue *q, struct qitem *out) {
  uv_mutex_lock(&q->mu);
  while (q->count == 0 && !q->closed)
    uv_cond_wait(&q->nonempty, &q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    return false;
  }
  *out = q->items[q->head];
  q->head = (q->head + 1) % q->size;
  q->count--;
  uv_cond_broadcast(&q->nonfull);
  uv_mutex_unlock(&q->mu);
  return true;
}

int pipeline__q_depth(struct queue *q) {
  uv_mutex_lock(&q->mu);
  int n = q->count;
  uv_mutex_unlock(&q->mu);
  return n;
}

void pipeline__q_close(struct queue *q) {
  uv_mutex_lock(&q->mu);
  q->closed = true;
  uv_cond_broadcast(&q->nonempty);
  uv_cond_broadcast(&q->nonfull);
  uv_mutex_unlock(&q->mu);
}

int pipeline__cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}


/* ---- encoders ---- */

int pipeline__rung_open_encoder(struct pipeline *p, struct rung *r) {
  const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
  if (!codec) {
    log_error("transcoder", "libx264 encoder missing channel=%s", p->channel);
    return AVERROR_ENCODER_NOT_FOUND;
  }
  AVCodecContext *c = avcodec_alloc_context3(codec);
  if (!c)
    return -ENOMEM;
  double fps = p->fps > 0 ? p->fps : 30;
  int nr = p->nrungs > 0 ? p->nrungs : 1;
  int threads = p->cfg.transcoder.threads;
  if (threads <= 0)
    threads = pipeline__cpu_count() / nr < 1 ? 1 : pipeline__cpu_count() / nr;
  if (threads > 8)
    threads = 8;
  /* x264 delays output by (frame threads - 1) + rc-lookahead frames: keep
   * both within the latency budget, slicing instead when frame threads
   * would not fit. */
  int budget = p->cfg.transcoder.latency_frames;
  bool sliced = threads > 1 && threads - 1 > budget;
  int lookahead = sliced ? budget : budget - (threads - 1);
  if (lookahead < 0)
    lookahead = 0;
  c->width = r->lr.width;
  c->height = r->lr.height;
  c->pix_fmt = AV_PIX_FMT_YUV420P;
  c->time_base = (AVRational){1, 1000};
  c->framerate = av_d2q(fps, 1001000);
  c->sample_aspect_ratio = p->src_sar;
  c->bit_rate = (int64_t)r->lr.video_bitrate * 1000;
  c->rc_max_rate = (int64_t)r->lr.max_rate * 1000;
  c->rc_buffer_size = (int)(r->lr.max_rate * 1000 * 2);
  c->gop_size = (int)(fps * p->cfg.hls.segment_duration * 4) + 1; /* forced ones come first */
  c->keyint_min = 1;
  c->max_b_frames = 0;
  c->thread_count = threads;
  c->thread_type = sliced ? FF_THREAD_SLICE : FF_THREAD_FRAME;
  c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  av_opt_set(c->priv_data, "preset", r->lr.preset, 0);
  av_opt_set(c->priv_data, "profile", r->lr.profile, 0);
  av_opt_set(c->priv_data, "forced-idr", "1", 0);
  char params[160];
  snprintf(params, sizeof(params), "scenecut=0:bframes=0:rc-lookahead=%d:sync-lookahead=0:sliced-threads=%d%s",
           lookahead, sliced ? 1 : 0, lookahead == 0 ? ":mbtree=0" : "");
  av_opt_set(c->priv_data, "x264-params", params, 0);
  int rc = avcodec_open2(c, codec, NULL);
  if (rc < 0) {
    log_error("transcoder", "x264 open failed channel=%s rendition=%s err=%s", p->channel, r->lr.name, av_err2str(rc));
    avcodec_free_context(&c);
    return rc;
  }
  r->enc = c;
  return 0;
}

/* ---- rung threads ---- */

static int64_t rung_arrival(struct rung *r, int64_t pts) {
  for (unsigned i = 0; i < ARRIVAL_RING && i < r->amap_n; i++) {
    unsigned k = (r->amap_n - 1 - i) % ARRIVAL_RING;
    if (r->amap_pts[k] == pts)
      return r->amap_arr[k];
  }
  return r->amap_n ? r->amap_arr[(r->amap_n - 1) % ARRIVAL_RING] : 0;
}

static void rung_write_packets(struct rung *r, AVPacket *pkt) {
  struct pipeline *p = r->p;
  while (avcodec_receive_packet(r->enc, pkt) == 0) {
    atomic_fetch_add(&p->rs[r->index].out, 1);
    if (r->writer && p->out.write(r->writer, pkt, rung_arrival(r, pkt->pts)) < 0)
      atomic_fetch_add(&p->rs[r->index].errors, 1);
    av_packet_unref(pkt);
  }
}

static void rung_encode(struct rung *r, AVFrame *f, bool forced, int64_t arrival, AVPacket *pkt) {
  if (f) {
    f->pict_type = forced ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
    unsigned k = r->amap_n++ % ARRIVAL_RING;
    r->amap_pts[k] = f->pts;
    r->amap_arr[k] = arrival;
  }
  int rc = avcodec_send_frame(r->enc, f);
  if (rc < 0 && rc != AVERROR_EOF) {
    atomic_fetch_add(&r->p->rs[r->index].errors, 1);
    log_warn("transcoder", "encode failed channel=%s rendition=%s err=%s", r->p->channel, r->lr.name, av_err2str(rc));
  }
  rung_write_packets(r, pkt);
}

void pipeline__rung_main(void *arg) {
  struct rung *r = arg;
  struct pipeline *p = r->p;
  AVPacket *pkt = av_packet_alloc();
  struct qitem it;
  bool flush = false;
  while (pipeline__q_pop(&r->q, &it)) {
    if (it.kind == Q_FRAME) {
      rung_encode(r, it.frame, it.forced, it.arrival_ms, pkt);
    } else if (it.kind == Q_SYNC) {
      uv_mutex_lock(&p->mu);
      r->synced++;
      uv_cond_broadcast(&p->cond);
      uv_mutex_unlock(&p->mu);
    } else if (it.kind == Q_EOS) {
      pipeline__qitem_clear(&it);
      rung_encode(r, NULL, false, 0, pkt);
      flush = true;
      break;
    }
    pipeline__qitem_clear(&it);
  }
  if (r->writer)
    p->out.close(r->writer, flush);
  r->writer = NULL;
  av_packet_free(&pkt);
}

void pipeline__rung_free(struct rung *r) {
  if (!r)
    return;
  avcodec_free_context(&r->enc);
  sws_freeContext(r->sws);
  av_frame_free(&r->scaled);
  if (r->q.items)
    pipeline__q_destroy(&r->q);
  free(r);
}
