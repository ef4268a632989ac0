/* channel: the fan-out point of the media path (see channel.h).
 *
 * A channel has up to two feeds (primary key and backup key). The first
 * one to publish is active; the other is held as standby with its codec
 * configuration, metadata and last GOP kept ready. Only the active feed
 * reaches the sinks. Sinks are kept in an array that may change while it
 * is walked (a player closed from inside on_packet): removal leaves a hole
 * that is compacted afterwards.
 *
 * Failover (a switch of the active feed) happens when
 *  - the active feed's publisher goes (disconnect, kick): at once;
 *  - the active feed sent no media for the channel's failover_after while
 *    the standby did: noticed by the registry's timer (FAILOVER_TICK_MS);
 *  - prefer_primary is on, the backup is active and the primary sends its
 *    second keyframe (its keyframe interval known): at that keyframe.
 * A switch is a new timeline for the sinks (on_start, a new generation),
 * followed at once by the new active feed's held GOP. For the first two
 * cases that GOP starts at the standby's last keyframe, before the switch:
 * replaying it is what gives viewers the shortest gap: the transcoder gets
 * a keyframe at once and, with the feed's keyframe interval and bitrate
 * that the channel measured while the feed stood by (channel_feed_info),
 * begins its renditions from it without measuring a GOP first; RTMP
 * players get a picture at once. The price is that up to one GOP of the show may be
 * seen twice; the standby's GOP is replayed only while it is fresh (the
 * standby sent media within failover_after), else the sinks wait for its
 * next keyframe. For a returning primary the held GOP is just the keyframe
 * that triggered the switch.
 *
 * The last GOP (from the last video keyframe) of each feed is kept as
 * packet references, so a new RTMP player starts at once with a picture
 * and a standby can take over from its last keyframe. Bound, per feed:
 * GOP_MAX_BYTES and GOP_MAX_PACKETS; past either the cache is emptied and
 * stays empty until the next keyframe (new players then wait for it). An
 * audio-only feed keeps its last AUDIO_ONLY_KEEP packets.
 *
 * The output clock: RTMP players and push targets see one stream whatever
 * feed is on air, and an encoder's clock is its own (a backup's may be
 * hours from the primary's; a replayed GOP is up to one GOP old). So the
 * timestamps sinks get are the feed's plus the channel's ts_offset, chosen
 * at the first packet of each timeline after the first one so that it
 * follows the last packet sent, one frame later. The first timeline keeps
 * the encoder's timestamps. Packets carry the RTMP wire bytes, so a packet
 * whose timestamp moves gets a retimed copy of its wire (one per packet,
 * shared by every player). */
#include "relay/channel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "relay/amf.h"
#include "core/metrics.h"
#include "relay/rtmp_chunk.h"

#define GOP_MAX_BYTES (16u << 20)
#define GOP_MAX_PACKETS 4096
#define AUDIO_ONLY_KEEP 64
#define MAX_OBSERVERS 8
#define STATS_WINDOW_MS 2000
#define FAILOVER_TICK_MS 100
#define FAILOVER_DEFAULT_MS 2000 /* a hand-built config (tests) leaves 0 */

enum failover_reason { FAILOVER_DISCONNECT, FAILOVER_SILENCE, FAILOVER_PRIMARY_RETURNED, FAILOVER_REASONS };
static const char *const failover_reason_names[FAILOVER_REASONS] = {"disconnect", "silence", "primary_returned"};

struct channel_sink {
  int id; /* 0 = hole */
  const struct channel_sink_ops *ops;
  void *opaque;
  bool player;
  void (*on_removed)(void *opaque);
};

struct channel_feed {
  struct channel *ch;
  bool backup;
  const struct channel_feed_ops *ops;
  void *opaque;
  char addr[64];
  AVCodecParameters *par[2];
  uint8_t *seq[2];
  size_t seq_len[2];
  uint8_t *meta;
  size_t meta_len;
  double meta_fps;
  uint64_t opened_ms;
  uint64_t last_media_ms;
  /* measured over windows of STATS_WINDOW_MS */
  uint64_t win_start_ms, win_bytes, win_video_bytes, win_frames;
  double bitrate_kbps, video_kbps, fps;
  int64_t last_key_dts;
  double key_interval_s;
  uint64_t packets, bytes;
  /* the last GOP, from its keyframe (bounds at the top of the file) */
  AVPacket **gop;
  int64_t *gop_arrival; /* arrival_ms of each cached packet */
  int gop_n;
  size_t gop_bytes;
};

/* A subscription whose catch-up (on_start, then for a player the GOP) is
 * running. The sink may leave from inside it (a player whose connection
 * closes while its headers are written): channel_unsubscribe marks it
 * here and the catch-up stops at once, so nothing more is called on a sink
 * that is gone. A stack: a callback may subscribe another sink. */
struct sink_join {
  int id;
  bool left;
  struct sink_join *outer;
};

struct channel {
  struct channel_registry *reg;
  char name[64];
  char key[256];
  char backup_key[256];
  char title[256];
  struct channel_feed *feeds[2]; /* [0] primary, [1] backup */
  int active;                    /* index into feeds, -1 = none */
  bool started;                  /* on_start sent for the active feed */
  uint64_t generation;
  uint64_t live_since_ms;
  struct channel_feed_info info;
  /* the output clock (top of the file) */
  int64_t ts_offset;   /* added to the active feed's timestamps */
  int64_t out_last;    /* the largest timestamp sent so far */
  bool have_out;       /* something was sent: later timelines follow it */
  bool offset_pending; /* a timeline began: ts_offset is set at its first packet */
  uint32_t header_ts;  /* for the headers a sink sends at on_start */
  struct channel_sink *sinks;
  int nsinks, capsinks, next_id, walking, players;
  struct sink_join *joining; /* catch-ups in progress, innermost first */
  uint64_t failover_ms;      /* config: channel failover_after */
  bool prefer_primary;       /* config: channel prefer_primary */
  uint64_t failovers[FAILOVER_REASONS];
};

