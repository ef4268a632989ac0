/* hls_store: per-channel HLS windows in memory (see hls_store.h).
 *
 * Packagers on worker threads call the stream's sink, which puts the part
 * (a blob reference) into the stream's workq (core/workq.h: bounded,
 * HLS_QUEUE_MAX, refusing new parts when full), which wakes the loop. The
 * loop drains the queue into the renditions' windows, wakes parked requests and mirrors finished segments to disk.
 * Disk work (state file, recording) runs on the libuv threadpool; the
 * server is freed only when its handles are closed and those jobs are done. */
#include "transcoder/hls/hls_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/workq.h"
#include "core/metrics.h"
#include "transcoder/hls/hls_model.h"
#include "transcoder/hls/hls_packager.h"
#include "transcoder/hls/hls_playlist.h"
#include "transcoder/hls/hls_store_int.h"
#include "transcoder/hls/hls_window_int.h"

#define SWEEP_MS 50

/* Sequence numbers are reserved ahead of use. The state file is written on
 * the threadpool while the loop goes on listing segments, so a kill -9 can
 * land after segment N was served (and cached: seg-N.m4s is immutable) but
 * before a file saying N was written; a restart from "last used" would then
 * serve other media as seg-N. So the file holds a ceiling instead: every
 * number this process uses is at most the ceiling on disk, and a restart
 * begins above the ceiling. When the number in use comes within half a step
 * of the ceiling, the ceiling moves to that number + a step and is written:
 * the write has half a step (16 segments, 32 s at 2 s segments) to land
 * before a number above the old ceiling is used; one that has not is logged.
 * A crash thus costs at most a step of numbers (the media sequence skips
 * ahead, which HLS allows: it only has to grow), and the file is written
 * once per half step instead of at every segment. A graceful stop writes
 * the numbers actually used, so a plain restart continues without a gap.
 * Timelines (init-T.mp4, part-T-SEQ.m4s are immutable too) and
 * discontinuity numbers, one per timeline at most, get the same with a
 * smaller step. */
#define TIMELINE_RESERVE 8

/* The state file also holds the layout of the channel's last feed timeline,
 * one line per rendition:
 *   rendition=NAME video|audio WIDTH HEIGHT FPS BANDWIDTH AVERAGE_BANDWIDTH CHANNELS
 * so that after a restart the slate lists the renditions the feed will
 * bring back, not those of a nominal 1080p source. Files of older versions
 * have no such lines: the slate then starts with its default. The text of
 * one write (3 number lines + HLS_MAX_RENDITIONS layout lines) stays below
 * STATE_TEXT_MAX; a rendition line below STATE_LINE_MAX. */
#define STATE_TEXT_MAX 2560
#define STATE_LINE_MAX 256

struct hls_params {
  double part_duration, segment_duration, block_timeout;
  int window_segments;
  int max_parked_per_address;
  char record_dir[512];
  char state_dir[512];
};

struct queue_item {
  bool is_init;
  bool lost_before; /* parts of this rendition were dropped before this one */
  uint32_t timeline;
  int rendition;
  struct hls_part_info info;
  struct hls_blob *blob;
  char codecs[64];
};

struct hls_stream {
  struct hls_server *srv;
  char channel[64];
  /* packagers -> loop; NULL once stopped (its memory goes with its handle) */
  struct workq *parts;
  /* per rendition: a part was refused since the last one queued. Each
   * rendition has one packager thread, so an exchange is enough. */
  _Atomic bool lost[HLS_MAX_RENDITIONS];
  _Atomic uint64_t q_refused; /* parts naming no rendition slot */

  uv_mutex_t mu;            /* guards `params` (read by packager threads) */
  struct hls_params params; /* of timelines begun from now */

  uint32_t timeline; /* current; 0 = none yet */
  bool live;
  struct hls_rendition *rend[HLS_MAX_RENDITIONS];
  int rend_count;
  struct hls_waiter *waiters; /* master playlist */
  struct hls_blob *master;    /* rendered, NULL when stale */
  double cur_part, cur_seg;   /* of the current timeline */

  /* the highest values used (after a restart: the ceilings the last run saved) */
  uint64_t p_msn, p_disc;
  uint32_t p_timeline;
  bool have_state;
  /* persisted: the reservations (see HLS_MSN_RESERVE) */
  uint64_t r_msn, r_disc, r_timeline;
  uint64_t msn_covered; /* MSNs below this are within a ceiling on disk */
  bool warned_uncovered;
  bool state_busy, state_dirty;
  /* persisted: the layout of the last feed timeline (hls_stream_save_layout) */
  struct hls_stream_layout feed_layout;
  bool have_feed_layout;
};

struct hls_server {
  uv_loop_t *loop;
  struct hls_params params;
  uv_timer_t sweep;
  struct hls_stream **streams;
  int stream_count;
  bool stopping;
  int pending;                   /* open handles + threadpool jobs; freed at 0 once stopping */
  void (*stopped_cb)(void *arg); /* hls_server_stop's */
  void *stopped_arg;
  /* the recording queue (record(), bounded: see HLS_RECORD_MAX_JOBS) */
  int record_jobs;
  size_t record_bytes;
  uint64_t record_dropped;
};

/* ---- waiters ---- */

static void waiter_link(struct hls_waiter **list, struct hls_waiter *w) {
  w->prev = NULL;
  w->next = *list;
  if (*list)
    (*list)->prev = w;
  *list = w;
  w->list_ = list;
}

