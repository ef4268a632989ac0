/* pipeline_decode: the decode thread's media path. Packets in: timestamps
 * rebased, the source's keyframe interval measured while the first GOP is
 * held back, the source rung and audio written as they are, the video
 * decoded once; frames out: the overload policy at each segment boundary,
 * every rung scaled (parents first) and handed over by reference. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay/channel.h"
#include "core/log.h"
#include "core/memguard.h"
#include "transcoder/pipeline_int.h"
#include "transcoder/pipeline_rung_int.h"
#include "transcoder/pipeline_timeline_int.h"

/* ---- video: overload policy, scaling, hand-off to the rungs ---- */

/* At a segment boundary: every rung starts the GOP clean; while any rung
 * that runs is over half its queue, one more rung (lowest priority first)
 * sheds each following GOP; below a quarter everywhere, one comes back. */
static void shed_policy(struct pipeline *p) {
  bool lagging = false, calm = true;
  struct rung *order[LADDER_MAX];
  int n = 0;
  for (int i = 0; i < p->ladder.count; i++) {
    struct rung *r = p->rungs[i];
    if (!r)
      continue;
    int depth = pipeline__q_depth(&r->q);
    if (!r->shed && depth > r->q.bound / 2)
      lagging = true;
    if (depth > r->q.bound / 4)
      calm = false;
    r->skipping = false;
    r->shed = false;
    int at = n++;
    while (at > 0 && (order[at - 1]->lr.priority > r->lr.priority ||
                      (order[at - 1]->lr.priority == r->lr.priority && order[at - 1]->lr.height > r->lr.height))) {
      order[at] = order[at - 1];
      at--;
    }
    order[at] = r;
  }
  if (p->replaying) /* the hold's burst is not lag */
    lagging = calm = false;
  bool memory = memguard_near_limit(); /* shed before the ceiling refuses viewers */
  if (memory) {
    lagging = true;
    calm = false;
  }
  int before = p->shed_count;
  if (!p->realtime)
    p->shed_count = 0;
  else if (lagging && p->shed_count < n - 1)
    p->shed_count++;
  else if (calm && p->shed_count > 0)
    p->shed_count--;
  for (int i = 0; i < p->shed_count && i < n; i++) {
    order[i]->shed = true;
    atomic_fetch_add(&p->rs[order[i]->index].gops, 1);
  }
  if (p->shed_count != before)
    log_warn("transcoder", "overload: shedding the %d lowest-priority rung(s) channel=%s reason=%s", p->shed_count,
             p->channel, memory ? "memory" : "lag");
}

