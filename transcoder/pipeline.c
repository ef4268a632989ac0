/* pipeline: the public side of a channel's pipeline (pipeline.h) and its
 * control items (start, stop, sync) on the decode thread. The timeline
 * (begin, end) is in pipeline_timeline.c, the media path in
 * pipeline_decode.c, the queues and encoder threads in pipeline_rung.c. */
#include "transcoder/pipeline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay/channel.h"
#include "core/log.h"
#include "transcoder/pipeline_decode_int.h"
#include "transcoder/pipeline_int.h"
#include "transcoder/pipeline_rung_int.h"
#include "transcoder/pipeline_timeline_int.h"

/* ---- control: start, stop, sync ---- */

static void close_feed(struct pipeline *p) {
  avcodec_free_context(&p->dec);
  avcodec_parameters_free(&p->vpar);
  avcodec_parameters_free(&p->apar);
}

static int open_decoder(struct pipeline *p) {
  const AVCodec *c = avcodec_find_decoder(p->vpar->codec_id);
  if (!c) {
    log_error("transcoder", "no decoder channel=%s codec=%s", p->channel, avcodec_get_name(p->vpar->codec_id));
    return AVERROR_DECODER_NOT_FOUND;
  }
  p->dec = avcodec_alloc_context3(c);
  if (!p->dec)
    return -ENOMEM;
  int rc = avcodec_parameters_to_context(p->dec, p->vpar);
  if (rc < 0)
    return rc;
  p->dec->pkt_timebase = (AVRational){1, 1000};
  p->dec->thread_count = pipeline__cpu_count() < 4 ? pipeline__cpu_count() : 4;
  p->dec->thread_type = FF_THREAD_FRAME;
  rc = avcodec_open2(p->dec, c, NULL);
  if (rc < 0) {
    log_error("transcoder", "decoder open failed channel=%s err=%s", p->channel, av_err2str(rc));
    return rc;
  }
  return 0;
}

static void on_start(struct pipeline *p, struct qitem *it) {
  pipeline__end_timeline(p, true);
  close_feed(p);
  uv_mutex_lock(&p->mu);
  p->cfg.transcoder = p->settings.transcoder;
  p->cfg.hls = p->settings.hls;
  uv_mutex_unlock(&p->mu);
  p->vpar = it->vpar;
  p->apar = it->apar;
  it->vpar = it->apar = NULL;
  p->fps = it->fps;
  p->keyint_hint = it->keyint_hint_ms > 0 ? it->keyint_hint_ms : 0;
  p->kbps_hint = it->kbps_hint > 0 ? it->kbps_hint : 0;
  if (p->apar && p->apar->codec_id != AV_CODEC_ID_AAC) {
    log_warn("transcoder", "audio left out: only AAC is passed through channel=%s codec=%s", p->channel,
             avcodec_get_name(p->apar->codec_id));
    avcodec_parameters_free(&p->apar);
  }
  p->src_w = p->vpar ? p->vpar->width : 0;
  p->src_h = p->vpar ? p->vpar->height : 0;
  p->src_sar = p->vpar ? p->vpar->sample_aspect_ratio : (AVRational){0, 1};
  p->have_off = p->have_last[0] = p->have_last[1] = false;
  p->first_key_dts = p->last_key_dts = INT64_MIN;
  p->max_keyint = 0;
  p->key_n = 0; /* keyframe pts of an earlier feed could recur on this one's clock */
  p->keyint_warned = false;
  p->source_fits = false;
  p->state = P_DISCARD;
  if (!p->vpar && !p->apar)
    return;
  if (p->vpar && open_decoder(p) < 0)
    return;
  p->state = P_HOLDING;
  if (pipeline__hold_decided(p))
    pipeline__start_running(p);
}

static void on_stop(struct pipeline *p) {
  if (p->state == P_RUNNING && p->dec && p->nrungs > 0) {
    avcodec_send_packet(p->dec, NULL);
    pipeline__receive_frames(p);
  }
  pipeline__end_timeline(p, true);
  close_feed(p);
}