static void waiter_unlink(struct hls_waiter *w) {
  if (!w->list_)
    return;
  if (w->prev)
    w->prev->next = w->next;
  else
    *w->list_ = w->next;
  if (w->next)
    w->next->prev = w->prev;
  w->prev = w->next = NULL;
  w->list_ = NULL;
}

void hls__waiter_add(struct hls_rendition *r, struct hls_waiter *w) { waiter_link(&r->waiters, w); }

void hls__waiter_add_stream(struct hls_stream *st, struct hls_waiter *w) { waiter_link(&st->waiters, w); }

void hls__waiter_cancel(struct hls_waiter *w) { waiter_unlink(w); }

/* Poke every waiter on list; those that are not done go back on it. Pops
 * one at a time so a poke may cancel any other waiter safely. */
static void wake(struct hls_server *srv, struct hls_waiter **list, enum hls_wake why) {
  struct hls_waiter *local = NULL;
  while (*list) {
    struct hls_waiter *w = *list;
    waiter_unlink(w);
    waiter_link(&local, w);
  }
  struct hls_waiter *keep = NULL;
  while (local) {
    struct hls_waiter *w = local;
    waiter_unlink(w);
    if (why == HLS_WAKE_CHANGE && !w->poke(w, why)) {
      waiter_link(&keep, w);
      continue;
    }
    if (why != HLS_WAKE_CHANGE)
      w->poke(w, why);
  }
  while (keep) {
    struct hls_waiter *w = keep;
    waiter_unlink(w);
    waiter_link(list, w);
  }
  (void)srv;
}

static void expire(struct hls_waiter **list, uint64_t now) {
  struct hls_waiter *due = NULL;
  for (struct hls_waiter *w = *list, *next; w; w = next) {
    next = w->next;
    if (w->deadline_ms <= now) {
      waiter_unlink(w);
      waiter_link(&due, w);
    }
  }
  while (due) {
    struct hls_waiter *w = due;
    waiter_unlink(w);
    w->poke(w, HLS_WAKE_TIMEOUT);
  }
}

static void sweep_cb(uv_timer_t *t) {
  struct hls_server *srv = t->data;
  uint64_t now = uv_now(srv->loop);
  for (int i = 0; i < srv->stream_count; i++) {
    struct hls_stream *st = srv->streams[i];
    expire(&st->waiters, now);
    for (int j = 0; j < st->rend_count; j++)
      expire(&st->rend[j]->waiters, now);
  }
}

/* ---- disk: state file and recording, on the threadpool ---- */

struct disk_job {
  uv_work_t req;
  struct hls_server *srv;
  struct hls_stream *st; /* state job only */
  char path[1100];
  char text[STATE_TEXT_MAX];
  struct hls_blob *blob; /* or text */
  bool recording;        /* a record_dir mirror write (counted in record_jobs) */
  bool fsync;
  uint64_t msn; /* state job: the MSN ceiling in text */
  bool ok;      /* written and renamed (set on the threadpool, read in disk_done) */
};

static int mkdirs(const char *dir) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s", dir);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static void disk_work(uv_work_t *req) {
  struct disk_job *job = req->data;
  char dir[1100], tmp[1200];
  snprintf(dir, sizeof dir, "%s", job->path);
  char *slash = strrchr(dir, '/');
  if (slash) {
    *slash = 0;
    mkdirs(dir);
  }
  snprintf(tmp, sizeof tmp, "%s.tmp", job->path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    log_warn("hls", "cannot write path=%s err=%s", tmp, strerror(errno));
    return;
  }
  const uint8_t *p = job->blob ? job->blob->data : (const uint8_t *)job->text;
  size_t n = job->blob ? job->blob->len : strlen(job->text);
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    p += w;
    n -= (size_t)w;
  }
  if (n != 0 || (job->fsync && fsync(fd) < 0)) {
    log_warn("hls", "write failed path=%s", tmp);
    close(fd);
    unlink(tmp);
    return;
  }
  close(fd);
  if (rename(tmp, job->path) < 0)
    log_warn("hls", "rename failed path=%s err=%s", job->path, strerror(errno));
  else
    job->ok = true;
}

static void server_maybe_free(struct hls_server *srv);
static void state_save(struct hls_stream *st);

static void disk_done(uv_work_t *req, int status) {
  (void)status;
  struct disk_job *job = req->data;
  struct hls_server *srv = job->srv;
  struct hls_stream *st = job->st;
  if (st && job->ok)
    st->msn_covered = job->msn + 1;
  if (job->recording) {
    srv->record_jobs--;
    srv->record_bytes -= job->blob->len;
  }
  hls_blob_unref(job->blob);
  free(job);
  srv->pending--;
  if (st) {
    st->state_busy = false;
    if (st->state_dirty) /* the latest values, also while stopping (pending holds the server) */
      state_save(st);
  }
  server_maybe_free(srv);
}

/* false if not queued (job freed) */
static bool disk_submit(struct hls_server *srv, struct disk_job *job) {
  job->srv = srv;
  job->req.data = job;
  if (uv_queue_work(srv->loop, &job->req, disk_work, disk_done) != 0) {
    hls_blob_unref(job->blob);
    free(job);
    return false;
  }
  srv->pending++;
  return true;
}

static void state_path(const struct hls_stream *st, char *out, size_t size) {
  snprintf(out, size, "%s/hls-%s.state", st->srv->params.state_dir, st->channel);
}

