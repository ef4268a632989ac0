/* transcoder: one pipeline per channel, fed by the channel's sink callbacks
 * and answered by the loop when it asks for HLS timelines (see
 * transcoder.h).
 *
 * Worker -> loop: a pipeline's decode thread posts a request (begin a
 * timeline with this layout / end it) on a mutex-guarded list and wakes the
 * loop with uv_async_send. The list needs no bound of its own: each
 * pipeline has at most one begin outstanding (its decode thread waits for
 * the answer) and one end per stop, and stops come from the bounded
 * control reserve of its input queue.
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

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/app.h"
#include "core/buf.h"
#include "relay/channel.h"
#include "core/log.h"
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
  bool slate_on; /* the slate's timeline is open */
  struct hls_stream_layout last_layout; /* the last feed's, for the slate */
  bool have_last_layout;
  uint64_t slate_due; /* uv_now when the grace after a timeline's end is over; 0 = none */
  struct tc_channel *next;
};

enum tc_req_kind { REQ_BEGIN, REQ_END };

struct tc_request {
  enum tc_req_kind kind;
  struct tc_channel *c;
  struct hls_stream_layout layout;
  struct tc_request *next;
};

struct transcoder {
  struct app *app;
  uv_async_t *async; /* freed in its close callback */
  uv_timer_t *grace; /* the slate's grace after an end; freed in its close callback */
  pthread_mutex_t mu;
  struct tc_request *head, *tail;
  struct tc_channel *channels;
};

/* ---- requests from the pipelines (worker threads) ---- */

static void post(struct tc_channel *c, struct tc_request *rq)
{
  struct transcoder *t = c->t;
  rq->c = c;
  pthread_mutex_lock(&t->mu);
  if (t->tail)
    t->tail->next = rq;
  else
    t->head = rq;
  t->tail = rq;
  pthread_mutex_unlock(&t->mu);
  uv_async_send(t->async);
}

static int out_begin(void *opaque, struct pipeline *p, const struct hls_stream_layout *layout)
{
  (void)p;
  struct tc_request *rq = calloc(1, sizeof(*rq));
  if (!rq)
    return -1;
  rq->kind = REQ_BEGIN;
  rq->layout = *layout;
  post(opaque, rq);
  return 0;
}

static void out_end(void *opaque)
{
  struct tc_request *rq = calloc(1, sizeof(*rq));
  if (!rq)
    return; /* the next begin is a discontinuity all the same */
  rq->kind = REQ_END;
  post(opaque, rq);
}

/* Writers are the stream's packagers: they push into the stream's own
 * queue, and the stream lives until hls_server_free. */
static void *out_open(void *opaque, uint32_t timeline, int index, const AVCodecParameters *par,
                      AVRational tb)
{
  struct tc_channel *c = opaque;
  return hls_packager_new(c->st, timeline, index, par, tb);
}

static int out_write(void *writer, const AVPacket *pkt, int64_t arrival_ms)
{
  return hls_packager_write(writer, pkt, arrival_ms);
}

static void out_close(void *writer, bool flush)
{
  if (flush)
    hls_packager_flush(writer);
  hls_packager_free(writer);
}

/* ---- the slate ---- */

#define SLATE_SRC_W 1920 /* the nominal source of the slate before any feed */
#define SLATE_SRC_H 1080

static const struct config_channel *channel_cfg(const struct config *cfg, const char *name)
{
  for (int i = 0; i < cfg->channel_count; i++)
    if (strcmp(cfg->channels[i].name, name) == 0)
      return &cfg->channels[i];
  return NULL;
}

/* Before any feed: the ladder of a nominal 1080p source (every rung, and
 * "source" when passed through), plus audio. */
