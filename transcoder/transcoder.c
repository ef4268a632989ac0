/* transcoder: one pipeline per channel, fed by the channel's sink callbacks
 * and answered by the loop when it asks for HLS timelines (see
 * transcoder.h).
 *
 * Worker -> loop: a pipeline's decode thread posts a request (begin a
 * timeline with this layout / end it) into a workq (core/workq.h), which
 * wakes the loop. Bound: TC_REQUESTS_MAX requests, refused when full. It is
 * never reached in practice: each pipeline has at most one begin
 * outstanding (its decode thread waits for the answer) and one end before
 * it, so two per channel. A refused begin gives that timeline up (the
 * pipeline idles until the next start), a refused end is logged and the
 * next begin is a discontinuity all the same.
 *
 * The slate (slate.h): whenever a channel has no timeline of a feed open
 * (from the start, between feeds, while a new feed's first GOP is held),
 * the loop begins a timeline of its own and a slate player fills it with a
 * still picture and silence, so playlists keep growing and players never
 * stall. A feed's begin request halts the player first (its tail is
 * flushed), so each switch is one discontinuity and MSNs continue. The
 * slate reuses the renditions of the last feed (players keep their
 * playlist URLs; after a restart, those hls_store saved in state_dir), or,
 * before any feed, the configured ladder for a 1920x1080 source. After a
 * feed's timeline ends the slate waits one part duration (the grace
 * timer): a switch to a ready standby begins its timeline within it, and
 * viewers see no card flash between the two. */
#include "transcoder/transcoder.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/workq.h"
#include "relay/channel.h"
#include "core/metrics.h"
#include "transcoder/hls/hls_packager.h"
#include "transcoder/hls/hls_store.h"
#include "transcoder/ladder.h"
#include "transcoder/pipeline.h"
#include "transcoder/slate.h"

#include <libavutil/log.h>

struct tc_channel {
  struct transcoder *t;
  struct channel *ch;
  char name[64];
  int sink_id;
  struct pipeline *p;
  struct hls_stream *st;
  bool timeline_open; /* a begin was answered and no end since */
  struct slate_player *slate;
  bool slate_on;                        /* the slate's timeline is open */
  struct hls_stream_layout last_layout; /* the last feed's, for the slate */
  bool have_last_layout;
  uint64_t slate_due; /* uv_now when the grace after a timeline's end is over; 0 = none */
  struct tc_channel *next;
};

enum tc_req_kind { REQ_BEGIN, REQ_END };

/* One request; the workq carries a pointer to it, and whoever holds the
 * pointer frees it (handle(), or the workq's on_drop). */
struct tc_request {
  enum tc_req_kind kind;
  struct tc_channel *c;
  struct hls_stream_layout layout;
};

#define TC_REQUESTS_MAX (4 * CONFIG_MAX_CHANNELS) /* see the top of this file */

struct transcoder {
  uv_loop_t *loop;
  struct channel_registry *registry;
  struct hls_server *hls;
  /* the current config's sections (replaced by transcoder_reload) */
  const struct config_transcoder *tc_cfg;
  const struct config_hls *hls_cfg;
  const struct config_channel *chan_cfg;
  int chan_count;
  struct workq *requests; /* pipelines -> loop; its memory goes in workq_stop */
  uv_timer_t *grace;      /* the slate's grace after an end; freed in its close callback */
  struct tc_channel *channels;
  int closing; /* handles still closing in transcoder_stop */
  void (*stopped_cb)(void *arg);
  void *stopped_arg;
};

/* ---- requests from the pipelines (worker threads) ---- */

/* 0, or -ENOMEM / -EAGAIN (queue full) / -EPIPE (stopping): rq freed. */
static int post(struct tc_channel *c, struct tc_request *rq) {
  rq->c = c;
  int e = workq_push(c->t->requests, &rq);
  if (e < 0) {
    log_warn("transcoder", "request not queued channel=%s kind=%s err=%s", c->name,
             rq->kind == REQ_BEGIN ? "begin" : "end", uv_strerror(e));
    free(rq);
  }
  return e;
}

static int out_begin(void *opaque, struct pipeline *p, const struct hls_stream_layout *layout) {
  (void)p;
  struct tc_request *rq = calloc(1, sizeof(*rq));
  if (!rq)
    return -ENOMEM;
  rq->kind = REQ_BEGIN;
  rq->layout = *layout;
  return post(opaque, rq);
}