static int scale_rung(struct rung *r, const AVFrame *src, int64_t pts) {
  r->sws = sws_getCachedContext(r->sws, src->width, src->height, src->format, r->lr.width, r->lr.height,
                                AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
  AVFrame *f = av_frame_alloc();
  if (!r->sws || !f) {
    av_frame_free(&f);
    return -ENOMEM;
  }
  f->width = r->lr.width;
  f->height = r->lr.height;
  f->format = AV_PIX_FMT_YUV420P;
  int rc = av_frame_get_buffer(f, 0);
  if (rc < 0) {
    av_frame_free(&f);
    return rc;
  }
  sws_scale(r->sws, (const uint8_t *const *)src->data, src->linesize, 0, src->height, f->data, f->linesize);
  f->pts = pts;
  f->sample_aspect_ratio = src->sample_aspect_ratio;
  r->scaled = f;
  return 0;
}

static void push_rung(struct pipeline *p, struct rung *r, bool forced, int64_t arrival) {
  struct rstat *st = &p->rs[r->index];
  if (r->shed || r->skipping) {
    atomic_fetch_add(&st->dropped, 1);
    return;
  }
  struct qitem it = {.kind = Q_FRAME, .frame = av_frame_clone(r->scaled), .forced = forced, .arrival_ms = arrival};
  if (it.frame && pipeline__q_push(&r->q, &it, !p->realtime || p->replaying) == 0) {
    atomic_fetch_add(&st->in, 1);
    return;
  }
  pipeline__qitem_clear(&it);
  r->skipping = true; /* the rest of this GOP */
  atomic_fetch_add(&st->dropped, 1);
  atomic_fetch_add(&st->gops, 1);
  log_warn("transcoder", "rung queue full: GOP dropped channel=%s rendition=%s", p->channel, r->lr.name);
}

static void scale_and_push(struct pipeline *p, const AVFrame *frame, int64_t pts, bool forced, int64_t arrival) {
  bool needed[LADDER_MAX] = {0};
  for (int i = p->ladder.count - 1; i >= 0; i--) {
    struct rung *r = p->rungs[i];
    if (!r)
      continue;
    needed[i] = needed[i] || (!r->shed && !r->skipping);
    if (needed[i] && r->lr.scale_from >= 0)
      needed[r->lr.scale_from] = true;
  }
  for (int i = 0; i < p->ladder.count; i++) {
    struct rung *r = p->rungs[i];
    if (!r)
      continue;
    if (needed[i]) {
      const AVFrame *src = r->lr.scale_from >= 0 ? p->rungs[r->lr.scale_from]->scaled : frame;
      if (!src || scale_rung(r, src, pts) < 0) {
        atomic_fetch_add(&p->rs[i].errors, 1);
        continue;
      }
    }
    push_rung(p, r, forced, arrival);
  }
  for (int i = 0; i < p->ladder.count; i++)
    if (p->rungs[i])
      av_frame_free(&p->rungs[i]->scaled);
}

static int64_t frame_arrival(struct pipeline *p, int64_t pts) {
  for (unsigned i = 0; i < ARRIVAL_RING && i < p->arr_n; i++) {
    unsigned k = (p->arr_n - 1 - i) % ARRIVAL_RING;
    if (p->arr_pts[k] == pts)
      return p->arr_ms[k];
  }
  return p->arr_n ? p->arr_ms[(p->arr_n - 1) % ARRIVAL_RING] : 0;
}

static bool source_keyframe(const struct pipeline *p, int64_t pts) {
  for (unsigned i = 0; i < KEY_RING && i < p->key_n; i++)
    if (p->key_pts[(p->key_n - 1 - i) % KEY_RING] == pts)
      return true;
  return false;
}

static void handle_frame(struct pipeline *p, AVFrame *frame) {
  int64_t pts = frame->best_effort_timestamp != AV_NOPTS_VALUE ? frame->best_effort_timestamp : frame->pts;
  if (pts == AV_NOPTS_VALUE || pts <= p->last_frame_pts)
    return; /* rebasing keeps input monotonic; a decoder glitch is skipped */
  if (frame->width != p->src_w || frame->height != p->src_h) {
    log_info("transcoder", "source size changed channel=%s from=%dx%d to=%dx%d: new timeline", p->channel, p->src_w,
             p->src_h, frame->width, frame->height);
    atomic_fetch_add(&p->reconfigures, 1);
    pipeline__end_timeline(p, true);
    p->src_w = frame->width;
    p->src_h = frame->height;
    p->src_sar = frame->sample_aspect_ratio;
    if (pipeline__begin_timeline(p) < 0) {
      pipeline__fail_timeline(p);
      return;
    }
  }
  p->last_frame_pts = pts;
  int64_t k = ladder_segment_index(pts, 0, p->cfg.hls.segment_duration);
  bool boundary;
  if (p->source_writer) {
    /* The source's segments are cut by its packager at its first keyframe
     * in a new slot of the segment clock; the rungs' cut where it does,
     * whatever the encoder's GOP or clock (a 1.5 s GOP, a feed switch),
     * so every rendition's segment N covers the same time. */
    boundary = source_keyframe(p, pts) && (p->last_seg == INT64_MIN || k > p->last_seg);
    if (boundary)
      p->last_seg = k;
  } else {
    /* no source rendition: keyframes on the segment clock itself */
    boundary = k != p->last_seg;
    p->last_seg = k;
  }
  if (boundary)
    shed_policy(p);
  scale_and_push(p, frame, pts, boundary, frame_arrival(p, pts));
}

void pipeline__receive_frames(struct pipeline *p) {
  int rc;
  while (p->state == P_RUNNING && (rc = avcodec_receive_frame(p->dec, p->frame)) == 0) {
    if (p->frame->decode_error_flags || (p->frame->flags & AV_FRAME_FLAG_CORRUPT))
      atomic_fetch_add(&p->decode_errors, 1);
    handle_frame(p, p->frame);
    av_frame_unref(p->frame);
  }
}

static void decode_video(struct pipeline *p, const AVPacket *pkt, int64_t arrival) {
  unsigned k = p->arr_n++ % ARRIVAL_RING;
  p->arr_pts[k] = pkt->pts;
  p->arr_ms[k] = arrival;
  if (pkt->flags & AV_PKT_FLAG_KEY)
    p->key_pts[p->key_n++ % KEY_RING] = pkt->pts;
  int rc = avcodec_send_packet(p->dec, pkt);
  if (rc < 0 && rc != AVERROR(EAGAIN)) {
    if (atomic_fetch_add(&p->decode_errors, 1) % 100 == 0)
      log_warn("transcoder", "decode error channel=%s err=%s (counted; the stream goes on)", p->channel,
               av_err2str(rc));
  }
  pipeline__receive_frames(p);
}

/* ---- input: timestamps, keyframes, the hold ---- */

static void rebase(struct pipeline *p, AVPacket *pkt) {
  int s = pkt->stream_index == CHANNEL_AUDIO ? 1 : 0;
  if (pkt->dts == AV_NOPTS_VALUE)
    pkt->dts = pkt->pts;
  if (pkt->dts == AV_NOPTS_VALUE)
    pkt->pts = pkt->dts = p->have_last[s] ? p->last_dts[s] - p->ts_off + 1 : 0;
  if (pkt->pts == AV_NOPTS_VALUE)
    pkt->pts = pkt->dts;
  if (!p->have_off) {
    p->ts_off = pkt->dts < 0 ? -pkt->dts : 0;
    p->have_off = true;
  }
  int64_t dts = pkt->dts + p->ts_off;
  if (p->have_last[s] && (dts < p->last_dts[s] || dts - p->last_dts[s] > TS_JUMP_MS)) {
    int64_t step = s ? 21 : (p->fps > 0 ? (int64_t)(1000 / p->fps) : 33);
    int64_t want = p->last_dts[s] + step;
    atomic_fetch_add(&p->ts_rebased, 1);
    log_warn("transcoder", "timestamp jump rebased channel=%s stream=%s from=%lld to=%lld", p->channel,
             s ? "audio" : "video", (long long)p->last_dts[s], (long long)dts);
    p->ts_off += want - dts;
  }
  pkt->dts += p->ts_off;
  pkt->pts += p->ts_off;
  p->last_dts[s] = pkt->dts;
  p->have_last[s] = true;
}

static void track_keyframes(struct pipeline *p, const AVPacket *pkt) {
  if (!(pkt->flags & AV_PKT_FLAG_KEY)) {
    if (p->first_key_dts != INT64_MIN && pkt->dts - p->last_key_dts > p->max_keyint && p->state == P_HOLDING)
      p->max_keyint = pkt->dts - p->last_key_dts; /* still no keyframe: at least this long */
    return;
  }
  if (p->first_key_dts == INT64_MIN) {
    p->first_key_dts = p->last_key_dts = pkt->dts;
    return;
  }
  int64_t iv = pkt->dts - p->last_key_dts;
  p->last_key_dts = pkt->dts;
  if (iv > p->max_keyint)
    p->max_keyint = iv;
  if (p->state == P_RUNNING && p->source_writer && !p->keyint_warned &&
      !ladder_source_fits(iv, p->cfg.hls.segment_duration)) {
    p->keyint_warned = true;
    log_warn("transcoder",
             "source keyframe interval grew past the segment channel=%s "
             "keyint_ms=%lld: source segments run long",
             p->channel, (long long)iv);
  }
}

static void process_packet(struct pipeline *p, AVPacket *pkt, int64_t arrival) {
  if (pkt->stream_index == CHANNEL_AUDIO) {
    if (p->audio_writer && p->out.write(p->audio_writer, pkt, arrival) < 0)
      atomic_fetch_add(&p->rs[LADDER_MAX - 1].errors, 1);
    return;
  }
  if (p->source_writer && p->out.write(p->source_writer, pkt, arrival) < 0)
    atomic_fetch_add(&p->rs[0].errors, 1);
  if (p->nrungs > 0)
    decode_video(p, pkt, arrival);
}

/* Decode held packets only until the picture size is known (the feed's
 * parameters may not carry it); the decoder is flushed and the hold
 * replayed from its start once the timeline begins. */
static void probe_size(struct pipeline *p, const AVPacket *pkt) {
  if (!p->dec || avcodec_send_packet(p->dec, pkt) < 0)
    return;
  if (avcodec_receive_frame(p->dec, p->frame) == 0) {
    p->src_w = p->frame->width;
    p->src_h = p->frame->height;
    p->src_sar = p->frame->sample_aspect_ratio;
    av_frame_unref(p->frame);
  }
}

bool pipeline__hold_decided(struct pipeline *p) {
  if (!p->vpar)
    return true;
  if (p->src_w <= 0)
    return false;
  if (!p->cfg.transcoder.source_passthrough)
    return true;
  if (p->hold_count >= HOLD_MAX) {
    p->source_fits = false;
    return true;
  }
  if (p->keyint_hint > 0 && p->first_key_dts != INT64_MIN) {
    /* the channel measured this feed's GOP before it went on air: begin at
     * its first keyframe (track_keyframes still warns if it grows) */
    if (p->keyint_hint > p->max_keyint)
      p->max_keyint = p->keyint_hint;
    p->source_fits = ladder_source_fits(p->max_keyint, p->cfg.hls.segment_duration);
    return true;
  }
  int64_t limit = pipeline__seg_ms(p) + 50;
  if (p->max_keyint > limit || (p->max_keyint > 0 && p->last_key_dts != p->first_key_dts)) {
    p->source_fits = ladder_source_fits(p->max_keyint, p->cfg.hls.segment_duration);
    return true;
  }
  return false;
}

void pipeline__start_running(struct pipeline *p) {
  if (p->dec)
    avcodec_flush_buffers(p->dec);
  if (pipeline__begin_timeline(p) < 0) {
    pipeline__fail_timeline(p);
    return;
  }
  /* The hold is up to a segment of media at once: the encoders catch up
   * on it while the input queue buffers what arrives meanwhile. */
  p->replaying = true;
  for (int i = 0; i < p->hold_count; i++) {
    /* pipeline_free waits (on the loop thread) for this: stop replaying */
    if (p->state == P_RUNNING && !atomic_load(&p->aborting))
      process_packet(p, p->hold[i].pkt, p->hold[i].arrival_ms);
    pipeline__qitem_clear(&p->hold[i]);
  }
  p->replaying = false;
  p->hold_count = 0;
}

void pipeline__on_packet(struct pipeline *p, struct qitem *it) {
  AVPacket *pkt = it->pkt;
  if (p->state == P_IDLE || p->state == P_DISCARD)
    return;
  bool video = pkt->stream_index == CHANNEL_VIDEO;
  if ((video && !p->vpar) || (!video && !p->apar))
    return;
  rebase(p, pkt);
  if (video) {
    if (p->first_key_dts == INT64_MIN && !(pkt->flags & AV_PKT_FLAG_KEY))
      return; /* nothing decodes before the first keyframe */
    track_keyframes(p, pkt);
  }
  if (p->state == P_RUNNING) {
    process_packet(p, pkt, it->arrival_ms);
    return;
  }
  /* P_HOLDING */
  if (p->hold_count >= HOLD_MAX) { /* only when the size never showed */
    log_error("transcoder", "no picture decoded from the first %d packets channel=%s", HOLD_MAX, p->channel);
    pipeline__fail_timeline(p);
    return;
  }
  if (video) {
    if (p->src_w <= 0)
      probe_size(p, pkt);
    p->hold_bytes += pkt->size;
  }
  p->hold[p->hold_count++] = *it;
  memset(it, 0, sizeof(*it));
  if (pipeline__hold_decided(p))
    pipeline__start_running(p);
}
