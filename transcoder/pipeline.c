/* pipeline: the public side of a channel's pipeline (pipeline.h), its
 * control items (start, stop, sync) and the timeline: begin (ladder,
 * encoders, the loop's answer, writers, rung threads) and end. */
#include "transcoder/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "relay/channel.h"
#include "core/log.h"
#include "transcoder/pipeline_int.h"

/* ---- timeline: begin, end ---- */

void pl_clear_hold(struct pipeline *p)
{
  for (int i = 0; i < p->hold_count; i++)
    pl_qitem_clear(&p->hold[i]);
  p->hold_count = 0;
  p->hold_bytes = 0;
}

/* What stats report: the renditions of the current timeline, or of the
 * last one (live = false) once it ended. */
static void show_layout(struct pipeline *p, bool audio, bool live)
{
  pthread_mutex_lock(&p->mu);
  if (live) {
    p->shown = p->ladder;
    p->shown_audio = audio;
  }
  p->shown_live = live;
  pthread_mutex_unlock(&p->mu);
}

/* Ends the running timeline. flush: encoders and writers emit their tail
 * and the output hears end(); otherwise (abort) everything is dropped. */
void pl_end_timeline(struct pipeline *p, bool flush)
{
  if (p->state != P_RUNNING) {
    pl_clear_hold(p);
    p->state = P_IDLE;
    return;
  }
  for (int i = 0; i < p->ladder.count; i++) {
    struct rung *r = p->rungs[i];
    if (!r || !r->started)
      continue;
    if (flush) {
      struct qitem eos = {.kind = Q_EOS};
      pl_q_push(&r->q, &eos, true);
    } else {
      pl_q_close(&r->q);
    }
    pthread_join(r->thread, NULL);
  }
  for (int i = 0; i < p->ladder.count; i++) {
    if (p->rungs[i] && p->rungs[i]->writer)
      p->out.close(p->rungs[i]->writer, false);
    pl_rung_free(p->rungs[i]);
    p->rungs[i] = NULL;
  }
  p->nrungs = 0;
  if (p->source_writer)
    p->out.close(p->source_writer, flush);
  if (p->audio_writer)
    p->out.close(p->audio_writer, flush);
  p->source_writer = p->audio_writer = NULL;
  if (flush && p->out.end)
    p->out.end(p->out.opaque);
  show_layout(p, false, false);
  p->state = P_IDLE;
}

static void layout_from_ladder(struct pipeline *p, struct hls_stream_layout *lay)
{
  memset(lay, 0, sizeof(*lay));
  for (int i = 0; i < p->ladder.count && lay->count < HLS_MAX_RENDITIONS; i++) {
    const struct ladder_rendition *lr = &p->ladder.r[i];
    struct hls_rendition_desc *d = &lay->r[lay->count++];
    snprintf(d->name, sizeof(d->name), "%s", lr->name);
    d->kind = HLS_VIDEO;
    d->width = lr->width;
    d->height = lr->height;
    d->fps = p->fps;
    d->bandwidth = (int64_t)lr->max_rate * 1000;
    d->average_bandwidth = (int64_t)lr->video_bitrate * 1000;
  }
  p->audio_index = -1;
  if (p->apar && lay->count < HLS_MAX_RENDITIONS) {
    p->audio_index = lay->count;
    struct hls_rendition_desc *d = &lay->r[lay->count++];
    snprintf(d->name, sizeof(d->name), "audio");
    d->kind = HLS_AUDIO;
    d->channels = p->apar->ch_layout.nb_channels;
    d->bandwidth = p->apar->bit_rate > 0 ? p->apar->bit_rate : 0;
  }
}

static uint32_t wait_begun(struct pipeline *p, const struct hls_stream_layout *lay)
{
  pthread_mutex_lock(&p->mu);
  p->begun_answered = false;
  pthread_mutex_unlock(&p->mu);
  if (p->out.begin(p->out.opaque, p, lay) < 0)
    return 0;
  pthread_mutex_lock(&p->mu);
  while (!p->begun_answered && !atomic_load(&p->aborting))
    pthread_cond_wait(&p->cond, &p->mu);
  uint32_t t = p->begun_answered ? p->begun_timeline : 0;
  pthread_mutex_unlock(&p->mu);
  return t;
}