static void on_sync(struct pipeline *p) {
  for (int i = 0; i < p->ladder.count && p->state == P_RUNNING; i++) {
    struct rung *r = p->rungs[i];
    if (!r || !r->started)
      continue;
    uv_mutex_lock(&p->mu);
    uint64_t want = r->synced + 1;
    uv_mutex_unlock(&p->mu);
    struct qitem it = {.kind = Q_SYNC};
    if (pipeline__q_push(&r->q, &it, true) < 0)
      continue;
    uv_mutex_lock(&p->mu);
    while (r->synced < want && !atomic_load(&p->aborting))
      uv_cond_wait(&p->cond, &p->mu);
    uv_mutex_unlock(&p->mu);
  }
  uv_mutex_lock(&p->mu);
  p->sync_done++;
  uv_cond_broadcast(&p->cond);
  uv_mutex_unlock(&p->mu);
}

static void decode_main(void *arg) {
  struct pipeline *p = arg;
  struct qitem it;
  while (pipeline__q_pop(&p->in, &it)) {
    switch (it.kind) {
    case Q_PACKET: pipeline__on_packet(p, &it); break;
    case Q_START: on_start(p, &it); break;
    case Q_STOP: on_stop(p); break;
    case Q_SYNC: on_sync(p); break;
    default: break;
    }
    pipeline__qitem_clear(&it);
  }
  pipeline__end_timeline(p, false);
  close_feed(p);
}

/* ---- public ---- */

void pipeline_begun(struct pipeline *p, uint32_t timeline) {
  uv_mutex_lock(&p->mu);
  p->begun_answered = true;
  p->begun_timeline = timeline;
  uv_cond_broadcast(&p->cond);
  uv_mutex_unlock(&p->mu);
}

struct pipeline *pipeline_new(const char *channel, const struct config_transcoder *tc, const struct config_hls *hls,
                              const struct pipeline_output *out, bool realtime) {
  struct pipeline *p = calloc(1, sizeof(*p));
  if (!p)
    return NULL;
  snprintf(p->channel, sizeof(p->channel), "%s", channel);
  p->out = *out;
  p->realtime = realtime;
  p->hold = calloc(HOLD_MAX, sizeof(*p->hold));
  p->frame = av_frame_alloc();
  uv_mutex_init(&p->mu);
  uv_cond_init(&p->cond);
  if (!p->hold || !p->frame || pipeline__q_init(&p->in, PIPELINE_INPUT_MAX) < 0)
    goto fail;
  p->settings.transcoder = *tc;
  p->settings.hls = *hls;
  p->state = P_IDLE;
  if (uv_thread_create(&p->thread, decode_main, p) != 0)
    goto fail;
  return p;
fail:
  log_error("transcoder", "pipeline not created channel=%s", channel);
  if (p->in.items)
    pipeline__q_destroy(&p->in);
  av_frame_free(&p->frame);
  free(p->hold);
  free(p);
  return NULL;
}

void pipeline_reload(struct pipeline *p, const struct config_transcoder *tc, const struct config_hls *hls) {
  uv_mutex_lock(&p->mu);
  p->settings.transcoder = *tc;
  p->settings.hls = *hls;
  uv_mutex_unlock(&p->mu);
}

static AVCodecParameters *par_copy(const AVCodecParameters *src) {
  if (!src)
    return NULL;
  AVCodecParameters *par = avcodec_parameters_alloc();
  if (par && avcodec_parameters_copy(par, src) < 0)
    avcodec_parameters_free(&par);
  return par;
}

int pipeline_start(struct pipeline *p, const struct channel_feed_info *info) {
  struct qitem it = {
      .kind = Q_START, .fps = info->fps, .keyint_hint_ms = info->key_interval_ms, .kbps_hint = info->video_kbps};
  it.vpar = par_copy(info->video);
  it.apar = par_copy(info->audio);
  p->in_skip_video = false;
  int e = pipeline__q_push(&p->in, &it, !p->realtime);
  if (e < 0) {
    pipeline__qitem_clear(&it);
    log_error("transcoder", "control queue full: start lost channel=%s", p->channel);
    return e;
  }
  return 0;
}