static void out_end(void *opaque) {
  struct tc_request *rq = calloc(1, sizeof(*rq));
  if (!rq)
    return; /* the next begin is a discontinuity all the same */
  rq->kind = REQ_END;
  post(opaque, rq); /* refused: the same */
}

/* Writers are the stream's packagers: they push into the stream's own
 * queue, and the stream lives until hls_server_stop. */
static void *out_open(void *opaque, uint32_t timeline, int index, const AVCodecParameters *par, AVRational tb) {
  struct tc_channel *c = opaque;
  return hls_stream_packager(c->st, timeline, index, par, tb);
}

static int out_write(void *writer, const AVPacket *pkt, int64_t arrival_ms) {
  return hls_packager_write(writer, pkt, arrival_ms);
}

static void out_close(void *writer, bool flush) {
  if (flush)
    hls_packager_flush(writer);
  hls_packager_free(writer);
}

/* ---- the slate ---- */

#define SLATE_SRC_W 1920 /* the nominal source of the slate before any feed */
#define SLATE_SRC_H 1080

static const struct config_channel *channel_cfg(const struct transcoder *t, const char *name) {
  for (int i = 0; i < t->chan_count; i++)
    if (strcmp(t->chan_cfg[i].name, name) == 0)
      return &t->chan_cfg[i];
  return NULL;
}

/* Before any feed: the ladder of a nominal 1080p source (every rung, and
 * "source" when passed through), plus audio. */
static void default_layout(const struct config_transcoder *cfg, struct hls_stream_layout *lay) {
  struct ladder l;
  memset(lay, 0, sizeof(*lay));
  if (ladder_build(cfg, SLATE_SRC_W, SLATE_SRC_H, &l) < 0)
    l.count = 0;
  for (int i = 0; i < l.count && lay->count < HLS_MAX_RENDITIONS - 1; i++) {
    struct hls_rendition_desc *d = &lay->r[lay->count++];
    snprintf(d->name, sizeof(d->name), "%s", l.r[i].name);
    d->kind = HLS_VIDEO;
    d->width = l.r[i].width;
    d->height = l.r[i].height;
    d->bandwidth = (int64_t)l.r[i].max_rate * 1000;
    d->average_bandwidth = (int64_t)l.r[i].video_bitrate * 1000;
  }
  struct hls_rendition_desc *a = &lay->r[lay->count++];
  snprintf(a->name, sizeof(a->name), "audio");
  a->kind = HLS_AUDIO;
  a->channels = 2;
}

static void slate_begin(struct tc_channel *c) {
  if (c->slate_on || c->timeline_open || !c->slate)
    return;
  const struct config_channel *cc = channel_cfg(c->t, c->name);
  struct slate_params sp = {.segment_duration = c->t->hls_cfg->segment_duration,
                            .part_duration = c->t->hls_cfg->part_duration};
  if (cc) {
    snprintf(sp.title, sizeof(sp.title), "%s", cc->title);
    snprintf(sp.image, sizeof(sp.image), "%s", cc->slate_image);
  }
  struct hls_stream_layout lay;
  if (c->have_last_layout)
    lay = c->last_layout;
  else
    default_layout(c->t->tc_cfg, &lay);
  double fps = 1000.0 / (double)slate_frame_ms_for(sp.part_duration);
  for (int i = 0; i < lay.count; i++)
    if (lay.r[i].kind == HLS_VIDEO)
      lay.r[i].fps = fps;
  hls_stream_drain(c->st);
  uint32_t id = hls_stream_begin(c->st, &lay);
  if (id == 0)
    return;
  if (slate_player_play(c->slate, &sp, &lay, id) < 0) {
    hls_stream_end(c->st);
    return;
  }
  c->slate_on = true;
  log_info("transcoder", "slate on channel=%s timeline=%u renditions=%d", c->name, id, lay.count);
}

/* flush: the slate's last part goes out (a feed follows); else dropped. */
static void slate_end(struct tc_channel *c, bool flush) {
  if (!c->slate_on)
    return;
  slate_player_halt(c->slate, flush);
  hls_stream_end(c->st);
  c->slate_on = false;
  log_info("transcoder", "slate off channel=%s", c->name);
}

/* ---- the loop side ---- */

static uint64_t slate_grace_ms(const struct transcoder *t) {
  return (uint64_t)(t->hls_cfg->part_duration * 1000.0 + 0.5);
}

static void on_grace(uv_timer_t *h);