/* false if it does not fit */
static bool state_text(const struct hls_stream *st, char *out, size_t size) {
  size_t n = 0;
  int w = snprintf(out, size, "msn=%" PRIu64 "\ndisc=%" PRIu64 "\ntimeline=%" PRIu64 "\n", st->r_msn, st->r_disc,
                   st->r_timeline);
  for (int i = 0; w >= 0 && (size_t)w < size - n && st->have_feed_layout && i < st->feed_layout.count; i++) {
    n += (size_t)w;
    const struct hls_rendition_desc *d = &st->feed_layout.r[i];
    w = snprintf(out + n, size - n, "rendition=%s %s %d %d %.17g %" PRId64 " %" PRId64 " %d\n", d->name,
                 d->kind == HLS_AUDIO ? "audio" : "video", d->width, d->height, d->fps, d->bandwidth,
                 d->average_bandwidth, d->channels);
  }
  return w >= 0 && (size_t)w < size - n;
}

static void state_save(struct hls_stream *st) {
  if (!st->srv->params.state_dir[0])
    return;
  if (st->state_busy) {
    st->state_dirty = true; /* written again with the latest values when this one is done */
    return;
  }
  struct disk_job *job = calloc(1, sizeof *job);
  if (!job)
    return;
  st->state_busy = true;
  st->state_dirty = false;
  job->st = st;
  job->fsync = true;
  job->msn = st->r_msn;
  state_path(st, job->path, sizeof job->path);
  if (!state_text(st, job->text, sizeof job->text)) {
    log_error("hls", "state text too long channel=%s", st->channel); /* see STATE_TEXT_MAX */
    free(job);
    st->state_busy = false;
    return;
  }
  if (!disk_submit(st->srv, job)) /* job is gone */
    st->state_busy = false;
}

/* A whole decimal number in [lo, hi]. */
static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

/* The fields of a "rendition=" line (after the '='), into d; false if
 * malformed. The file is outside input: every field is checked. */
static bool parse_rendition(char *text, struct hls_rendition_desc *d) {
  char *field[9], *save = NULL;
  int n = 0;
  for (char *tok = strtok_r(text, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
    if (n == 9)
      return false;
    field[n++] = tok;
  }
  if (n != 8 || strlen(field[0]) >= sizeof d->name)
    return false;
  memset(d, 0, sizeof *d);
  snprintf(d->name, sizeof d->name, "%s", field[0]);
  if (strcmp(field[1], "video") == 0)
    d->kind = HLS_VIDEO;
  else if (strcmp(field[1], "audio") == 0)
    d->kind = HLS_AUDIO;
  else
    return false;
  int64_t w, h, ch;
  char *end;
  errno = 0;
  d->fps = strtod(field[4], &end);
  if (errno || end == field[4] || *end || !isfinite(d->fps) || d->fps < 0 || d->fps > 1000)
    return false;
  if (!parse_i64(field[2], 0, 16384, &w) || !parse_i64(field[3], 0, 16384, &h) ||
      !parse_i64(field[5], 0, INT64_MAX / 2, &d->bandwidth) ||
      !parse_i64(field[6], 0, INT64_MAX / 2, &d->average_bandwidth) || !parse_i64(field[7], 0, 64, &ch))
    return false;
  d->width = (int)w;
  d->height = (int)h;
  d->channels = (int)ch;
  return d->kind == HLS_AUDIO || (w > 0 && h > 0);
}

static const char *layout_error(const struct hls_stream_layout *layout);

/* Read once, when the channel's stream is made (a few hundred bytes). A
 * malformed layout is dropped (the slate falls back to its default); the
 * numbers are kept. */
static void state_load(struct hls_stream *st) {
  char path[1100];
  state_path(st, path, sizeof path);
  FILE *f = st->srv->params.state_dir[0] ? fopen(path, "r") : NULL;
  if (!f)
    return;
  char line[STATE_LINE_MAX];
  struct hls_stream_layout lay = {.count = 0};
  bool lay_bad = false;
  int lineno = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    unsigned long long v;
    if (!strchr(line, '\n') && !feof(f)) { /* longer than any line this writes */
      log_warn("hls", "state file line too long path=%s line=%d", path, lineno);
      lay_bad = true;
      int c;
      while ((c = fgetc(f)) != EOF && c != '\n')
        ;
      continue;
    }
    if (strncmp(line, "rendition=", 10) == 0) {
      if (lay.count >= HLS_MAX_RENDITIONS || !parse_rendition(line + 10, &lay.r[lay.count])) {
        log_warn("hls", "state file: malformed rendition line, saved layout ignored path=%s line=%d", path, lineno);
        lay_bad = true;
      } else {
        lay.count++;
      }
    } else if (sscanf(line, "msn=%llu", &v) == 1)
      st->p_msn = v;
    else if (sscanf(line, "disc=%llu", &v) == 1)
      st->p_disc = v;
    else if (sscanf(line, "timeline=%llu", &v) == 1)
      st->p_timeline = (uint32_t)v;
  }
  fclose(f);
  const char *bad = lay.count > 0 && !lay_bad ? layout_error(&lay) : NULL;
  if (bad)
    log_warn("hls", "state file: bad saved layout, ignored path=%s rendition=%s", path, bad);
  if (lay.count > 0 && !lay_bad && !bad) {
    st->feed_layout = lay;
    st->have_feed_layout = true;
  }
  st->have_state = true;
  st->r_msn = st->p_msn;
  st->r_disc = st->p_disc;
  st->r_timeline = st->p_timeline;
  st->msn_covered = st->p_msn + 1;
  log_info("hls", "state restored channel=%s msn=%" PRIu64 " disc=%" PRIu64 " layout_renditions=%d", st->channel,
           st->p_msn, st->p_disc, st->have_feed_layout ? st->feed_layout.count : 0);
}