struct channel_registry {
  uv_loop_t *loop;
  /* [rtmp] of the running config (publisher_takeover): replaced by every
   * reload, never kept past it. */
  const struct config_rtmp *rtmp;
  struct channel **ch;
  int n;
  struct channel_registry_observer obs[MAX_OBSERVERS];
  int nobs;
  uv_timer_t *timer; /* the failover check; the registry goes in its close callback */
  void (*stopped_cb)(void *arg);
  void *stopped_arg;
  uint64_t (*clock)(void *opaque);
  void *clock_opaque;
};

static uint64_t reg_now(const struct channel_registry *reg) {
  return reg->clock ? reg->clock(reg->clock_opaque) : uv_now(reg->loop);
}

static uint64_t ch_now(const struct channel *ch) { return reg_now(ch->reg); }

/* --- GOP cache (per feed) --- */

static void gop_clear(struct channel_feed *f) {
  for (int i = 0; i < f->gop_n; i++)
    av_packet_free(&f->gop[i]);
  f->gop_n = 0;
  f->gop_bytes = 0;
}

static void gop_add(struct channel_feed *f, const AVPacket *pkt, int64_t arrival_ms) {
  bool has_video = f->par[CHANNEL_VIDEO] != NULL;
  bool key = pkt->stream_index == CHANNEL_VIDEO && (pkt->flags & AV_PKT_FLAG_KEY);
  if (has_video && key)
    gop_clear(f);
  else if (has_video && f->gop_n == 0)
    return; /* waiting for a keyframe */
  if (!has_video && f->gop_n >= AUDIO_ONLY_KEEP) {
    f->gop_bytes -= (size_t)f->gop[0]->size;
    av_packet_free(&f->gop[0]);
    f->gop_n--;
    memmove(f->gop, f->gop + 1, sizeof f->gop[0] * (size_t)f->gop_n);
    memmove(f->gop_arrival, f->gop_arrival + 1, sizeof f->gop_arrival[0] * (size_t)f->gop_n);
  }
  if (f->gop_n >= GOP_MAX_PACKETS || f->gop_bytes + (size_t)pkt->size > GOP_MAX_BYTES) {
    gop_clear(f); /* too long a GOP: new players wait for the next keyframe */
    return;
  }
  if (!f->gop) {
    f->gop = calloc(GOP_MAX_PACKETS, sizeof f->gop[0]);
    f->gop_arrival = calloc(GOP_MAX_PACKETS, sizeof f->gop_arrival[0]);
    if (!f->gop || !f->gop_arrival) {
      free(f->gop);
      free(f->gop_arrival);
      f->gop = NULL;
      f->gop_arrival = NULL;
      return;
    }
  }
  AVPacket *ref = av_packet_clone(pkt);
  if (!ref)
    return;
  f->gop_arrival[f->gop_n] = arrival_ms;
  f->gop[f->gop_n++] = ref;
  f->gop_bytes += (size_t)pkt->size;
}

/* --- sinks --- */

static void sinks_compact(struct channel *ch) {
  if (ch->walking)
    return;
  int j = 0;
  for (int i = 0; i < ch->nsinks; i++)
    if (ch->sinks[i].id)
      ch->sinks[j++] = ch->sinks[i];
  ch->nsinks = j;
}

/* Walk the sinks by index and by value: a callback may subscribe (the
 * array moves) or unsubscribe (a hole, compacted when the walk ends). */
#define SINKS_WALK(ch, s)                                                                                              \
  for (int _i = ((ch)->walking++, 0), _n = (ch)->nsinks; _i < _n; _i++)                                                \
    for (struct channel_sink s = (ch)->sinks[_i], *_once = &s; _once && s.id; _once = NULL)

static void sinks_walk_end(struct channel *ch) {
  ch->walking--;
  sinks_compact(ch);
}

static void ch_start(struct channel *ch) {
  struct channel_feed *f = ch->feeds[ch->active];
  ch->generation++;
  /* a later timeline follows what was sent (the output clock) */
  ch->offset_pending = ch->have_out;
  ch->header_ts = ch->have_out ? (uint32_t)(ch->out_last > 0 ? ch->out_last : 0) : 0;
  ch->info = (struct channel_feed_info){
      .video = f->par[CHANNEL_VIDEO],
      .audio = f->par[CHANNEL_AUDIO],
      .fps = f->fps > 0 ? f->fps : f->meta_fps,
      .is_backup = f->backup,
      .generation = ch->generation,
      .key_interval_ms = (int64_t)(f->key_interval_s * 1000.0 + 0.5),
      .video_kbps = f->video_kbps,
  };
  if (!ch->started)
    ch->live_since_ms = ch_now(ch);
  ch->started = true;
  log_info("channel", "feed start channel=%s feed=%s addr=%s video=%s audio=%s generation=%llu", ch->name,
           f->backup ? "backup" : "primary", f->addr, f->par[0] ? avcodec_get_name(f->par[0]->codec_id) : "none",
           f->par[1] ? avcodec_get_name(f->par[1]->codec_id) : "none", (unsigned long long)ch->generation);
  SINKS_WALK(ch, s) {
    if (s.ops->on_start)
      s.ops->on_start(s.opaque, &ch->info);
  }
  sinks_walk_end(ch);
}