static void handle(struct tc_request *rq) {
  struct tc_channel *c = rq->c;
  if (rq->kind == REQ_BEGIN) {
    slate_end(c, true);
    hls_stream_drain(c->st); /* the last timeline's tail goes in before the switch */
    uint32_t id = hls_stream_begin(c->st, &rq->layout);
    c->timeline_open = id != 0;
    if (id != 0) {
      c->last_layout = rq->layout;
      c->have_last_layout = true;
      hls_stream_save_layout(c->st, &rq->layout); /* for the slate after a restart */
    }
    pipeline_begun(c->p, id);
    c->slate_due = 0;
  } else {
    hls_stream_end(c->st);
    c->timeline_open = false;
    c->slate_due = uv_now(c->t->loop) + slate_grace_ms(c->t);
  }
}

/* The slate for every channel without a timeline whose grace is over;
 * the timer is armed for the earliest grace still running. */
static void slate_when_due(struct transcoder *t) {
  uint64_t now = uv_now(t->loop), next = 0;
  for (struct tc_channel *c = t->channels; c; c = c->next) {
    if (c->timeline_open || c->slate_on)
      continue;
    if (c->slate_due > now) {
      next = next && next < c->slate_due ? next : c->slate_due;
      continue;
    }
    c->slate_due = 0;
    slate_begin(c);
  }
  if (next)
    uv_timer_start(t->grace, on_grace, next - now, 0);
}

static void on_grace(uv_timer_t *h) {
  if (h->data)
    slate_when_due(h->data);
}

static void on_request(void *item, void *opaque) {
  (void)opaque;
  struct tc_request *rq = *(struct tc_request **)item;
  handle(rq);
  free(rq);
}

static void drop_request(void *item, void *opaque) {
  (void)opaque;
  free(*(struct tc_request **)item);
}

/* After the whole batch: an end followed at once by a begin (a resize, a
 * feed switch) needs no slate in between. */
static void on_requests_done(void *opaque) { slate_when_due(opaque); }

static bool request_of(const void *item, void *c) { return (*(struct tc_request *const *)item)->c == c; }

/* ---- channel sink ---- */

static void sink_start(void *opaque, const struct channel_feed_info *info) {
  struct tc_channel *c = opaque;
  pipeline_start(c->p, info);
}

static void sink_packet(void *opaque, const AVPacket *pkt, int64_t arrival_ms) {
  struct tc_channel *c = opaque;
  pipeline_packet(c->p, pkt, arrival_ms);
}

static void sink_stop(void *opaque) {
  struct tc_channel *c = opaque;
  pipeline_stop(c->p);
}

static const struct channel_sink_ops sink_ops = {
    .on_start = sink_start, .on_packet = sink_packet, .on_stop = sink_stop};

static struct tc_channel *find(const struct transcoder *t, const struct channel *ch, const char *name) {
  for (struct tc_channel *c = t->channels; c; c = c->next)
    if ((ch && c->ch == ch) || (name && strcmp(c->name, name) == 0))
      return c;
  return NULL;
}

static void attach(void *opaque, struct channel *ch) {
  struct transcoder *t = opaque;
  if (find(t, ch, NULL))
    return;
  struct tc_channel *c = calloc(1, sizeof(*c));
  if (!c)
    return;
  c->t = t;
  c->ch = ch;
  snprintf(c->name, sizeof(c->name), "%s", channel_name(ch));
  c->st = hls_stream_get(t->hls, c->name);
  /* after a restart: the renditions of the feed before it, not a nominal 1080p source's */
  if (c->st && hls_stream_saved_layout(c->st, &c->last_layout) == 0)
    c->have_last_layout = true;
  struct pipeline_output out = {
      .begin = out_begin, .open = out_open, .write = out_write, .close = out_close, .end = out_end, .opaque = c};
  c->p = c->st ? pipeline_new(c->name, t->tc_cfg, t->hls_cfg, &out, true) : NULL;
  if (!c->p) {
    log_error("transcoder", "channel not transcoded channel=%s", c->name);
    free(c);
    return;
  }
  struct slate_output sout = {.open = out_open, .write = out_write, .close = out_close, .opaque = c};
  c->slate = slate_player_new(c->name, &sout);
  if (!c->slate)
    log_warn("transcoder", "no slate channel=%s", c->name);
  c->next = t->channels;
  t->channels = c;
  c->sink_id = channel_subscribe(ch, &sink_ops, c);
  slate_begin(c); /* a live feed's begin will halt it */
}