/* Move a ceiling up when `used` comes within half a step of it (see
 * HLS_MSN_RESERVE); true if it moved. */
static bool reserve(uint64_t used, uint64_t *ceiling, uint64_t step) {
  if (used + step / 2 <= *ceiling)
    return false;
  *ceiling = used + step;
  return true;
}

/* Reserve ahead of msn (the next or current MSN), timeline and disc; write
 * the file if a ceiling moved, or if the last write of it failed. */
static void reserve_save(struct hls_stream *st, uint64_t msn, uint64_t disc) {
  bool moved = reserve(msn, &st->r_msn, HLS_MSN_RESERVE);
  moved |= reserve(disc, &st->r_disc, TIMELINE_RESERVE);
  moved |= reserve(st->p_timeline, &st->r_timeline, TIMELINE_RESERVE);
  if (moved || (!st->state_busy && st->msn_covered <= st->r_msn))
    state_save(st);
}

/* The recording queue: mirror writes waiting for or running on the
 * threadpool, each holding its segment's buffer. Bound: HLS_RECORD_MAX_JOBS
 * writes and HLS_RECORD_MAX_BYTES bytes, over all channels. Drop policy:
 * when a write would pass either, that file is not mirrored (the newest is
 * dropped: what is queued is older and closer to being written), counted
 * in galarelay_hls_record_dropped_total and logged; serving viewers from
 * memory is never held back by a slow or failing disk. */
static void record(struct hls_rendition *r, const char *name, struct hls_blob *blob) {
  struct hls_server *srv = r->stream->srv;
  if (!srv->params.record_dir[0] || !blob)
    return;
  if (srv->record_jobs >= HLS_RECORD_MAX_JOBS || srv->record_bytes + blob->len > HLS_RECORD_MAX_BYTES) {
    if (srv->record_dropped++ % 100 == 0) /* one line per hundred: the metric counts them all */
      log_warn("hls",
               "recording queue full, not mirrored channel=%s rendition=%s file=%s queued=%d "
               "dropped=%" PRIu64,
               r->stream->channel, r->desc.name, name, srv->record_jobs, srv->record_dropped);
    return;
  }
  struct disk_job *job = calloc(1, sizeof *job);
  if (!job)
    return;
  snprintf(job->path, sizeof job->path, "%s/%s/%s/%s", srv->params.record_dir, r->stream->channel, r->desc.name, name);
  job->blob = hls_blob_ref(blob);
  job->recording = true;
  srv->record_jobs++;
  srv->record_bytes += blob->len;
  if (!disk_submit(srv, job)) {
    srv->record_jobs--;
    srv->record_bytes -= blob->len;
  }
}

/* Close the open segment and mirror it to disk. */
static void close_segment(struct hls_rendition *r) {
  struct hls_segment *s = hls__rendition_close(r);
  if (s) {
    char name[64];
    snprintf(name, sizeof name, "seg-%" PRIu64 ".m4s", s->msn);
    record(r, name, s->data);
  }
}

/* ---- worker side: the sink ---- */

static bool queue_push(struct hls_stream *st, struct queue_item *it) {
  if (it->rendition < 0 || it->rendition >= HLS_MAX_RENDITIONS) {
    atomic_fetch_add(&st->q_refused, 1);
    hls_blob_unref(it->blob);
    return false;
  }
  it->lost_before = atomic_exchange(&st->lost[it->rendition], false);
  if (workq_push(st->parts, it) == 0)
    return true;
  atomic_store(&st->lost[it->rendition], true); /* the loss goes on */
  hls_blob_unref(it->blob);                     /* drop policy: see hls_store.h */
  return false;
}

static void sink_init(void *opaque, uint32_t timeline, int rendition, struct hls_blob *init, const char *codecs) {
  struct queue_item it = {.is_init = true, .timeline = timeline, .rendition = rendition, .blob = init};
  snprintf(it.codecs, sizeof it.codecs, "%s", codecs);
  queue_push(opaque, &it);
}

static void sink_part(void *opaque, const struct hls_part_info *info, struct hls_blob *part) {
  struct queue_item it = {.timeline = info->timeline, .rendition = info->rendition, .info = *info, .blob = part};
  if (!queue_push(opaque, &it))
    log_warn("hls", "queue full, part dropped channel=%s rendition=%d", ((struct hls_stream *)opaque)->channel,
             info->rendition);
}

void hls__stream_sink(struct hls_stream *st, struct hls_packager_sink *out) {
  *out = (struct hls_packager_sink){.on_init = sink_init, .on_part = sink_part, .opaque = st};
}

/* The part and segment durations of timelines begun now (any thread). */
static void stream_params(struct hls_stream *st, double *part_duration, double *segment_duration) {
  uv_mutex_lock(&st->mu);
  *part_duration = st->params.part_duration;
  *segment_duration = st->params.segment_duration;
  uv_mutex_unlock(&st->mu);
}

