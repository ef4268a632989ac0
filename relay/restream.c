/* restream: the pushes of every channel, kept in step with the channel
 * registry and the config. See the header.
 *
 * One entry per configured channel, made from the config (its targets,
 * copied) and bound to the registry's channel while that exists (the
 * observer). The pushes of an entry run exactly while it is bound:
 * started when both the target list and the channel are there, stopped
 * when either goes. Entries are an array the size of the config's channel
 * list (at most CONFIG_MAX_CHANNELS), rebuilt on reload. A stopping push
 * frees itself; the manager counts them (pending) to know when its own
 * stop is done. */
#include "relay/restream.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "relay/channel.h"
#include "relay/rtmp_push.h"

struct target_list {
  char name[64]; /* the channel's */
  char url[CONFIG_MAX_PUSH][512];
  int count;
};

struct entry {
  struct target_list want;                 /* from the config */
  struct channel *ch;                      /* the registry's channel; NULL while none */
  struct rtmp_push *push[CONFIG_MAX_PUSH]; /* running while ch is set; NULL = not usable */
  int running;                             /* pushes started for want (0..count) */
};

struct restream {
  uv_loop_t *loop;
  struct channel_registry *reg;
  struct rtmp_push_limits lim; /* the pushes point here */
  struct entry *entries;
  int n;
  int pending; /* pushes stopping, not yet freed */
  bool stopping;
  void (*stopped_cb)(void *arg);
  void *stopped_arg;
};

static void maybe_done(struct restream *rs) {
  if (!rs->stopping || rs->pending > 0)
    return;
  void (*cb)(void *) = rs->stopped_cb;
  void *arg = rs->stopped_arg;
  free(rs->entries);
  free(rs);
  if (cb)
    cb(arg);
}

static void push_stopped(void *arg) {
  struct restream *rs = arg;
  rs->pending--;
  maybe_done(rs);
}

static void entry_stop_pushes(struct restream *rs, struct entry *e) {
  for (int i = 0; i < e->running; i++) {
    if (!e->push[i])
      continue;
    rs->pending++;
    rtmp_push_stop(e->push[i], push_stopped, rs);
    e->push[i] = NULL;
  }
  e->running = 0;
}

static void entry_start_pushes(struct restream *rs, struct entry *e) {
  if (!e->ch || e->running > 0)
    return;
  for (int i = 0; i < e->want.count; i++)
    e->push[i] = rtmp_push_start(rs->loop, &rs->lim, e->ch, e->want.url[i]);
  e->running = e->want.count;
}

static struct entry *find_entry(const struct restream *rs, const char *name) {
  for (int i = 0; i < rs->n; i++)
    if (strcmp(rs->entries[i].want.name, name) == 0)
      return &rs->entries[i];
  return NULL;
}

static void copy_targets(struct target_list *t, const struct config_channel *cc) {
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", cc->name);
  for (int i = 0; i < cc->push_count && i < CONFIG_MAX_PUSH; i++) {
    snprintf(t->url[i], sizeof t->url[i], "%s", cc->push[i]);
    t->count++;
  }
}

static bool same_targets(const struct target_list *a, const struct target_list *b) {
  if (a->count != b->count)
    return false;
  for (int i = 0; i < a->count; i++)
    if (strcmp(a->url[i], b->url[i]) != 0)
      return false;
  return true;
}

static void set_limits(struct restream *rs, const struct config_rtmp *rtmp) {
  rs->lim.queue_bytes = rtmp->player_queue_bytes;
  rs->lim.retry_max_s = rtmp->push_retry_max;
}

/* --- the registry's observer --- */

static void on_channel_added(void *opaque, struct channel *ch) {
  struct restream *rs = opaque;
  struct entry *e = find_entry(rs, channel_name(ch));
  if (!e)
    return; /* a channel the manager has no targets for (yet) */
  e->ch = ch;
  entry_start_pushes(rs, e);
}