static int build_ladder(struct pipeline *p)
{
  if (!p->vpar) {
    memset(&p->ladder, 0, sizeof(p->ladder));
    return 0;
  }
  if (ladder_build(&p->cfg, p->src_w, p->src_h, &p->ladder) < 0) {
    log_error("transcoder", "unusable source size channel=%s size=%dx%d", p->channel, p->src_w,
              p->src_h);
    return -1;
  }
  if (p->ladder.count > 0 && p->ladder.r[0].passthrough && !p->source_fits) {
    if (p->ladder.count == 1) {
      log_warn("transcoder", "source keyframe interval exceeds the segment; kept as the only "
               "video rendition channel=%s keyint_ms=%lld", p->channel, (long long)p->max_keyint);
    } else {
      log_warn("transcoder", "source rung left out: keyframe interval exceeds the segment "
               "channel=%s keyint_ms=%lld segment_ms=%lld", p->channel, (long long)p->max_keyint,
               (long long)pl_seg_ms(p));
      ladder_remove(&p->ladder, 0);
    }
  }
  if (p->ladder.count > 0 && p->ladder.r[0].passthrough &&
      (p->kbps_hint > 0 || (p->hold_bytes > 0 && p->max_keyint > 0))) {
    /* the channel's measure when the hold is shorter than a GOP */
    int64_t kbps = p->kbps_hint > 0 ? (int64_t)(p->kbps_hint + 0.5)
                                    : p->hold_bytes * 8 / p->max_keyint;
    p->ladder.r[0].video_bitrate = (int)kbps;
    p->ladder.r[0].max_rate = (int)(kbps * 3 / 2);
  }
  return 0;
}

int pl_begin_timeline(struct pipeline *p)
{
  if (build_ladder(p) < 0)
    return -1;
  p->nrungs = 0;
  for (int i = 0; i < p->ladder.count; i++)
    if (!p->ladder.r[i].passthrough)
      p->nrungs++;
  for (int i = 0; i < p->ladder.count; i++) {
    if (p->ladder.r[i].passthrough)
      continue;
    struct rung *r = calloc(1, sizeof(*r));
    p->rungs[i] = r;
    if (!r)
      return -1;
    r->p = p;
    r->index = i;
    r->lr = p->ladder.r[i];
    if (pl_q_init(&r->q, p->cfg.transcoder.queue_frames > 0 ? p->cfg.transcoder.queue_frames : 60) <
            0 ||
        pl_rung_open_encoder(p, r) < 0)
      return -1;
  }
  struct hls_stream_layout lay;
  layout_from_ladder(p, &lay);
  if (lay.count == 0)
    return -1;
  p->timeline = wait_begun(p, &lay);
  if (p->timeline == 0)
    return -1;
  AVRational ms = {1, 1000};
  for (int i = 0; i < p->ladder.count; i++) {
    struct rung *r = p->rungs[i];
    if (!r) {
      p->source_writer = p->out.open(p->out.opaque, p->timeline, i, p->vpar, ms);
      continue;
    }
    AVCodecParameters *par = avcodec_parameters_alloc();
    if (par && avcodec_parameters_from_context(par, r->enc) >= 0)
      r->writer = p->out.open(p->out.opaque, p->timeline, i, par, ms);
    avcodec_parameters_free(&par);
  }
  if (p->audio_index >= 0)
    p->audio_writer = p->out.open(p->out.opaque, p->timeline, p->audio_index, p->apar, ms);
  for (int i = 0; i < p->ladder.count; i++) {
    struct rung *r = p->rungs[i];
    if (r && pthread_create(&r->thread, NULL, pl_rung_main, r) == 0)
      r->started = true;
  }
  p->state = P_RUNNING;
  p->last_seg = INT64_MIN;
  p->last_frame_pts = INT64_MIN;
  p->shed_count = 0;
  atomic_fetch_add(&p->timelines, 1);
  show_layout(p, p->apar != NULL, true);
  log_info("transcoder", "timeline begun channel=%s timeline=%u renditions=%d source=%dx%d",
           p->channel, p->timeline, lay.count, p->src_w, p->src_h);
  return 0;
}


void pl_fail_timeline(struct pipeline *p)
{
  log_error("transcoder", "timeline not started channel=%s: its packets are dropped until the "
            "next feed", p->channel);
  for (int i = 0; i < LADDER_MAX; i++) {
    if (p->rungs[i] && p->rungs[i]->writer)
      p->out.close(p->rungs[i]->writer, false);
    pl_rung_free(p->rungs[i]);
    p->rungs[i] = NULL;
  }
  if (p->source_writer)
    p->out.close(p->source_writer, false);
  if (p->audio_writer)
    p->out.close(p->audio_writer, false);
  p->source_writer = p->audio_writer = NULL;
  p->nrungs = 0;
  pl_clear_hold(p);
  p->state = P_DISCARD;
}