struct hls_packager *hls_stream_packager(struct hls_stream *st, uint32_t timeline, int rendition_index,
                                         const struct AVCodecParameters *par, AVRational time_base) {
  struct hls_packager_params params = {.timeline = timeline, .rendition = rendition_index};
  struct hls_packager_sink sink;
  stream_params(st, &params.part_duration, &params.segment_duration);
  hls__stream_sink(st, &sink);
  struct hls_packager *pk = hls_packager_new(&params, &sink, par, time_base);
  if (!pk)
    log_error("hls", "packager not created channel=%s rendition=%d", st->channel, rendition_index);
  return pk;
}

/* ---- loop side ---- */

/* The segment duration the stream's windows and playlists go by: the
 * current timeline's, or the configured one before any. */
static double segment_target(const struct hls_stream *st) {
  return st->cur_seg > 0 ? st->cur_seg : st->srv->params.segment_duration;
}

static void invalidate_master(struct hls_stream *st) {
  hls_blob_unref(st->master);
  st->master = NULL;
}

/* Segment msn was opened (it is listed from now on). */
static void note_msn(struct hls_stream *st, uint64_t msn, uint64_t disc) {
  if (msn > st->p_msn || !st->have_state)
    st->p_msn = msn;
  if (disc > st->p_disc)
    st->p_disc = disc;
  st->have_state = true;
  reserve_save(st, st->p_msn, st->p_disc);
  if (st->srv->params.state_dir[0] && msn >= st->msn_covered && !st->warned_uncovered) {
    st->warned_uncovered = true; /* once until a write lands: the disk is slow or failing */
    log_warn("hls",
             "MSN listed before its reservation was on disk channel=%s msn=%" PRIu64 " (a crash now may reuse it)",
             st->channel, msn);
  }
  if (msn < st->msn_covered)
    st->warned_uncovered = false;
}

static void invalidate_playlists(struct hls_stream *st) {
  for (int i = 0; i < st->rend_count; i++) {
    hls_blob_unref(st->rend[i]->playlist);
    st->rend[i]->playlist = NULL;
  }
}

/* A segment ends at a keyframe; a feed that sends none (a broken encoder,
 * a hostile publisher on the passthrough rung) would grow one open segment
 * without limit, in memory and in the playlist. Past HLS_SEGMENT_MAX_TARGETS
 * segment targets or HLS_SEGMENT_MAX_BYTES it is closed as it is (it began
 * with a keyframe, so it stays a valid independent segment) and the
 * rendition drops parts until the next keyframe begins a segment: the same
 * path as a part lost to the queue. Players see a complete segment, then a
 * gap; no segment ever starts without a keyframe. */
static bool segment_full(const struct hls_stream *st, const struct hls_segment *s, const struct hls_part_info *info,
                         const struct hls_blob *part) {
  double max_s = HLS_SEGMENT_MAX_TARGETS * st->cur_seg;
  return s->duration + (double)info->duration_us / 1e6 > max_s + 1e-6 || s->bytes + part->len > HLS_SEGMENT_MAX_BYTES;
}

static void cut_segment(struct hls_stream *st, struct hls_rendition *r) {
  struct hls_segment *s = hls__rendition_open(r);
  log_warn("hls",
           "no keyframe: segment cut channel=%s rendition=%s msn=%" PRIu64 " duration=%.3f bytes=%zu "
           "(parts dropped until the next keyframe)",
           st->channel, r->desc.name, s->msn, s->duration, s->bytes);
  r->skipping = true;
  r->segments_cut++;
  close_segment(r);
  invalidate_playlists(st);                    /* their rendition reports changed */
  wake(st->srv, &r->waiters, HLS_WAKE_CHANGE); /* a request for the segment is answered now */
}

static void ingest_part(struct hls_stream *st, struct hls_rendition *r, struct queue_item *it) {
  struct hls_server *srv = st->srv;
  if (it->lost_before && !r->skipping && hls__rendition_open(r)) {
    r->skipping = true; /* the open segment ends where the loss began */
    close_segment(r);
  }
  if (it->info.segment_start) {
    close_segment(r);
    uint64_t msn = r->next_msn++;
    if (!hls__rendition_open_segment(r, msn, it->timeline, it->info.pdt_ms)) {
      hls_blob_unref(it->blob);
      return;
    }
    r->skipping = false;
    note_msn(st, msn, r->disc);
    hls__rendition_trim(r, srv->params.window_segments, segment_target(st));
  } else if (r->skipping || !hls__rendition_open(r)) {
    r->parts_dropped++;
    hls_blob_unref(it->blob);
    return;
  } else if (segment_full(st, hls__rendition_open(r), &it->info, it->blob)) {
    cut_segment(st, r);
    r->parts_dropped++;
    hls_blob_unref(it->blob);
    return;
  }
  hls__rendition_add_part(r, &it->info, it->blob);
  invalidate_playlists(st); /* their rendition reports changed */
  wake(srv, &r->waiters, HLS_WAKE_CHANGE);
}

/* The workq's on_item: one init or part, on the loop thread. */
static void take_item(void *item, void *opaque) {
  struct hls_stream *st = opaque;
  struct queue_item *it = item;
  if (!st->live || it->timeline != st->timeline || it->rendition >= st->rend_count) {
    hls_blob_unref(it->blob); /* an older timeline's leftovers */
    return;
  }
  struct hls_rendition *r = st->rend[it->rendition];
  if (it->is_init) {
    hls__rendition_set_init(r, it->timeline, it->blob, it->codecs);
    char name[48];
    snprintf(name, sizeof name, "init-%" PRIu32 ".mp4", it->timeline);
    record(r, name, it->blob);
    invalidate_master(st);
    wake(st->srv, &st->waiters, HLS_WAKE_CHANGE);
  } else {
    ingest_part(st, r, it);
  }
}

