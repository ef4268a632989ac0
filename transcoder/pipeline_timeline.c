/* pipeline_timeline: a pipeline's timeline, on its decode thread: begin
 * (the ladder for the source, the encoders, the loop's answer through
 * output->begin, the writers, the rung threads) and end (flush or abort,
 * join, close). Called from the control items (pipeline.c) and from the
 * media path when the hold ends (pipeline_decode.c); it calls only down,
 * into the rungs (pipeline_rung.c) and the ladder. */
#include "transcoder/pipeline_timeline_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "transcoder/pipeline_int.h"
#include "transcoder/pipeline_rung_int.h"

void pipeline__clear_hold(struct pipeline *p) {
  for (int i = 0; i < p->hold_count; i++)
    pipeline__qitem_clear(&p->hold[i]);
  p->hold_count = 0;
  p->hold_bytes = 0;
}

/* What stats report: the renditions of the current timeline, or of the
 * last one (live = false) once it ended. */
static void show_layout(struct pipeline *p, bool audio, bool live) {
  uv_mutex_lock(&p->mu);
  if (live) {
    p->shown = p->ladder;
    p->shown_audio = audio;
  }
  p->shown_live = live;
  uv_mutex_unlock(&p->mu);
}

/* Ends the running timeline. flush: encoders and writers emit their tail
 * and the output hears end(); otherwise (abort) everything is dropped. */
void pipeline__end_timeline(struct pipeline *p, bool flush) {
  if (p->state != P_RUNNING) {
    pipeline__clear_hold(p);
    p->state = P_IDLE;
    return;
  }
  for (int i = 0; i < p->ladder.count; i++) {
    struct rung *r = p->rungs[i];
    if (!r || !r->started)
      continue;
    if (flush) {
      struct qitem eos = {.kind = Q_EOS};
      pipeline__q_push(&r->q, &eos, true);
    } else {
      pipeline__q_close(&r->q);
    }
    uv_thread_join(&r->thread);
  }
  for (int i = 0; i < p->ladder.count; i++) {
    if (p->rungs[i] && p->rungs[i]->writer)
      p->out.close(p->rungs[i]->writer, false);
    pipeline__rung_free(p->rungs[i]);
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

static void layout_from_ladder(struct pipeline *p, struct hls_stream_layout *lay) {
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

static uint32_t wait_begun(struct pipeline *p, const struct hls_stream_layout *lay) {
  uv_mutex_lock(&p->mu);
  p->begun_answered = false;
  uv_mutex_unlock(&p->mu);
  if (p->out.begin(p->out.opaque, p, lay) < 0)
    return 0;
  uv_mutex_lock(&p->mu);
  while (!p->begun_answered && !atomic_load(&p->aborting))
    uv_cond_wait(&p->cond, &p->mu);
  uint32_t t = p->begun_answered ? p->begun_timeline : 0;
  uv_mutex_unlock(&p->mu);
  return t;
}

static int build_ladder(struct pipeline *p) {
  if (!p->vpar) {
    memset(&p->ladder, 0, sizeof(p->ladder));
    return 0;
  }
  if (ladder_build(&p->cfg.transcoder, p->src_w, p->src_h, &p->ladder) < 0) {
    log_error("transcoder", "unusable source size channel=%s size=%dx%d", p->channel, p->src_w, p->src_h);
    return -EINVAL;
  }
  if (p->ladder.count > 0 && p->ladder.r[0].passthrough && !p->source_fits) {
    if (p->ladder.count == 1) {
      log_warn("transcoder",
               "source keyframe interval exceeds the segment; kept as the only "
               "video rendition channel=%s keyint_ms=%lld",
               p->channel, (long long)p->max_keyint);
    } else {
      log_warn("transcoder",
               "source rung left out: keyframe interval exceeds the segment "
               "channel=%s keyint_ms=%lld segment_ms=%lld",
               p->channel, (long long)p->max_keyint, (long long)pipeline__seg_ms(p));
      ladder_remove(&p->ladder, 0);
    }
  }
  if (p->ladder.count > 0 && p->ladder.r[0].passthrough &&
      (p->kbps_hint > 0 || (p->hold_bytes > 0 && p->max_keyint > 0))) {
    /* the channel's measure when the hold is shorter than a GOP */
    int64_t kbps = p->kbps_hint > 0 ? (int64_t)(p->kbps_hint + 0.5) : p->hold_bytes * 8 / p->max_keyint;
    p->ladder.r[0].video_bitrate = (int)kbps;
    p->ladder.r[0].max_rate = (int)(kbps * 3 / 2);
  }
  return 0;
}

int pipeline__begin_timeline(struct pipeline *p) {
  int e = build_ladder(p);
  if (e < 0)
    return e;
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
      return -ENOMEM;
    r->p = p;
    r->index = i;
    r->lr = p->ladder.r[i];
    if ((e = pipeline__q_init(&r->q, p->cfg.transcoder.queue_frames > 0 ? p->cfg.transcoder.queue_frames : 60)) < 0 ||
        (e = pipeline__rung_open_encoder(p, r)) < 0)
      return e;
  }
  struct hls_stream_layout lay;
  layout_from_ladder(p, &lay);
  if (lay.count == 0)
    return -EINVAL;
  p->timeline = wait_begun(p, &lay);
  if (p->timeline == 0)
    return -ECANCELED;
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
    if (r && uv_thread_create(&r->thread, pipeline__rung_main, r) == 0)
      r->started = true;
  }
  p->state = P_RUNNING;
  p->last_seg = INT64_MIN;
  p->last_frame_pts = INT64_MIN;
  p->shed_count = 0;
  atomic_fetch_add(&p->timelines, 1);
  show_layout(p, p->apar != NULL, true);
  log_info("transcoder", "timeline begun channel=%s timeline=%u renditions=%d source=%dx%d", p->channel, p->timeline,
           lay.count, p->src_w, p->src_h);
  return 0;
}


void pipeline__fail_timeline(struct pipeline *p) {
  log_error("transcoder",
            "timeline not started channel=%s: its packets are dropped until the "
            "next feed",
            p->channel);
  for (int i = 0; i < LADDER_MAX; i++) {
    if (p->rungs[i] && p->rungs[i]->writer)
      p->out.close(p->rungs[i]->writer, false);
    pipeline__rung_free(p->rungs[i]);
    p->rungs[i] = NULL;
  }
  if (p->source_writer)
    p->out.close(p->source_writer, false);
  if (p->audio_writer)
    p->out.close(p->audio_writer, false);
  p->source_writer = p->audio_writer = NULL;
  p->nrungs = 0;
  pipeline__clear_hold(p);
  p->state = P_DISCARD;
}