/* ---- control: start, stop, sync ---- */

static void close_feed(struct pipeline *p)
{
  avcodec_free_context(&p->dec);
  avcodec_parameters_free(&p->vpar);
  avcodec_parameters_free(&p->apar);
}

static int open_decoder(struct pipeline *p)
{
  const AVCodec *c = avcodec_find_decoder(p->vpar->codec_id);
  if (!c) {
    log_error("transcoder", "no decoder channel=%s codec=%s", p->channel,
              avcodec_get_name(p->vpar->codec_id));
    return -1;
  }
  p->dec = avcodec_alloc_context3(c);
  if (!p->dec || avcodec_parameters_to_context(p->dec, p->vpar) < 0)
    return -1;
  p->dec->pkt_timebase = (AVRational){1, 1000};
  p->dec->thread_count = pl_cpu_count() < 4 ? pl_cpu_count() : 4;
  p->dec->thread_type = FF_THREAD_FRAME;
  int rc = avcodec_open2(p->dec, c, NULL);
  if (rc < 0) {
    log_error("transcoder", "decoder open failed channel=%s err=%s", p->channel, av_err2str(rc));
    return -1;
  }
  return 0;
}

static void on_start(struct pipeline *p, struct qitem *it)
{
  pl_end_timeline(p, true);
  close_feed(p);
  pthread_mutex_lock(&p->mu);
  p->cfg.transcoder = p->settings->transcoder;
  p->cfg.hls = p->settings->hls;
  pthread_mutex_unlock(&p->mu);
  p->vpar = it->vpar;
  p->apar = it->apar;
  it->vpar = it->apar = NULL;
  p->fps = it->fps;
  p->keyint_hint = it->keyint_hint_ms > 0 ? it->keyint_hint_ms : 0;
  p->kbps_hint = it->kbps_hint > 0 ? it->kbps_hint : 0;
  if (p->apar && p->apar->codec_id != AV_CODEC_ID_AAC) {
    log_warn("transcoder", "audio left out: only AAC is passed through channel=%s codec=%s",
             p->channel, avcodec_get_name(p->apar->codec_id));
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
  if (pl_hold_decided(p))
    pl_start_running(p);
}

static void on_stop(struct pipeline *p)
{
  if (p->state == P_RUNNING && p->dec && p->nrungs > 0) {
    avcodec_send_packet(p->dec, NULL);
    pl_receive_frames(p);
  }
  pl_end_timeline(p, true);
  close_feed(p);
}

static void on_sync(struct pipeline *p)
{
  for (int i = 0; i < p->ladder.count && p->state == P_RUNNING; i++) {
    struct rung *r = p->rungs[i];
    if (!r || !r->started)
      continue;
    pthread_mutex_lock(&p->mu);
    uint64_t want = r->synced + 1;
    pthread_mutex_unlock(&p->mu);
    struct qitem it = {.kind = Q_SYNC};
    if (pl_q_push(&r->q, &it, true) < 0)
      continue;
    pthread_mutex_lock(&p->mu);
    while (r->synced < want && !atomic_load(&p->aborting))
      pthread_cond_wait(&p->cond, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
  pthread_mutex_lock(&p->mu);
  p->sync_done++;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
}

static void *decode_main(void *arg)
{
  struct pipeline *p = arg;
  struct qitem it;
  while (pl_q_pop(&p->in, &it)) {
    switch (it.kind) {
    case Q_PACKET: pl_on_packet(p, &it); break;
    case Q_START: on_start(p, &it); break;
    case Q_STOP: on_stop(p); break;
    case Q_SYNC: on_sync(p); break;
    default: break;
    }
    pl_qitem_clear(&it);
  }
  pl_end_timeline(p, false);
  close_feed(p);
  return NULL;
}

/* ---- public ---- */

void pipeline_begun(struct pipeline *p, uint32_t timeline)
{
  pthread_mutex_lock(&p->mu);
  p->begun_answered = true;
  p->begun_timeline = timeline;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
}

struct pipeline *pipeline_new(const char *channel, const struct config *cfg,
                              const struct pipeline_output *out, bool realtime)
{
  struct pipeline *p = calloc(1, sizeof(*p));
  if (!p)
    return NULL;
  snprintf(p->channel, sizeof(p->channel), "%s", channel);
  p->out = *out;
  p->realtime = realtime;
  p->settings = calloc(1, sizeof(*p->settings));
  p->hold = calloc(HOLD_MAX, sizeof(*p->hold));
  p->frame = av_frame_alloc();
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cond, NULL);
  if (!p->settings || !p->hold || !p->frame || pl_q_init(&p->in, PIPELINE_INPUT_MAX) < 0)
    goto fail;
  p->settings->transcoder = cfg->transcoder;
  p->settings->hls = cfg->hls;
  p->state = P_IDLE;
  if (pthread_create(&p->thread, NULL, decode_main, p) != 0)
    goto fail;
  return p;
fail:
  log_error("transcoder", "pipeline not created channel=%s", channel);
  if (p->in.items)
    pl_q_destroy(&p->in);
  av_frame_free(&p->frame);
  free(p->hold);
  free(p->settings);
  free(p);
  return NULL;
}

void pipeline_reload(struct pipeline *p, const struct config *cfg)
{
  pthread_mutex_lock(&p->mu);
  p->settings->transcoder = cfg->transcoder;
  p->settings->hls = cfg->hls;
  pthread_mutex_unlock(&p->mu);
}

static AVCodecParameters *par_copy(const AVCodecParameters *src)
{
  if (!src)
    return NULL;
  AVCodecParameters *par = avcodec_parameters_alloc();
  if (par && avcodec_parameters_copy(par, src) < 0)
    avcodec_parameters_free(&par);
  return par;
}

int pipeline_start(struct pipeline *p, const struct channel_feed_info *info)
{
  struct qitem it = {.kind = Q_START, .fps = info->fps, .keyint_hint_ms = info->key_interval_ms,
                     .kbps_hint = info->video_kbps};
  it.vpar = par_copy(info->video);
  it.apar = par_copy(info->audio);
  p->in_skip_video = false;
  if (pl_q_push(&p->in, &it, !p->realtime) < 0) {
    pl_qitem_clear(&it);
    log_error("transcoder", "control queue full: start lost channel=%s", p->channel);
    return -1;
  }
  return 0;
}

void pipeline_packet(struct pipeline *p, const AVPacket *pkt, int64_t arrival_ms)
{
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
  if (it.pkt && pl_q_push(&p->in, &it, !p->realtime) == 0)
    return;
  pl_qitem_clear(&it);
  if (atomic_fetch_add(&p->input_dropped, 1) % 100 == 0)
    log_warn("transcoder", "input queue full: packet dropped channel=%s", p->channel);
  if (video)
    p->in_skip_video = true;
}

void pipeline_stop(struct pipeline *p)
{
  struct qitem it = {.kind = Q_STOP};
  if (pl_q_push(&p->in, &it, !p->realtime) < 0)
    log_error("transcoder", "control queue full: stop lost channel=%s", p->channel);
}

void pipeline_wait_idle(struct pipeline *p)
{
  pthread_mutex_lock(&p->mu);
  uint64_t want = ++p->sync_req;
  pthread_mutex_unlock(&p->mu);
  struct qitem it = {.kind = Q_SYNC};
  if (pl_q_push(&p->in, &it, true) < 0)
    return;
  pthread_mutex_lock(&p->mu);
  while (p->sync_done < want && !atomic_load(&p->aborting))
    pthread_cond_wait(&p->cond, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

void pipeline_get_stats(struct pipeline *p, struct pipeline_stats *out)
{
  memset(out, 0, sizeof(*out));
  out->packets_in = atomic_load(&p->packets_in);
  out->input_dropped = atomic_load(&p->input_dropped);
  out->decode_errors = atomic_load(&p->decode_errors);
  out->ts_rebased = atomic_load(&p->ts_rebased);
  out->timelines = atomic_load(&p->timelines);
  out->reconfigures = atomic_load(&p->reconfigures);
  pthread_mutex_lock(&p->mu);
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
  pthread_mutex_unlock(&p->mu);
}

void pipeline_free(struct pipeline *p)
{
  if (!p)
    return;
  atomic_store(&p->aborting, true);
  pl_q_close(&p->in);
  pthread_mutex_lock(&p->mu);
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  pl_q_destroy(&p->in);
  av_frame_free(&p->frame);
  free(p->hold);
  free(p->settings);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cond);
  free(p);
}