/* The workq's on_drop: a part it discards (at stop) releases its blob. */
static void drop_item(void *item, void *opaque) {
  (void)opaque;
  hls_blob_unref(((struct queue_item *)item)->blob);
}

void hls_stream_drain(struct hls_stream *st) {
  if (st->parts)
    workq_drain(st->parts);
}

static bool valid_name(const char *s) {
  if (!s[0])
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
      return false;
  return true;
}

/* NULL if the layout can begin a timeline, else the name of the first bad
 * rendition ("" when the count is out of range). */
static const char *layout_error(const struct hls_stream_layout *layout) {
  if (layout->count <= 0 || layout->count > HLS_MAX_RENDITIONS)
    return "";
  int audio = 0;
  for (int i = 0; i < layout->count; i++) {
    const struct hls_rendition_desc *d = &layout->r[i];
    audio += d->kind == HLS_AUDIO;
    bool dup = false;
    for (int j = 0; j < i; j++)
      dup |= strcmp(layout->r[j].name, d->name) == 0;
    if (!memchr(d->name, 0, sizeof d->name) || !valid_name(d->name) || dup || audio > 1 ||
        (d->kind != HLS_VIDEO && d->kind != HLS_AUDIO))
      return memchr(d->name, 0, sizeof d->name) ? d->name : "";
  }
  return NULL;
}

static bool desc_equal(const struct hls_rendition_desc *a, const struct hls_rendition_desc *b) {
  return strcmp(a->name, b->name) == 0 && a->kind == b->kind && a->width == b->width && a->height == b->height &&
         a->fps == b->fps && a->bandwidth == b->bandwidth && a->average_bandwidth == b->average_bandwidth &&
         a->channels == b->channels;
}

uint32_t hls_stream_begin(struct hls_stream *st, const struct hls_stream_layout *layout) {
  const char *bad = layout_error(layout);
  if (bad) {
    log_error("hls", "bad layout channel=%s count=%d rendition=%s", st->channel, layout->count, bad);
    return 0;
  }
  hls_stream_drain(st);
  struct hls_server *srv = st->srv;
  uint64_t base = st->have_state ? st->p_msn + 1 : 0;
  uint64_t disc = st->have_state ? st->p_disc + 1 : 0;
  struct hls_rendition *next[HLS_MAX_RENDITIONS] = {0};
  for (int i = 0; i < st->rend_count; i++) {
    struct hls_rendition *r = st->rend[i];
    close_segment(r);
    wake(srv, &r->waiters, HLS_WAKE_CHANGE); /* blocked on the old timeline: answer now */
    if (r->next_msn > base)
      base = r->next_msn;
    int k = -1;
    for (int j = 0; j < layout->count; j++)
      if (strcmp(layout->r[j].name, r->desc.name) == 0)
        k = j;
    if (k >= 0) {
      next[k] = r;
      continue;
    }
    wake(srv, &r->waiters, HLS_WAKE_GONE);
    hls__rendition_free(r);
  }
  for (int j = 0; j < layout->count; j++) {
    if (!next[j]) {
      next[j] = hls__rendition_new(st, &layout->r[j]);
      if (!next[j]) {
        for (int k = 0; k < layout->count; k++) {
          if (next[k]) /* kept ones may still have parked requests: answer them first */
            wake(srv, &next[k]->waiters, HLS_WAKE_GONE);
          hls__rendition_free(next[k]);
        }
        st->rend_count = 0;
        st->live = false;
        return 0;
      }
      next[j]->disc = disc;
    }
    next[j]->desc = layout->r[j];
    next[j]->index = j;
    next[j]->skipping = false;
    hls_blob_unref(next[j]->playlist);
    next[j]->playlist = NULL;
  }
  for (int j = 0; j < layout->count; j++) {
    next[j]->next_msn = base; /* all renditions count segments from the same MSN */
    st->rend[j] = next[j];
  }
  st->rend_count = layout->count;
  st->timeline = st->p_timeline + 1;
  st->p_timeline = st->timeline;
  for (int j = 0; j < st->rend_count; j++)
    st->rend[j]->timeline = st->timeline;
  st->live = true;
  uv_mutex_lock(&st->mu);
  st->params = srv->params;
  st->cur_part = st->params.part_duration;
  st->cur_seg = st->params.segment_duration;
  uv_mutex_unlock(&st->mu);
  reserve_save(st, base, disc); /* before the first part arrives */
  invalidate_master(st);
  log_info("hls", "timeline begins channel=%s timeline=%" PRIu32 " msn=%" PRIu64 " renditions=%d", st->channel,
           st->timeline, base, layout->count);
  wake(srv, &st->waiters, HLS_WAKE_CHANGE);
  return st->timeline;
}

void hls_stream_save_layout(struct hls_stream *st, const struct hls_stream_layout *layout) {
  if (layout_error(layout))
    return;
  bool same = st->have_feed_layout && st->feed_layout.count == layout->count;
  for (int i = 0; same && i < layout->count; i++)
    same = desc_equal(&st->feed_layout.r[i], &layout->r[i]);
  if (same)
    return; /* the usual reconnect: nothing to write */
  st->feed_layout = *layout;
  st->have_feed_layout = true;
  state_save(st);
}