static void detach_one(struct transcoder *t, struct tc_channel *c) {
  if (c->sink_id > 0)
    channel_unsubscribe(c->ch, c->sink_id);
  pipeline_free(c->p);                     /* aborts: joins the decode and rung threads */
  workq_purge(t->requests, request_of, c); /* no new ones: its threads are gone */
  slate_end(c, false);
  slate_player_free(c->slate);
  if (c->timeline_open)
    hls_stream_end(c->st);
  free(c);
}

static void detach(void *opaque, struct channel *ch) {
  struct transcoder *t = opaque;
  for (struct tc_channel **pp = &t->channels; *pp; pp = &(*pp)->next) {
    if ((*pp)->ch == ch) {
      struct tc_channel *c = *pp;
      *pp = c->next;
      detach_one(t, c);
      return;
    }
  }
}

/* ---- public ---- */

/* libav and x264 log through av_log from the encoder threads; give their
 * warnings and errors our line format (log_msg is thread-safe) and keep
 * their informational chatter at debug. */
static void av_log_to_ours(void *avcl, int level, const char *fmt, va_list vl) {
  if (level > AV_LOG_INFO && log_get_level() > LOG_LEVEL_DEBUG)
    return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  if (!n)
    return;
  enum log_level ours = level <= AV_LOG_ERROR     ? LOG_LEVEL_ERROR
                        : level <= AV_LOG_WARNING ? LOG_LEVEL_WARN
                                                  : LOG_LEVEL_DEBUG;
  log_msg(ours, "libav", "%s", line);
}

static void stopped_one(void *arg) {
  struct transcoder *t = arg;
  if (--t->closing > 0)
    return;
  void (*cb)(void *) = t->stopped_cb;
  void *cb_arg = t->stopped_arg;
  free(t);
  if (cb)
    cb(cb_arg);
}

static void on_grace_closed(uv_handle_t *h) {
  struct transcoder *t = h->data;
  free(h);
  stopped_one(t);
}

struct transcoder *transcoder_start(uv_loop_t *loop, struct channel_registry *registry, struct hls_server *hls,
                                    const struct config_transcoder *tc_cfg, const struct config_hls *hls_cfg,
                                    const struct config_channel *chan_cfg, int chan_count) {
  av_log_set_callback(av_log_to_ours);
  struct transcoder *t = calloc(1, sizeof(*t));
  if (!t)
    return NULL;
  t->loop = loop;
  t->registry = registry;
  t->hls = hls;
  t->tc_cfg = tc_cfg;
  t->hls_cfg = hls_cfg;
  t->chan_cfg = chan_cfg;
  t->chan_count = chan_count;
  struct workq_ops ops = {.on_item = on_request, .on_drop = drop_request, .on_batch = on_requests_done, .opaque = t};
  int e = workq_new(loop, sizeof(struct tc_request *), TC_REQUESTS_MAX, WORKQ_REFUSE_NEW, &ops, &t->requests);
  if (e < 0) {
    log_error("transcoder", "request queue not created err=%s", uv_strerror(e));
    free(t);
    return NULL;
  }
  t->grace = calloc(1, sizeof(*t->grace));
  if (!t->grace || uv_timer_init(loop, t->grace) != 0) {
    log_error("transcoder", "uv_timer_init failed");
    free(t->grace);
    workq_stop(t->requests, free, t); /* t goes once the queue's handle is closed */
    return NULL;
  }
  t->grace->data = t;
  int n = channel_registry_count(registry);
  for (int i = 0; i < n; i++)
    attach(t, channel_registry_at(registry, i));
  struct channel_registry_observer obs = {.on_channel_added = attach, .on_channel_removed = detach, .opaque = t};
  channel_registry_observe(registry, &obs);
  log_info("transcoder", "started channels=%d", n);
  return t;
}

void transcoder_stop(struct transcoder *t, void (*cb)(void *arg), void *arg) {
  if (!t) {
    if (cb)
      cb(arg);
    return;
  }
  while (t->channels) {
    struct tc_channel *c = t->channels;
    t->channels = c->next;
    detach_one(t, c);
  }
  t->stopped_cb = cb;
  t->stopped_arg = arg;
  t->closing = 2;
  workq_stop(t->requests, stopped_one, t);
  uv_close((uv_handle_t *)t->grace, on_grace_closed);
}

void transcoder_reload(struct transcoder *t, const struct config_transcoder *tc_cfg, const struct config_hls *hls_cfg,
                       const struct config_channel *chan_cfg, int chan_count) {
  t->tc_cfg = tc_cfg;
  t->hls_cfg = hls_cfg;
  t->chan_cfg = chan_cfg;
  t->chan_count = chan_count;
  for (struct tc_channel *c = t->channels; c; c = c->next)
    pipeline_reload(c->p, tc_cfg, hls_cfg);
}