static void ch_stop(struct channel *ch) {
  bool was = ch->started;
  ch->started = false;
  memset(&ch->info, 0, sizeof ch->info);
  if (!was)
    return;
  log_info("channel", "offline channel=%s", ch->name);
  SINKS_WALK(ch, s) {
    if (s.ops->on_stop)
      s.ops->on_stop(s.opaque);
  }
  sinks_walk_end(ch);
}

static const AVPacket *ch_retime(const struct channel *ch, const AVPacket *pkt, AVPacket **owned);

/* What a sink that joins a live channel is sent at once: on_start and,
 * for a player, the cached GOP; it stops as soon as the sink leaves. */
static void sink_catch_up(struct channel *ch, const struct channel_sink_ops *ops, void *opaque, bool player,
                          const struct sink_join *join) {
  const struct channel_feed *f = ch->feeds[ch->active];
  /* its headers go out with the first packet it will get */
  uint32_t shared_ts = ch->header_ts;
  if (player && f->gop_n > 0 && !ch->offset_pending) {
    int64_t t = f->gop[0]->dts + ch->ts_offset;
    ch->header_ts = (uint32_t)(t > 0 ? t : 0);
  }
  if (ops->on_start)
    ops->on_start(opaque, &ch->info);
  ch->header_ts = shared_ts;
  for (int i = 0; player && ops->on_packet && !join->left && i < f->gop_n; i++) {
    AVPacket *owned;
    const AVPacket *out = ch_retime(ch, f->gop[i], &owned);
    if (out)
      ops->on_packet(opaque, out, f->gop_arrival[i]);
    av_packet_free(&owned);
  }
}

static int ch_subscribe(struct channel *ch, const struct channel_sink_ops *ops, void *opaque, bool player,
                        void (*on_removed)(void *), int *sink_id) {
  *sink_id = 0;
  if (ch->nsinks == ch->capsinks) {
    int cap = ch->capsinks ? ch->capsinks * 2 : 8;
    struct channel_sink *n = realloc(ch->sinks, sizeof *n * (size_t)cap);
    if (!n)
      return CHANNEL_SUBSCRIBE_NOMEM;
    ch->sinks = n;
    ch->capsinks = cap;
  }
  int id = ++ch->next_id;
  ch->sinks[ch->nsinks++] = (struct channel_sink){id, ops, opaque, player, on_removed};
  if (player)
    ch->players++;
  /* Before any callback: the sink may unsubscribe from inside them. */
  *sink_id = id;
  if (!ch->started)
    return CHANNEL_SUBSCRIBED;
  struct sink_join join = {id, false, ch->joining};
  ch->joining = &join;
  sink_catch_up(ch, ops, opaque, player, &join);
  ch->joining = join.outer;
  return join.left ? CHANNEL_SUBSCRIBE_LEFT : CHANNEL_SUBSCRIBED;
}

int channel_subscribe(struct channel *ch, const struct channel_sink_ops *ops, void *opaque) {
  int id;
  return ch_subscribe(ch, ops, opaque, false, NULL, &id) == CHANNEL_SUBSCRIBE_NOMEM ? -ENOMEM : id;
}

int channel_subscribe_player(struct channel *ch, const struct channel_sink_ops *ops, void *opaque,
                             void (*on_removed)(void *opaque), int *sink_id) {
  return ch_subscribe(ch, ops, opaque, true, on_removed, sink_id);
}

void channel_unsubscribe(struct channel *ch, int sink_id) {
  for (struct sink_join *j = ch->joining; j; j = j->outer)
    if (j->id == sink_id)
      j->left = true;
  for (int i = 0; i < ch->nsinks; i++) {
    if (ch->sinks[i].id == sink_id) {
      if (ch->sinks[i].player)
        ch->players--;
      ch->sinks[i].id = 0;
      break;
    }
  }
  sinks_compact(ch);
}

/* --- feeds --- */

static void feed_free(struct channel_feed *f) {
  gop_clear(f);
  free(f->gop);
  free(f->gop_arrival);
  for (int i = 0; i < 2; i++) {
    avcodec_parameters_free(&f->par[i]);
    free(f->seq[i]);
  }
  free(f->meta);
  free(f);
}

/* Media within failover_after: the feed is sending (now is not earlier
 * than any last_media_ms: both come from the same clock). */
static bool feed_sending(const struct channel_feed *f, uint64_t now) {
  return f->last_media_ms && now - f->last_media_ms < f->ch->failover_ms;
}

/* pkt on the output clock: pkt itself when ts_offset is 0, else a new
 * packet (*owned, free it) with moved timestamps and a retimed wire. NULL
 * on no memory. */
static const AVPacket *ch_retime(const struct channel *ch, const AVPacket *pkt, AVPacket **owned) {
  *owned = NULL;
  if (ch->ts_offset == 0)
    return pkt;
  AVPacket *out = av_packet_clone(pkt);
  if (!out)
    return NULL;
  out->dts += ch->ts_offset;
  out->pts += ch->ts_offset;
  if (pkt->opaque_ref) {
    av_buffer_unref(&out->opaque_ref);
    /* the RTMP message timestamp is the dts (the composition offset is in
     * the payload, unchanged) */
    out->opaque_ref =
        rtmp_chunk_wire_retimed(pkt->opaque_ref->data, pkt->opaque_ref->size, (uint32_t)(out->dts > 0 ? out->dts : 0));
    if (!out->opaque_ref) {
      av_packet_free(&out);
      return NULL;
    }
  }
  *owned = out;
  return out;
}