int hls_stream_saved_layout(struct hls_stream *st, struct hls_stream_layout *out) {
  if (!st->have_feed_layout)
    return -ENOENT;
  *out = st->feed_layout;
  return 0;
}

void hls_stream_end(struct hls_stream *st) {
  hls_stream_drain(st);
  for (int i = 0; i < st->rend_count; i++) {
    struct hls_rendition *r = st->rend[i];
    close_segment(r);
    wake(st->srv, &r->waiters, HLS_WAKE_CHANGE);
  }
  st->live = false;
  invalidate_master(st);
  wake(st->srv, &st->waiters, HLS_WAKE_CHANGE);
  log_info("hls", "timeline ends channel=%s timeline=%" PRIu32, st->channel, st->timeline);
}

bool hls_stream_live(const struct hls_stream *st) { return st->live; }
const char *hls_stream_channel(const struct hls_stream *st) { return st->channel; }

void hls__stream_view(struct hls_stream *st, struct hls_stream_view *v) {
  *v = (struct hls_stream_view){
      .channel = st->channel,
      .live = st->live,
      .part_target = st->cur_part > 0 ? st->cur_part : st->srv->params.part_duration,
      .segment_target = segment_target(st),
      .block_timeout = st->srv->params.block_timeout,
      .renditions = st->rend,
      .rendition_count = st->rend_count,
  };
}

struct hls_rendition *hls__stream_rendition(struct hls_stream *st, const char *name) {
  for (int i = 0; i < st->rend_count; i++)
    if (strcmp(st->rend[i]->desc.name, name) == 0)
      return st->rend[i];
  return NULL;
}

struct hls_blob *hls__rendition_playlist(struct hls_rendition *r) {
  if (!r->playlist) {
    struct hls_stream_view v;
    hls__stream_view(r->stream, &v);
    struct buf b;
    buf_init(&b);
    if (hls_playlist_media(&b, r, &v) == 0 && !b.failed)
      r->playlist = hls_blob_copy(b.data, b.len);
    buf_free(&b);
  }
  return hls_blob_ref(r->playlist);
}

struct hls_blob *hls__stream_master(struct hls_stream *st) {
  if (!st->master) {
    struct hls_stream_view v;
    hls__stream_view(st, &v);
    struct buf b;
    buf_init(&b);
    if (hls_playlist_master(&b, &v) == 0 && !b.failed)
      st->master = hls_blob_copy(b.data, b.len);
    buf_free(&b);
  }
  return hls_blob_ref(st->master);
}

/* ---- server ---- */

/* Copies what it uses: nothing of the config is kept. */
static void params_from(struct hls_params *p, const struct config_hls *hls, const char *state_dir) {
  p->part_duration = hls->part_duration;
  p->segment_duration = hls->segment_duration;
  p->block_timeout = hls->block_timeout;
  p->window_segments = hls->window_segments > 0 ? hls->window_segments : 1;
  p->max_parked_per_address = hls->max_parked_per_address;
  snprintf(p->record_dir, sizeof p->record_dir, "%s", hls->record_dir);
  snprintf(p->state_dir, sizeof p->state_dir, "%s", state_dir ? state_dir : "");
}

struct hls_server *hls_server_new(uv_loop_t *loop, const struct config_hls *hls, const char *state_dir) {
  struct hls_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return NULL;
  srv->loop = loop;
  params_from(&srv->params, hls, state_dir);
  int e = srv->params.state_dir[0] ? mkdirs(srv->params.state_dir) : 0;
  if (e < 0)
    log_warn("hls", "cannot make state_dir=%s err=%s", srv->params.state_dir, strerror(-e));
  uv_timer_init(loop, &srv->sweep);
  srv->sweep.data = srv;
  uv_timer_start(&srv->sweep, sweep_cb, SWEEP_MS, SWEEP_MS);
  uv_unref((uv_handle_t *)&srv->sweep);
  srv->pending = 1;
  return srv;
}

void hls_server_reload(struct hls_server *srv, const struct config_hls *hls, const char *state_dir) {
  params_from(&srv->params, hls, state_dir);
}

int hls__server_max_parked_per_address(const struct hls_server *srv) { return srv->params.max_parked_per_address; }

uv_loop_t *hls__server_loop(struct hls_server *srv) { return srv->loop; }

struct hls_stream *hls_stream_find(struct hls_server *srv, const char *channel) {
  for (int i = 0; i < srv->stream_count; i++)
    if (strcmp(srv->streams[i]->channel, channel) == 0)
      return srv->streams[i];
  return NULL;
}

struct hls_stream *hls_stream_get(struct hls_server *srv, const char *channel) {
  struct hls_stream *st = hls_stream_find(srv, channel);
  if (st || srv->stopping)
    return st;
  struct hls_stream **n = realloc(srv->streams, (size_t)(srv->stream_count + 1) * sizeof *n);
  if (!n)
    return NULL;
  srv->streams = n;
  if (!(st = calloc(1, sizeof *st)))
    return NULL;
  st->srv = srv;
  snprintf(st->channel, sizeof st->channel, "%s", channel);
  uv_mutex_init(&st->mu);
  st->params = srv->params;
  struct workq_ops ops = {.on_item = take_item, .on_drop = drop_item, .opaque = st};
  if (workq_new(srv->loop, sizeof(struct queue_item), HLS_QUEUE_MAX, WORKQ_REFUSE_NEW, &ops, &st->parts) != 0) {
    uv_mutex_destroy(&st->mu);
    free(st);
    return NULL;
  }
  workq_unref(st->parts); /* a quiet store does not keep the loop running */
  srv->pending++;
  state_load(st);
  srv->streams[srv->stream_count++] = st;
  return st;
}