static void on_channel_removed(void *opaque, struct channel *ch) {
  struct restream *rs = opaque;
  for (int i = 0; i < rs->n; i++) {
    struct entry *e = &rs->entries[i];
    if (e->ch != ch)
      continue;
    entry_stop_pushes(rs, e);
    e->ch = NULL;
  }
}

static struct channel_registry_observer observer(struct restream *rs) {
  return (struct channel_registry_observer){
      .on_channel_added = on_channel_added, .on_channel_removed = on_channel_removed, .opaque = rs};
}

/* --- lifetime --- */

/* The entries for a config: a kept channel keeps its binding, and its
 * pushes when its targets are unchanged. -ENOMEM leaves rs as it was. */
static int set_entries(struct restream *rs, const struct config_channel *channels, int channel_count) {
  struct entry *next = calloc(channel_count > 0 ? (size_t)channel_count : 1, sizeof *next);
  if (!next)
    return -ENOMEM;
  for (int i = 0; i < channel_count; i++) {
    struct entry *ne = &next[i];
    copy_targets(&ne->want, &channels[i]);
    struct entry *old = find_entry(rs, ne->want.name);
    if (old && same_targets(&old->want, &ne->want)) {
      *ne = *old;
      old->running = 0; /* moved, not stopped */
      continue;
    }
    if (old) {
      entry_stop_pushes(rs, old);
      ne->ch = old->ch;
    } else {
      ne->ch = channel_registry_find(rs->reg, ne->want.name);
    }
  }
  /* Channels gone from the config: their pushes stop. */
  for (int i = 0; i < rs->n; i++)
    entry_stop_pushes(rs, &rs->entries[i]);
  free(rs->entries);
  rs->entries = next;
  rs->n = channel_count;
  for (int i = 0; i < rs->n; i++)
    entry_start_pushes(rs, &rs->entries[i]);
  return 0;
}

struct restream *restream_start(uv_loop_t *loop, const struct config_rtmp *rtmp, const struct config_channel *channels,
                                int channel_count, struct channel_registry *reg) {
  struct restream *rs = calloc(1, sizeof *rs);
  if (!rs)
    return NULL;
  rs->loop = loop;
  rs->reg = reg;
  set_limits(rs, rtmp);
  /* Bound by the observer below, not by set_entries: the registry hands
   * over every channel it has. */
  rs->entries = calloc(channel_count > 0 ? (size_t)channel_count : 1, sizeof *rs->entries);
  if (!rs->entries) {
    free(rs);
    return NULL;
  }
  rs->n = channel_count;
  for (int i = 0; i < channel_count; i++)
    copy_targets(&rs->entries[i].want, &channels[i]);
  struct channel_registry_observer obs = observer(rs);
  if (channel_registry_observe(reg, &obs) < 0) {
    restream_stop(rs, NULL, NULL);
    return NULL;
  }
  return rs;
}

void restream_reload(struct restream *rs, const struct config_rtmp *rtmp, const struct config_channel *channels,
                     int channel_count) {
  set_limits(rs, rtmp);
  if (set_entries(rs, channels, channel_count) < 0)
    log_error("rtmp", "out of memory: restream targets kept as they were");
}

void restream_stop(struct restream *rs, void (*cb)(void *arg), void *arg) {
  if (!rs || rs->stopping)
    return;
  struct channel_registry_observer obs = observer(rs);
  channel_registry_unobserve(rs->reg, &obs);
  rs->stopping = true;
  rs->stopped_cb = cb;
  rs->stopped_arg = arg;
  rs->pending++; /* held while the pushes are told, so none finishes the stop early */
  for (int i = 0; i < rs->n; i++)
    entry_stop_pushes(rs, &rs->entries[i]);
  push_stopped(rs);
}

/* --- queries --- */

int restream_push_count(const struct restream *rs, const char *channel) {
  const struct entry *e = find_entry(rs, channel);
  return e ? e->running : 0;
}

const struct rtmp_push *restream_push_at(const struct restream *rs, const char *channel, int index) {
  const struct entry *e = find_entry(rs, channel);
  return e && index >= 0 && index < e->running ? e->push[index] : NULL;
}