static void sinks_packet(struct channel *ch, const AVPacket *pkt, int64_t arrival_ms) {
  if (ch->offset_pending) {
    double fps = ch->info.fps;
    int64_t step = fps > 0 ? (int64_t)(1000.0 / fps + 0.5) : 33;
    ch->ts_offset = ch->out_last + step - pkt->dts;
    ch->offset_pending = false;
  }
  AVPacket *owned;
  const AVPacket *out = ch_retime(ch, pkt, &owned);
  if (!out)
    return; /* no memory: this packet is lost for every sink alike */
  if (!ch->have_out || out->dts > ch->out_last)
    ch->out_last = out->dts;
  ch->have_out = true;
  SINKS_WALK(ch, s) {
    if (s.ops->on_packet)
      s.ops->on_packet(s.opaque, out, arrival_ms);
  }
  sinks_walk_end(ch);
  av_packet_free(&owned);
}

uint32_t channel_header_timestamp(const struct channel *ch) { return ch->header_ts; }

/* Make feeds[to] the active feed: a new timeline for the sinks, and the
 * feed's held GOP after it (see the top of the file). */
static void ch_switch(struct channel *ch, int to, enum failover_reason why) {
  struct channel_feed *f = ch->feeds[to];
  uint64_t now = ch_now(ch);
  bool replay = f->gop_n > 0 && feed_sending(f, now);
  if (!replay)
    gop_clear(f); /* stale: the sinks wait for the next keyframe */
  ch->active = to;
  ch->failovers[why]++;
  log_info("channel", "feed switch channel=%s to=%s reason=%s replay_packets=%d", ch->name, to ? "backup" : "primary",
           failover_reason_names[why], replay ? f->gop_n : 0);
  if (!ch->started && !replay)
    return; /* starts with the feed's first packet */
  ch_start(ch);
  /* Sinks (players) subscribing from here on get the GOP from
   * channel_subscribe_player; the ones here now get it once, in order. A
   * sink does not change the feed's GOP (it only keeps references). */
  for (int i = 0; i < f->gop_n && ch->feeds[to] == f && ch->active == to; i++)
    sinks_packet(ch, f->gop[i], f->gop_arrival[i]);
}

/* Detach a feed from its channel: the standby takes over, or the channel
 * goes offline. */
static void feed_detach(struct channel_feed *f) {
  struct channel *ch = f->ch;
  int idx = f->backup ? 1 : 0;
  ch->feeds[idx] = NULL;
  if (ch->active == idx) {
    int other = 1 - idx;
    if (ch->feeds[other]) {
      ch_switch(ch, other, FAILOVER_DISCONNECT);
    } else {
      ch->active = -1;
      ch_stop(ch);
    }
  }
  feed_free(f);
}

static void feed_kick(struct channel_feed *f, const char *why) {
  const struct channel_feed_ops *ops = f->ops;
  void *opaque = f->opaque;
  log_info("channel", "publisher dropped channel=%s addr=%s why=%s", f->ch->name, f->addr, why);
  feed_detach(f);
  if (ops && ops->kick)
    ops->kick(opaque, why);
}

/* Constant-time: every key of every channel is compared in full. */
static struct channel *reg_match_key(struct channel_registry *reg, const char *key, bool *backup) {
  char cand[256] = {0};
  size_t kl = strlen(key);
  if (kl == 0 || kl >= sizeof cand)
    return NULL;
  memcpy(cand, key, kl);
  struct channel *found = NULL;
  for (int i = 0; i < reg->n; i++) {
    struct channel *ch = reg->ch[i];
    char k[256] = {0}, b[256] = {0};
    memcpy(k, ch->key, strnlen(ch->key, sizeof k - 1));
    memcpy(b, ch->backup_key, strnlen(ch->backup_key, sizeof b - 1));
    bool pk = ch->key[0] && CRYPTO_memcmp(k, cand, sizeof cand) == 0;
    bool bk = ch->backup_key[0] && CRYPTO_memcmp(b, cand, sizeof cand) == 0;
    if ((pk || bk) && !found) {
      found = ch;
      *backup = bk && !pk;
    }
  }
  return found;
}

int channel_feed_open(struct channel_registry *reg, const char *key, const char *addr,
                      const struct channel_feed_ops *ops, void *opaque, struct channel_feed **out) {
  bool backup = false;
  struct channel *ch = reg_match_key(reg, key, &backup);
  if (!ch)
    return CHANNEL_OPEN_UNKNOWN_KEY;
  int idx = backup ? 1 : 0;
  uint64_t now = ch_now(ch);
  struct channel_feed *old = ch->feeds[idx];
  if (old) {
    uint64_t last = old->last_media_ms ? old->last_media_ms : old->opened_ms;
    double silent = (double)(now - last) / 1000.0;
    if (silent < reg->rtmp->publisher_takeover) {
      log_warn("channel", "publish refused: key already live channel=%s feed=%s addr=%s live_addr=%s", ch->name,
               backup ? "backup" : "primary", addr, old->addr);
      return CHANNEL_OPEN_BUSY;
    }
    feed_kick(old, "replaced by a new publisher (silent feed)");
  }
  struct channel_feed *f = calloc(1, sizeof *f);
  if (!f)
    return CHANNEL_OPEN_NOMEM;
  f->ch = ch;
  f->backup = backup;
  f->ops = ops;
  f->opaque = opaque;
  snprintf(f->addr, sizeof f->addr, "%s", addr);
  f->opened_ms = now;
  f->win_start_ms = now;
  f->last_key_dts = -1;
  ch->feeds[idx] = f;
  if (ch->active < 0)
    ch->active = idx;
  log_info("channel", "publish channel=%s feed=%s addr=%s role=%s", ch->name, backup ? "backup" : "primary", addr,
           ch->active == idx ? "active" : "standby");
  *out = f;
  return CHANNEL_OPEN_OK;
}