static void stream_free(struct hls_stream *st) {
  for (int i = 0; i < st->rend_count; i++)
    hls__rendition_free(st->rend[i]);
  hls_blob_unref(st->master);
  uv_mutex_destroy(&st->mu);
  free(st);
}

static void server_maybe_free(struct hls_server *srv) {
  if (!srv->stopping || srv->pending > 0)
    return;
  for (int i = 0; i < srv->stream_count; i++)
    stream_free(srv->streams[i]);
  free(srv->streams);
  void (*cb)(void *) = srv->stopped_cb;
  void *arg = srv->stopped_arg;
  free(srv);
  if (cb)
    cb(arg);
}

static void handle_closed(uv_handle_t *h) {
  struct hls_server *srv = h->data;
  srv->pending--;
  server_maybe_free(srv);
}

static void queue_stopped(void *arg) {
  struct hls_server *srv = arg;
  srv->pending--;
  server_maybe_free(srv);
}

void hls_server_stop(struct hls_server *srv, void (*cb)(void *arg), void *arg) {
  if (!srv || srv->stopping)
    return;
  srv->stopping = true;
  srv->stopped_cb = cb;
  srv->stopped_arg = arg;
  for (int i = 0; i < srv->stream_count; i++) {
    struct hls_stream *st = srv->streams[i];
    st->live = false;
    if ((st->have_state || st->p_timeline > 0) &&
        (st->r_msn != st->p_msn || st->r_disc != st->p_disc || st->r_timeline != st->p_timeline)) {
      /* nothing is listed from now on: the numbers used are the ceilings,
       * and a restart continues right above them */
      st->r_msn = st->p_msn;
      st->r_disc = st->p_disc;
      st->r_timeline = st->p_timeline;
      state_save(st);
    }
    wake(srv, &st->waiters, HLS_WAKE_GONE);
    for (int j = 0; j < st->rend_count; j++)
      wake(srv, &st->rend[j]->waiters, HLS_WAKE_GONE);
    workq_stop(st->parts, queue_stopped, srv); /* releases what is left in it */
    st->parts = NULL;
  }
  srv->sweep.data = srv;
  uv_close((uv_handle_t *)&srv->sweep, handle_closed);
}

void hls_server_metrics(const struct hls_server *srv, struct buf *out) {
#define RD(NAME, HELP, FIELD) METRIC_FIELD(NAME, METRIC_COUNTER, HELP, struct hls_rendition, FIELD)
  static const struct metric per_rendition[] = {
      RD("galarelay_hls_parts_total", NULL, parts_in),
      RD("galarelay_hls_segments_total", NULL, segments_done),
      RD("galarelay_hls_segments_cut_total",
         "Segments closed without a keyframe to end them (past hls segment_duration x 3 or 64 MiB); parts are "
         "then dropped until one comes.",
         segments_cut),
      RD("galarelay_hls_bytes_total", NULL, bytes_in),
  };
#undef RD
  static const struct metric dropped = METRIC_FAMILY("galarelay_hls_parts_dropped_total", METRIC_COUNTER, NULL);
  static const struct metric parked_requests = METRIC_FAMILY("galarelay_hls_parked_requests", METRIC_GAUGE, NULL);
  static const struct metric recording[] = {
      METRIC_FIELD("galarelay_hls_record_queued", METRIC_GAUGE, "Mirror writes to hls.record_dir queued or running.",
                   struct hls_server, record_jobs),
      METRIC_FIELD("galarelay_hls_record_dropped_total", METRIC_COUNTER,
                   "Segments and inits not mirrored to hls.record_dir: the recording queue was full (a slow or "
                   "failing disk).",
                   struct hls_server, record_dropped),
  };
  char label[128];
  for (size_t m = 0; m < METRICS_COUNT(per_rendition); m++) {
    metrics_head(out, &per_rendition[m]);
    for (int i = 0; i < srv->stream_count; i++) {
      const struct hls_stream *st = srv->streams[i];
      for (int j = 0; j < st->rend_count; j++) {
        snprintf(label, sizeof label, "channel=\"%s\",rendition=\"%s\"", st->channel, st->rend[j]->desc.name);
        metrics_sample(out, &per_rendition[m], label, st->rend[j]);
      }
    }
  }
  metrics_head(out, &dropped);
  for (int i = 0; i < srv->stream_count; i++) {
    struct hls_stream *st = srv->streams[i];
    uint64_t q = atomic_load(&st->q_refused) + (st->parts ? workq_dropped(st->parts) : 0);
    for (int j = 0; j < st->rend_count; j++)
      q += st->rend[j]->parts_dropped;
    snprintf(label, sizeof label, "channel=\"%s\"", st->channel);
    metrics_count(out, &dropped, label, q);
  }
  int parked = 0;
  for (int i = 0; i < srv->stream_count; i++) {
    const struct hls_stream *st = srv->streams[i];
    for (const struct hls_waiter *w = st->waiters; w; w = w->next)
      parked++;
    for (int j = 0; j < st->rend_count; j++)
      for (const struct hls_waiter *w = st->rend[j]->waiters; w; w = w->next)
        parked++;
  }
  metrics_head(out, &parked_requests);
  metrics_value(out, &parked_requests, NULL, parked);
  metrics_write(out, recording, METRICS_COUNT(recording), srv);
}