static void default_layout(const struct config *cfg, struct hls_stream_layout *lay)
{
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

static void slate_begin(struct tc_channel *c)
{
  if (c->slate_on || c->timeline_open || !c->slate)
    return;
  const struct config *cfg = c->t->app->cfg;
  const struct config_channel *cc = channel_cfg(cfg, c->name);
  struct slate_params sp = {.segment_duration = cfg->hls.segment_duration,
                            .part_duration = cfg->hls.part_duration};
  if (cc) {
    snprintf(sp.title, sizeof(sp.title), "%s", cc->title);
    snprintf(sp.image, sizeof(sp.image), "%s", cc->slate_image);
  }
  struct hls_stream_layout lay;
  if (c->have_last_layout)
    lay = c->last_layout;
  else
    default_layout(cfg, &lay);
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
static void slate_end(struct tc_channel *c, bool flush)
{
  if (!c->slate_on)
    return;
  slate_player_halt(c->slate, flush);
  hls_stream_end(c->st);
  c->slate_on = false;
  log_info("transcoder", "slate off channel=%s", c->name);
}

/* ---- the loop side ---- */

static uint64_t slate_grace_ms(const struct transcoder *t)
{
  return (uint64_t)(t->app->cfg->hls.part_duration * 1000.0 + 0.5);
}

static void on_grace(uv_timer_t *h);

static void handle(struct tc_request *rq)
{
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
    c->slate_due = uv_now(c->t->app->loop) + slate_grace_ms(c->t);
  }
}

/* The slate for every channel without a timeline whose grace is over;
 * the timer is armed for the earliest grace still running. */
static void slate_when_due(struct transcoder *t)
{
  uint64_t now = uv_now(t->app->loop), next = 0;
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

static void on_grace(uv_timer_t *h)
{
  if (h->data)
    slate_when_due(h->data);
}

static void on_async(uv_async_t *h)
{
  struct transcoder *t = h->data;
  if (!t)
    return;
  pthread_mutex_lock(&t->mu);
  struct tc_request *rq = t->head;
  t->head = t->tail = NULL;
  pthread_mutex_unlock(&t->mu);
  while (rq) {
    struct tc_request *next = rq->next;
    handle(rq);
    free(rq);
    rq = next;
  }
  /* after the whole batch: an end followed at once by a begin (a resize,
   * a feed switch) needs no slate in between */
  slate_when_due(t);
}

/* Drop the queued requests of c (its pipeline is joined: no new ones). */
static void purge(struct transcoder *t, struct tc_channel *c)
{
  pthread_mutex_lock(&t->mu);
  struct tc_request **pp = &t->head, *last = NULL;
  while (*pp) {
    struct tc_request *rq = *pp;
    if (rq->c == c) {
      *pp = rq->next;
      free(rq);
    } else {
      last = rq;
      pp = &rq->next;
    }
  }
  t->tail = last;
  pthread_mutex_unlock(&t->mu);
}

/* ---- channel sink ---- */

static void sink_start(void *opaque, const struct channel_feed_info *info)
{
  struct tc_channel *c = opaque;
  pipeline_start(c->p, info);
}

static void sink_packet(void *opaque, const AVPacket *pkt, int64_t arrival_ms)
{
  struct tc_channel *c = opaque;
  pipeline_packet(c->p, pkt, arrival_ms);
}

static void sink_stop(void *opaque)
{
  struct tc_channel *c = opaque;
  pipeline_stop(c->p);
}

static const struct channel_sink_ops sink_ops = {
    .on_start = sink_start, .on_packet = sink_packet, .on_stop = sink_stop};

static struct tc_channel *find(const struct transcoder *t, const struct channel *ch,
                               const char *name)
{
  for (struct tc_channel *c = t->channels; c; c = c->next)
    if ((ch && c->ch == ch) || (name && strcmp(c->name, name) == 0))
      return c;
  return NULL;
}

static void attach(void *opaque, struct channel *ch)
{
  struct transcoder *t = opaque;
  if (find(t, ch, NULL))
    return;
  struct tc_channel *c = calloc(1, sizeof(*c));
  if (!c)
    return;
  c->t = t;
  c->ch = ch;
  snprintf(c->name, sizeof(c->name), "%s", channel_name(ch));
  c->st = hls_stream_get(t->app->hls, c->name);
  /* after a restart: the renditions of the feed before it, not a nominal 1080p source's */
  if (c->st && hls_stream_saved_layout(c->st, &c->last_layout) == 0)
    c->have_last_layout = true;
  struct pipeline_output out = {.begin = out_begin, .open = out_open, .write = out_write,
                                .close = out_close, .end = out_end, .opaque = c};
  c->p = c->st ? pipeline_new(c->name, t->app->cfg, &out, true) : NULL;
  if (!c->p) {
    log_error("transcoder", "channel not transcoded channel=%s", c->name);
    free(c);
    return;
  }
  struct slate_output sout = {.open = out_open, .write = out_write, .close = out_close,
                              .opaque = c};
  c->slate = slate_player_new(c->name, &sout);
  if (!c->slate)
    log_warn("transcoder", "no slate channel=%s", c->name);
  c->next = t->channels;
  t->channels = c;
  c->sink_id = channel_subscribe(ch, &sink_ops, c);
  slate_begin(c); /* a live feed's begin will halt it */
}

static void detach_one(struct transcoder *t, struct tc_channel *c)
{
  if (c->sink_id > 0)
    channel_unsubscribe(c->ch, c->sink_id);
  pipeline_free(c->p); /* aborts: joins the decode and rung threads */
  purge(t, c);
  slate_end(c, false);
  slate_player_free(c->slate);
  if (c->timeline_open)
    hls_stream_end(c->st);
  free(c);
}

static void detach(void *opaque, struct channel *ch)
{
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
static void av_log_to_ours(void *avcl, int level, const char *fmt, va_list vl)
{
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
  enum log_level ours = level <= AV_LOG_ERROR ? LOG_LEVEL_ERROR : level <= AV_LOG_WARNING ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG;
  log_msg(ours, "libav", "%s", line);
}

static void on_handle_closed(uv_handle_t *h)
{
  free(h);
}

struct transcoder *transcoder_start(struct app *app)
{
  av_log_set_callback(av_log_to_ours);
  struct transcoder *t = calloc(1, sizeof(*t));
  if (!t)
    return NULL;
  t->app = app;
  t->async = calloc(1, sizeof(*t->async));
  if (!t->async || uv_async_init(app->loop, t->async, on_async) != 0) {
    log_error("transcoder", "uv_async_init failed");
    free(t->async);
    free(t);
    return NULL;
  }
  t->async->data = t;
  t->grace = calloc(1, sizeof(*t->grace));
  if (!t->grace || uv_timer_init(app->loop, t->grace) != 0) {
    log_error("transcoder", "uv_timer_init failed");
    free(t->grace);
    uv_close((uv_handle_t *)t->async, on_handle_closed);
    free(t);
    return NULL;
  }
  t->grace->data = t;
  pthread_mutex_init(&t->mu, NULL);
  int n = channel_registry_count(app->channels);
  for (int i = 0; i < n; i++)
    attach(t, channel_registry_at(app->channels, i));
  struct channel_registry_observer obs = {
      .on_channel_added = attach, .on_channel_removed = detach, .opaque = t};
  channel_registry_observe(app->channels, &obs);
  log_info("transcoder", "started channels=%d", n);
  return t;
}

void transcoder_stop(struct transcoder *t)
{
  if (!t)
    return;
  while (t->channels) {
    struct tc_channel *c = t->channels;
    t->channels = c->next;
    detach_one(t, c);
  }
  t->async->data = NULL;
  uv_close((uv_handle_t *)t->async, on_handle_closed);
  t->grace->data = NULL;
  uv_close((uv_handle_t *)t->grace, on_handle_closed);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

void transcoder_reload(struct transcoder *t, const struct config *cfg)
{
  for (struct tc_channel *c = t->channels; c; c = c->next)
    pipeline_reload(c->p, cfg);
}

struct metric {
  const char *name, *help;
  int field; /* index into the row below */
};

static uint64_t rung_field(const struct pipeline_rung_stats *r, int f)
{
  const uint64_t v[] = {r->frames_in, r->frames_out, r->frames_dropped, r->gops_dropped, r->errors};
  return v[f];
}

static uint64_t channel_field(const struct pipeline_stats *s, int f)
{
  const uint64_t v[] = {s->packets_in, s->input_dropped, s->decode_errors, s->ts_rebased,
                        s->timelines, s->reconfigures};
  return v[f];
}

void transcoder_metrics(const struct transcoder *t, struct buf *out)
{
  static const struct metric per_channel[] = {
      {"galarelay_transcoder_packets_total", "Packets fed to the pipeline", 0},
      {"galarelay_transcoder_input_dropped_total", "Packets dropped at the full input queue", 1},
      {"galarelay_transcoder_decode_errors_total", "Source video decode errors", 2},
      {"galarelay_transcoder_timestamp_rebases_total", "Timestamp jumps rebased", 3},
      {"galarelay_transcoder_timelines_total", "HLS timelines begun", 4},
      {"galarelay_transcoder_reconfigures_total", "Mid-stream source size changes", 5},
  };
  static const struct metric per_rung[] = {
      {"galarelay_transcoder_frames_in_total", "Frames queued to a rung encoder", 0},
      {"galarelay_transcoder_frames_out_total", "Encoded frames out of a rung", 1},
      {"galarelay_transcoder_frames_dropped_total", "Frames a rung skipped (lag, overload)", 2},
      {"galarelay_transcoder_gops_dropped_total", "GOPs a rung skipped (lag, overload)", 3},
      {"galarelay_transcoder_encode_errors_total", "Encoder or writer errors", 4},
  };
  int n = 0;
  for (struct tc_channel *c = t->channels; c; c = c->next)
    n++;
  struct pipeline_stats *st = calloc(n ? (size_t)n : 1, sizeof(*st));
  if (!st)
    return;
  int i = 0;
  for (struct tc_channel *c = t->channels; c; c = c->next)
    pipeline_get_stats(c->p, &st[i++]);
  for (size_t m = 0; m < sizeof(per_channel) / sizeof(per_channel[0]); m++) {
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", per_channel[m].name, per_channel[m].help,
               per_channel[m].name);
    i = 0;
    for (struct tc_channel *c = t->channels; c; c = c->next, i++)
      buf_printf(out, "%s{channel=\"%s\"} %llu\n", per_channel[m].name, c->name,
                 (unsigned long long)channel_field(&st[i], per_channel[m].field));
  }
  for (size_t m = 0; m < sizeof(per_rung) / sizeof(per_rung[0]); m++) {
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", per_rung[m].name, per_rung[m].help,
               per_rung[m].name);
    i = 0;
    for (struct tc_channel *c = t->channels; c; c = c->next, i++)
      for (int r = 0; r < st[i].rendition_count; r++)
        if (!st[i].r[r].passthrough)
          buf_printf(out, "%s{channel=\"%s\",rendition=\"%s\"} %llu\n", per_rung[m].name, c->name,
                     st[i].r[r].name, (unsigned long long)rung_field(&st[i].r[r], per_rung[m].field));
  }
  buf_printf(out, "# HELP galarelay_transcoder_slate_active Whether the channel plays its slate\n"
                  "# TYPE galarelay_transcoder_slate_active gauge\n");
  for (struct tc_channel *c = t->channels; c; c = c->next)
    buf_printf(out, "galarelay_transcoder_slate_active{channel=\"%s\"} %d\n", c->name,
               c->slate_on ? 1 : 0);
  free(st);
}

void transcoder_api_fill(const struct transcoder *t, const char *channel, struct json_t *obj)
{
  struct tc_channel *c = find(t, NULL, channel);
  json_t *arr = json_array();
  if (!arr)
    return;
  struct pipeline_stats st = {0};
  if (c)
    pipeline_get_stats(c->p, &st);
  for (int i = 0; st.live && i < st.rendition_count; i++) {
    const struct pipeline_rung_stats *r = &st.r[i];
    json_array_append_new(arr, json_pack("{s:s, s:i, s:i, s:I, s:b}", "name", r->name, "width",
                                         r->width, "height", r->height, "bitrate",
                                         (json_int_t)r->bitrate, "passthrough", r->passthrough));
  }
  json_object_set_new(obj, "renditions", arr);
  json_object_set_new(obj, "audio", json_boolean(st.live && st.has_audio));
  json_object_set_new(obj, "slate", json_boolean(c && c->slate_on));
}