void channel_feed_close(struct channel_feed *f) {
  if (!f)
    return;
  log_info("channel", "unpublish channel=%s feed=%s addr=%s", f->ch->name, f->backup ? "backup" : "primary", f->addr);
  feed_detach(f);
}

struct channel *channel_feed_channel(const struct channel_feed *f) {
  return f->ch;
}
bool channel_feed_is_backup(const struct channel_feed *f) { return f->backup; }

static bool feed_is_active(const struct channel_feed *f) {
  return f->ch->active >= 0 && f->ch->feeds[f->ch->active] == f;
}

void channel_feed_metadata(struct channel_feed *f, const uint8_t *body, size_t len) {
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy)
    return;
  memcpy(copy, body, len);
  free(f->meta);
  f->meta = copy;
  f->meta_len = len;
  struct amf_reader r;
  amf_reader_init(&r, body, len);
  const char *s;
  size_t sl;
  double fps = 0, framerate = 0;
  struct amf_field obj[] = {
      {AMF_NUMBER, "framerate", &framerate, sizeof framerate},
      {AMF_NUMBER, "fps", &fps, sizeof fps},
  };
  if (amf_read_string(&r, &s, &sl) == 0 && amf_decode_object(&r, obj, 2) == 0)
    f->meta_fps = framerate > 0 ? framerate : fps;
}

void channel_feed_config(struct channel_feed *f, int stream_index, AVCodecParameters *par, const uint8_t *body,
                         size_t len) {
  if (stream_index != CHANNEL_VIDEO && stream_index != CHANNEL_AUDIO) {
    avcodec_parameters_free(&par);
    return;
  }
  if (f->seq[stream_index] && f->seq_len[stream_index] == len && memcmp(f->seq[stream_index], body, len) == 0) {
    avcodec_parameters_free(&par); /* repeated, unchanged (OBS resends on reconnect) */
    return;
  }
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) {
    avcodec_parameters_free(&par);
    return;
  }
  memcpy(copy, body, len);
  AVCodecParameters *old = f->par[stream_index];
  uint8_t *old_seq = f->seq[stream_index];
  f->par[stream_index] = par;
  f->seq[stream_index] = copy;
  f->seq_len[stream_index] = len;
  gop_clear(f); /* its packets belong to the old configuration */
  /* A change under a started feed starts a new timeline now (sinks hold
   * the old parameters until on_start, so they are freed after it). */
  if (feed_is_active(f) && f->ch->started)
    ch_start(f->ch);
  avcodec_parameters_free(&old);
  free(old_seq);
}

static void feed_stats(struct channel_feed *f, const AVPacket *pkt, uint64_t now) {
  f->packets++;
  f->bytes += (uint64_t)pkt->size;
  f->win_bytes += (uint64_t)pkt->size;
  f->last_media_ms = now;
  if (pkt->stream_index == CHANNEL_VIDEO) {
    f->win_frames++;
    f->win_video_bytes += (uint64_t)pkt->size;
    if (pkt->flags & AV_PKT_FLAG_KEY) {
      if (f->last_key_dts >= 0 && pkt->dts > f->last_key_dts)
        f->key_interval_s = (double)(pkt->dts - f->last_key_dts) / 1000.0;
      f->last_key_dts = pkt->dts;
    }
  }
  uint64_t span = now - f->win_start_ms;
  if (span >= STATS_WINDOW_MS) {
    f->bitrate_kbps = (double)f->win_bytes * 8.0 / (double)span;
    f->video_kbps = (double)f->win_video_bytes * 8.0 / (double)span;
    f->fps = (double)f->win_frames * 1000.0 / (double)span;
    f->win_bytes = f->win_video_bytes = f->win_frames = 0;
    f->win_start_ms = now;
  }
}

/* prefer_primary: the primary, back while the backup is active, takes
 * over at its second keyframe (or at once when it sends no video): by then
 * its keyframe interval is known, so the transcoder begins at once and the
 * backup stays on air until then, rather than the slate while the
 * transcoder would measure the primary's first GOP. */
static bool primary_takes_over(const struct channel_feed *f, const AVPacket *pkt) {
  const struct channel *ch = f->ch;
  if (f->backup || !ch->prefer_primary || ch->active != 1)
    return false;
  if (!f->par[CHANNEL_VIDEO])
    return true;
  return pkt->stream_index == CHANNEL_VIDEO && (pkt->flags & AV_PKT_FLAG_KEY) && f->key_interval_s > 0;
}

void channel_feed_packet(struct channel_feed *f, const AVPacket *pkt, int64_t arrival_ms) {
  struct channel *ch = f->ch;
  feed_stats(f, pkt, ch_now(ch));
  gop_add(f, pkt, arrival_ms);
  if (!feed_is_active(f)) {
    /* standby: held ready, not forwarded */
    if (primary_takes_over(f, pkt))
      ch_switch(ch, 0, FAILOVER_PRIMARY_RETURNED); /* forwards this packet as its GOP */
    return;
  }
  if (!ch->started)
    ch_start(ch);
  sinks_packet(ch, pkt, arrival_ms);
}