void transcoder_metrics(const struct transcoder *t, struct buf *out) {
#define PS(NAME, HELP, FIELD) METRIC_FIELD(NAME, METRIC_COUNTER, HELP, struct pipeline_stats, FIELD)
#define RS(NAME, HELP, FIELD) METRIC_FIELD(NAME, METRIC_COUNTER, HELP, struct pipeline_rung_stats, FIELD)
  static const struct metric per_channel[] = {
      PS("galarelay_transcoder_packets_total", "Packets fed to the pipeline", packets_in),
      PS("galarelay_transcoder_input_dropped_total", "Packets dropped at the full input queue", input_dropped),
      PS("galarelay_transcoder_decode_errors_total", "Source video decode errors", decode_errors),
      PS("galarelay_transcoder_timestamp_rebases_total", "Timestamp jumps rebased", ts_rebased),
      PS("galarelay_transcoder_timelines_total", "HLS timelines begun", timelines),
      PS("galarelay_transcoder_reconfigures_total", "Mid-stream source size changes", reconfigures),
  };
  static const struct metric per_rung[] = {
      RS("galarelay_transcoder_frames_in_total", "Frames queued to a rung encoder", frames_in),
      RS("galarelay_transcoder_frames_out_total", "Encoded frames out of a rung", frames_out),
      RS("galarelay_transcoder_frames_dropped_total", "Frames a rung skipped (lag, overload)", frames_dropped),
      RS("galarelay_transcoder_gops_dropped_total", "GOPs a rung skipped (lag, overload)", gops_dropped),
      RS("galarelay_transcoder_encode_errors_total", "Encoder or writer errors", errors),
  };
#undef PS
#undef RS
  static const struct metric slate =
      METRIC_FAMILY("galarelay_transcoder_slate_active", METRIC_GAUGE, "Whether the channel plays its slate");
  int n = 0;
  for (struct tc_channel *c = t->channels; c; c = c->next)
    n++;
  struct pipeline_stats *st = calloc(n ? (size_t)n : 1, sizeof(*st));
  if (!st)
    return;
  int i = 0;
  for (struct tc_channel *c = t->channels; c; c = c->next)
    pipeline_get_stats(c->p, &st[i++]);
  char label[128];
  for (size_t m = 0; m < METRICS_COUNT(per_channel); m++) {
    metrics_head(out, &per_channel[m]);
    i = 0;
    for (struct tc_channel *c = t->channels; c; c = c->next, i++) {
      snprintf(label, sizeof label, "channel=\"%s\"", c->name);
      metrics_sample(out, &per_channel[m], label, &st[i]);
    }
  }
  for (size_t m = 0; m < METRICS_COUNT(per_rung); m++) {
    metrics_head(out, &per_rung[m]);
    i = 0;
    for (struct tc_channel *c = t->channels; c; c = c->next, i++)
      for (int r = 0; r < st[i].rendition_count; r++)
        if (!st[i].r[r].passthrough) {
          snprintf(label, sizeof label, "channel=\"%s\",rendition=\"%s\"", c->name, st[i].r[r].name);
          metrics_sample(out, &per_rung[m], label, &st[i].r[r]);
        }
  }
  metrics_head(out, &slate);
  for (struct tc_channel *c = t->channels; c; c = c->next) {
    snprintf(label, sizeof label, "channel=\"%s\"", c->name);
    metrics_value(out, &slate, label, c->slate_on ? 1 : 0);
  }
  free(st);
}

void transcoder_api_fill(const struct transcoder *t, const char *channel, struct json_t *obj) {
  struct tc_channel *c = find(t, NULL, channel);
  json_t *arr = json_array();
  if (!arr)
    return;
  struct pipeline_stats st = {0};
  if (c)
    pipeline_get_stats(c->p, &st);
  for (int i = 0; st.live && i < st.rendition_count; i++) {
    const struct pipeline_rung_stats *r = &st.r[i];
    json_array_append_new(arr, json_pack("{s:s, s:i, s:i, s:I, s:b}", "name", r->name, "width", r->width, "height",
                                         r->height, "bitrate", (json_int_t)r->bitrate, "passthrough", r->passthrough));
  }
  json_object_set_new(obj, "renditions", arr);
  json_object_set_new(obj, "audio", json_boolean(st.live && st.has_audio));
  json_object_set_new(obj, "slate", json_boolean(c && c->slate_on));
}