void pipeline_packet(struct pipeline *p, const AVPacket *pkt, int64_t arrival_ms) {
  atomic_fetch_add(&p->packets_in, 1);
  bool video = pkt->stream_index == CHANNEL_VIDEO;
  if (video && p->in_skip_video) {
    if (!(pkt->flags & AV_PKT_FLAG_KEY)) {
      atomic_fetch_add(&p->input_dropped, 1);
      return;
    }
    p->in_skip_video = false;
  }
  struct qitem it = {.kind = Q_PACKET, .pkt = av_packet_clone(pkt), .arrival_ms = arrival_ms};
  if (it.pkt && pipeline__q_push(&p->in, &it, !p->realtime) == 0)
    return;
  pipeline__qitem_clear(&it);
  if (atomic_fetch_add(&p->input_dropped, 1) % 100 == 0)
    log_warn("transcoder", "input queue full: packet dropped channel=%s", p->channel);
  if (video)
    p->in_skip_video = true;
}

void pipeline_stop(struct pipeline *p) {
  struct qitem it = {.kind = Q_STOP};
  if (pipeline__q_push(&p->in, &it, !p->realtime) < 0)
    log_error("transcoder", "control queue full: stop lost channel=%s", p->channel);
}

void pipeline_wait_idle(struct pipeline *p) {
  uv_mutex_lock(&p->mu);
  uint64_t want = ++p->sync_req;
  uv_mutex_unlock(&p->mu);
  struct qitem it = {.kind = Q_SYNC};
  if (pipeline__q_push(&p->in, &it, true) < 0)
    return;
  uv_mutex_lock(&p->mu);
  while (p->sync_done < want && !atomic_load(&p->aborting))
    uv_cond_wait(&p->cond, &p->mu);
  uv_mutex_unlock(&p->mu);
}

void pipeline_get_stats(struct pipeline *p, struct pipeline_stats *out) {
  memset(out, 0, sizeof(*out));
  out->packets_in = atomic_load(&p->packets_in);
  out->input_dropped = atomic_load(&p->input_dropped);
  out->decode_errors = atomic_load(&p->decode_errors);
  out->ts_rebased = atomic_load(&p->ts_rebased);
  out->timelines = atomic_load(&p->timelines);
  out->reconfigures = atomic_load(&p->reconfigures);
  uv_mutex_lock(&p->mu);
  out->rendition_count = p->shown.count;
  out->has_audio = p->shown_audio;
  out->live = p->shown_live;
  for (int i = 0; i < p->shown.count; i++) {
    const struct ladder_rendition *lr = &p->shown.r[i];
    struct pipeline_rung_stats *r = &out->r[i];
    snprintf(r->name, sizeof(r->name), "%s", lr->name);
    r->width = lr->width;
    r->height = lr->height;
    r->passthrough = lr->passthrough;
    r->bitrate = (int64_t)lr->video_bitrate * 1000;
    r->frames_in = atomic_load(&p->rs[i].in);
    r->frames_out = atomic_load(&p->rs[i].out);
    r->frames_dropped = atomic_load(&p->rs[i].dropped);
    r->gops_dropped = atomic_load(&p->rs[i].gops);
    r->errors = atomic_load(&p->rs[i].errors);
  }
  uv_mutex_unlock(&p->mu);
}

void pipeline_free(struct pipeline *p) {
  if (!p)
    return;
  atomic_store(&p->aborting, true);
  pipeline__q_close(&p->in);
  uv_mutex_lock(&p->mu);
  uv_cond_broadcast(&p->cond);
  uv_mutex_unlock(&p->mu);
  uv_thread_join(&p->thread);
  pipeline__q_destroy(&p->in);
  av_frame_free(&p->frame);
  free(p->hold);
  uv_mutex_destroy(&p->mu);
  uv_cond_destroy(&p->cond);
  free(p);
}