/* --- queries --- */

const char *channel_strerror(int code) {
  switch (code) {
  case CHANNEL_OPEN_UNKNOWN_KEY: return "unknown stream key";
  case CHANNEL_OPEN_BUSY: return "stream key already live";
  case CHANNEL_SUBSCRIBE_LEFT: return "sink left during its catch-up";
  default: return strerror(-code);
  }
}

const char *channel_name(const struct channel *ch) { return ch->name; }
bool channel_is_live(const struct channel *ch) { return ch->started; }
int channel_player_count(const struct channel *ch) { return ch->players; }

const uint8_t *channel_metadata(const struct channel *ch, size_t *len) {
  if (ch->active < 0 || !ch->feeds[ch->active]->meta)
    return NULL;
  *len = ch->feeds[ch->active]->meta_len;
  return ch->feeds[ch->active]->meta;
}

const uint8_t *channel_sequence_header(const struct channel *ch, int stream_index, size_t *len) {
  if (ch->active < 0 || (stream_index != 0 && stream_index != 1))
    return NULL;
  const struct channel_feed *f = ch->feeds[ch->active];
  *len = f->seq_len[stream_index];
  return f->seq[stream_index];
}

/* --- registry --- */

static void ch_set_failover(struct channel *ch, const struct config_channel *cc) {
  ch->failover_ms = cc->failover_after > 0 ? (uint64_t)(cc->failover_after * 1000.0 + 0.5) : FAILOVER_DEFAULT_MS;
  ch->prefer_primary = cc->prefer_primary;
}

static struct channel *ch_new(struct channel_registry *reg, const struct config_channel *cc) {
  struct channel *ch = calloc(1, sizeof *ch);
  if (!ch)
    return NULL;
  ch->reg = reg;
  ch->active = -1;
  snprintf(ch->name, sizeof ch->name, "%s", cc->name);
  snprintf(ch->key, sizeof ch->key, "%s", cc->key);
  snprintf(ch->backup_key, sizeof ch->backup_key, "%s", cc->backup_key);
  snprintf(ch->title, sizeof ch->title, "%s", cc->title);
  ch_set_failover(ch, cc);
  return ch;
}

static void ch_free(struct channel *ch) {
  for (int i = 0; i < 2; i++)
    if (ch->feeds[i])
      feed_kick(ch->feeds[i], "channel removed");
  /* Sinks still here (players): tell them the channel is gone. */
  for (int i = 0; i < ch->nsinks; i++) {
    struct channel_sink s = ch->sinks[i];
    ch->sinks[i].id = 0;
    if (s.id && s.on_removed)
      s.on_removed(s.opaque);
  }
  free(ch->sinks);
  free(ch);
}

static int reg_append(struct channel_registry *reg, struct channel *ch) {
  struct channel **n = realloc(reg->ch, sizeof *n * (size_t)(reg->n + 1));
  if (!n)
    return -ENOMEM;
  reg->ch = n;
  reg->ch[reg->n++] = ch;
  return 0;
}

/* --- failover on silence --- */

/* The active feed sent no media for failover_after (or none at all since it
 * connected that long ago) while the standby is sending: the standby takes
 * over. Both silent: nothing changes (switching to a silent feed helps no
 * viewer; rtmp idle_timeout and publisher_takeover deal with dead
 * connections). */
static void ch_check_silence(struct channel *ch, uint64_t now) {
  if (ch->active < 0)
    return;
  int other = 1 - ch->active;
  struct channel_feed *a = ch->feeds[ch->active], *s = ch->feeds[other];
  if (!s || !feed_sending(s, now))
    return;
  uint64_t last = a->last_media_ms ? a->last_media_ms : a->opened_ms;
  if (now < last || now - last < ch->failover_ms)
    return;
  log_warn("channel", "active feed silent channel=%s feed=%s addr=%s silent_ms=%llu: failing over", ch->name,
           a->backup ? "backup" : "primary", a->addr, (unsigned long long)(now - last));
  ch_switch(ch, other, FAILOVER_SILENCE);
}

void channel_registry_check_feeds(struct channel_registry *reg) {
  uint64_t now = reg_now(reg);
  for (int i = 0; i < reg->n; i++)
    ch_check_silence(reg->ch[i], now);
}

void channel_registry_set_clock(struct channel_registry *reg, uint64_t (*now)(void *opaque), void *opaque) {
  reg->clock = now;
  reg->clock_opaque = opaque;
}

static void reg_on_timer(uv_timer_t *t) {
  if (t->data)
    channel_registry_check_feeds(t->data);
}

/* The registry's memory goes with its timer's handle: then the stop is
 * done. */
static void reg_timer_closed(uv_handle_t *h) {
  struct channel_registry *reg = h->data;
  void (*cb)(void *) = reg->stopped_cb;
  void *arg = reg->stopped_arg;
  free(h);
  free(reg);
  if (cb)
    cb(arg);
}

struct channel_registry *channel_registry_new(uv_loop_t *loop, const struct config_rtmp *rtmp,
                                              const struct config_channel *channels, int channel_count) {
  struct channel_registry *reg = calloc(1, sizeof *reg);
  if (!reg)
    return NULL;
  reg->loop = loop;
  reg->rtmp = rtmp;
  reg->timer = calloc(1, sizeof *reg->timer);
  if (!reg->timer || uv_timer_init(loop, reg->timer) != 0) {
    free(reg->timer);
    free(reg);
    return NULL;
  }
  reg->timer->data = reg;
  uv_timer_start(reg->timer, reg_on_timer, FAILOVER_TICK_MS, FAILOVER_TICK_MS);
  uv_unref((uv_handle_t *)reg->timer); /* never what keeps the loop running */
  for (int i = 0; i < channel_count; i++) {
    struct channel *ch = ch_new(reg, &channels[i]);
    if (!ch || reg_append(reg, ch) < 0) {
      free(ch);
      channel_registry_stop(reg, NULL, NULL);
      return NULL;
    }
  }
  return reg;
}

void channel_registry_stop(struct channel_registry *reg, void (*cb)(void *arg), void *arg) {
  if (!reg)
    return;
  for (int i = 0; i < reg->n; i++)
    ch_free(reg->ch[i]);
  free(reg->ch);
  reg->ch = NULL;
  reg->n = 0;
  reg->nobs = 0;
  reg->stopped_cb = cb;
  reg->stopped_arg = arg;
  uv_timer_stop(reg->timer);
  uv_close((uv_handle_t *)reg->timer, reg_timer_closed);
}

static const struct config_channel *find_config(const struct config_channel *channels, int channel_count,
                                                const char *name) {
  for (int i = 0; i < channel_count; i++)
    if (strcmp(channels[i].name, name) == 0)
      return &channels[i];
  return NULL;
}

static void reg_notify(struct channel_registry *reg, struct channel *ch, bool added) {
  for (int o = 0; o < reg->nobs; o++) {
    const struct channel_registry_observer *obs = &reg->obs[o];
    if (added && obs->on_channel_added)
      obs->on_channel_added(obs->opaque, ch);
    else if (!added && obs->on_channel_removed)
      obs->on_channel_removed(obs->opaque, ch);
  }
}

void channel_registry_reload(struct channel_registry *reg, const struct config_rtmp *rtmp,
                             const struct config_channel *channels, int channel_count) {
  reg->rtmp = rtmp;
  /* Removed channels first. */
  for (int i = 0; i < reg->n;) {
    struct channel *ch = reg->ch[i];
    if (find_config(channels, channel_count, ch->name)) {
      i++;
      continue;
    }
    log_info("channel", "removed channel=%s", ch->name);
    reg_notify(reg, ch, false);
    memmove(reg->ch + i, reg->ch + i + 1, sizeof reg->ch[0] * (size_t)(reg->n - i - 1));
    reg->n--;
    ch_free(ch);
  }
  for (int i = 0; i < channel_count; i++) {
    const struct config_channel *cc = &channels[i];
    struct channel *ch = channel_registry_find(reg, cc->name);
    if (ch) {
      if (strcmp(ch->key, cc->key) != 0 && ch->feeds[0])
        feed_kick(ch->feeds[0], "stream key changed");
      if (strcmp(ch->backup_key, cc->backup_key) != 0 && ch->feeds[1])
        feed_kick(ch->feeds[1], "backup key changed");
      snprintf(ch->key, sizeof ch->key, "%s", cc->key);
      snprintf(ch->backup_key, sizeof ch->backup_key, "%s", cc->backup_key);
      snprintf(ch->title, sizeof ch->title, "%s", cc->title);
      ch_set_failover(ch, cc);
      continue;
    }
    ch = ch_new(reg, cc);
    if (!ch || reg_append(reg, ch) < 0) {
      free(ch);
      log_error("channel", "out of memory adding channel=%s", cc->name);
      continue;
    }
    log_info("channel", "added channel=%s", ch->name);
    reg_notify(reg, ch, true);
  }
}

int channel_registry_count(const struct channel_registry *reg) { return reg->n; }

struct channel *channel_registry_at(struct channel_registry *reg, int index) {
  return index >= 0 && index < reg->n ? reg->ch[index] : NULL;
}

struct channel *channel_registry_find(struct channel_registry *reg, const char *name) {
  for (int i = 0; i < reg->n; i++)
    if (strcmp(reg->ch[i]->name, name) == 0)
      return reg->ch[i];
  return NULL;
}

int channel_registry_observe(struct channel_registry *reg, const struct channel_registry_observer *obs) {
  if (reg->nobs >= MAX_OBSERVERS) {
    log_error("channel", "too many registry observers");
    return -ENOSPC;
  }
  reg->obs[reg->nobs++] = *obs;
  for (int i = 0; i < reg->n; i++)
    if (obs->on_channel_added)
      obs->on_channel_added(obs->opaque, reg->ch[i]);
  return 0;
}

int channel_registry_unobserve(struct channel_registry *reg, const struct channel_registry_observer *obs) {
  for (int o = 0; o < reg->nobs; o++) {
    const struct channel_registry_observer *x = &reg->obs[o];
    if (x->opaque == obs->opaque && x->on_channel_added == obs->on_channel_added &&
        x->on_channel_removed == obs->on_channel_removed) {
      memmove(reg->obs + o, reg->obs + o + 1, sizeof reg->obs[0] * (size_t)(reg->nobs - o - 1));
      reg->nobs--;
      return 0;
    }
  }
  return -ENOENT;
}

/* --- API and metrics --- */

static const struct channel_feed *ch_active(const struct channel *ch) {
  return ch->active >= 0 ? ch->feeds[ch->active] : NULL;
}

void channel_api_fill(const struct channel *ch, struct json_t *obj) {
  const struct channel_feed *f = ch_active(ch);
  json_object_set_new(obj, "live", json_boolean(ch->started));
  json_object_set_new(obj, "rtmp_players", json_integer(ch->players));
  json_object_set_new(obj, "backup_connected", json_boolean(ch->feeds[1] != NULL));
  json_object_set_new(obj, "primary_connected", json_boolean(ch->feeds[0] != NULL));
  json_t *fo = json_object();
  for (int r = 0; fo && r < FAILOVER_REASONS; r++)
    json_object_set_new(fo, failover_reason_names[r], json_integer((json_int_t)ch->failovers[r]));
  if (fo)
    json_object_set_new(obj, "failovers", fo);
  if (!f || !ch->started)
    return;
  json_object_set_new(obj, "feed", json_string(f->backup ? "backup" : "primary"));
  const AVCodecParameters *v = f->par[CHANNEL_VIDEO], *a = f->par[CHANNEL_AUDIO];
  if (v) {
    json_object_set_new(obj, "codec", json_string(avcodec_get_name(v->codec_id)));
    json_object_set_new(obj, "width", json_integer(v->width));
    json_object_set_new(obj, "height", json_integer(v->height));
  }
  if (a) {
    json_object_set_new(obj, "audio_codec", json_string(avcodec_get_name(a->codec_id)));
    json_object_set_new(obj, "audio_sample_rate", json_integer(a->sample_rate));
    json_object_set_new(obj, "audio_channels", json_integer(a->ch_layout.nb_channels));
  }
  json_object_set_new(obj, "fps", json_real(f->fps > 0 ? f->fps : f->meta_fps));
  json_object_set_new(obj, "bitrate_kbps", json_real(f->bitrate_kbps));
  json_object_set_new(obj, "keyframe_interval", json_real(f->key_interval_s));
  json_object_set_new(obj, "uptime", json_real((double)(ch_now(ch) - ch->live_since_ms) / 1000.0));
}

/* One channel's values for /metrics, read at the time of the request. */
struct channel_sample {
  bool live;
  int players;
  double bitrate_kbps, fps, width, height, keyframe_interval_s, uptime_s;
  uint64_t media_bytes;
};

static void channel_sample(const struct channel *ch, struct channel_sample *out) {
  const struct channel_feed *f = ch->started ? ch_active(ch) : NULL;
  const AVCodecParameters *v = f ? f->par[CHANNEL_VIDEO] : NULL;
  *out = (struct channel_sample){.live = ch->started, .players = ch->players};
  if (f) {
    out->bitrate_kbps = f->bitrate_kbps;
    out->fps = f->fps > 0 ? f->fps : f->meta_fps;
    out->keyframe_interval_s = f->key_interval_s;
    out->uptime_s = (double)(ch_now(ch) - ch->live_since_ms) / 1000.0;
    out->media_bytes = f->bytes;
  }
  if (v) {
    out->width = v->width;
    out->height = v->height;
  }
}

void channel_registry_metrics(const struct channel_registry *reg, struct buf *out) {
#define CS(NAME, TYPE, HELP, FIELD) METRIC_FIELD(NAME, TYPE, HELP, struct channel_sample, FIELD)
  static const struct metric rows[] = {
      CS("galarelay_channel_live", METRIC_GAUGE, "1 if the channel has a live feed", live),
      CS("galarelay_channel_rtmp_players", METRIC_GAUGE, "RTMP players subscribed", players),
      CS("galarelay_channel_bitrate_kbps", METRIC_GAUGE, "measured source bitrate", bitrate_kbps),
      CS("galarelay_channel_fps", METRIC_GAUGE, "source frames per second", fps),
      CS("galarelay_channel_width", METRIC_GAUGE, "source width", width),
      CS("galarelay_channel_height", METRIC_GAUGE, "source height", height),
      CS("galarelay_channel_keyframe_interval_seconds", METRIC_GAUGE, "time between the last two keyframes",
         keyframe_interval_s),
      CS("galarelay_channel_uptime_seconds", METRIC_GAUGE, "time since the channel went live", uptime_s),
      CS("galarelay_channel_media_bytes_total", METRIC_COUNTER, "media bytes received on the active feed", media_bytes),
  };
#undef CS
  struct channel_sample *samples = calloc(reg->n ? (size_t)reg->n : 1, sizeof *samples);
  if (!samples)
    return;
  for (int i = 0; i < reg->n; i++)
    channel_sample(reg->ch[i], &samples[i]);
  char label[96];
  for (size_t m = 0; m < METRICS_COUNT(rows); m++) {
    metrics_head(out, &rows[m]);
    for (int i = 0; i < reg->n; i++) {
      snprintf(label, sizeof label, "channel=\"%s\"", reg->ch[i]->name);
      metrics_sample(out, &rows[m], label, &samples[i]);
    }
  }
  free(samples);
  static const struct metric backup =
      METRIC_FAMILY("galarelay_channel_backup_active", METRIC_GAUGE, "1 if the backup feed is the active one");
  static const struct metric failovers = METRIC_FAMILY("galarelay_channel_failovers_total", METRIC_COUNTER,
                                                       "Switches of the active feed (primary/backup)");
  metrics_head(out, &backup);
  for (int i = 0; i < reg->n; i++) {
    snprintf(label, sizeof label, "channel=\"%s\"", reg->ch[i]->name);
    metrics_value(out, &backup, label, reg->ch[i]->active == 1);
  }
  metrics_head(out, &failovers);
  for (int i = 0; i < reg->n; i++)
    for (int r = 0; r < FAILOVER_REASONS; r++) {
      snprintf(label, sizeof label, "channel=\"%s\",reason=\"%s\"", reg->ch[i]->name, failover_reason_names[r]);
      metrics_count(out, &failovers, label, reg->ch[i]->failovers[r]);
    }
}
