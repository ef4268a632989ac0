/* channel: one per configured channel, the fan-out point of the media path,
 * and the registry that holds them.
 *
 * RTMP publishers feed a channel (primary and backup keys: its feeds), and
 * it forwards the active feed to its sinks: RTMP players (relay/rtmp_server),
 * restream pushes (relay/restream) and the transcoder. When the active feed
 * goes or falls silent, the other takes over (failover, below).
 *
 * Ownership: the registry owns its channels, a channel its feeds' state
 * (codec parameters, sequence headers, metadata, the last GOP). A sink or an
 * observer is owned by whoever registered it; a sink that keeps a packet
 * takes its own reference (av_packet_ref), and never blocks: if it falls
 * behind, it drops by its own written policy.
 *
 * Threads: everything here runs on the loop thread.
 *
 * Timestamps: packets carry pts/dts in milliseconds (time base 1/1000) as
 * RTMP delivers them, moved onto the channel's output clock (continuous
 * across feed switches); stream_index is CHANNEL_VIDEO or CHANNEL_AUDIO.
 *
 * Errors: negative errno codes (the enums below), channel_strerror. */
#ifndef GALARELAY_CHANNEL_H
#define GALARELAY_CHANNEL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>
#include <uv.h>

struct buf;
struct config_channel;
struct config_rtmp;

enum { CHANNEL_VIDEO = 0, CHANNEL_AUDIO = 1 };

/* What a sink learns when a feed starts (or the active feed switches, or
 * its codec parameters change): it starts a new timeline (a discontinuity).
 * The AVCodecParameters stay valid until the next on_start or on_stop of
 * that channel: copy what you keep. */
struct channel_feed_info {
  const AVCodecParameters *video; /* NULL = audio-only feed */
  const AVCodecParameters *audio; /* NULL = video-only feed */
  double fps;                     /* from metadata or measured; 0 = unknown */
  bool is_backup;                 /* the backup key's feed */
  /* What the channel measured of this feed before it went on air (a
   * standby's keyframe interval and video bitrate); 0 = not known yet.
   * With them the transcoder begins at the feed's first keyframe instead
   * of measuring a whole GOP first, which is what makes a failover to a
   * ready standby seamless. */
  int64_t key_interval_ms;
  double video_kbps;
  uint64_t generation; /* grows by one for every new feed timeline */
};

/* A sink. on_start fires when the active feed's first media packet arrives
 * (its sequence headers are known by then), again when a sequence header
 * changes mid-stream, and when the other feed takes over. */
struct channel_sink_ops {
  void (*on_start)(void *opaque, const struct channel_feed_info *info);
  /* arrival_ms: wall clock (ms since the epoch) when the packet's last byte
   * was read from the socket: the program-date-time of HLS. Packets from
   * RTMP carry pkt->opaque_ref: the message already chunked for RTMP
   * players (shared, read-only); other sinks ignore it. */
  void (*on_packet)(void *opaque, const AVPacket *pkt, int64_t arrival_ms);
  void (*on_stop)(void *opaque); /* feed gone (no live feed left) */
};

struct channel;
struct channel_registry;

/* ---- The registry ---- */

/* The channels of the config's [channel NAME] sections, on loop. rtmp
 * (publisher_takeover) is read while the registry runs: it must stay valid
 * until the next channel_registry_reload or channel_registry_stop. The
 * channels' settings are copied. NULL on no memory. */
struct channel_registry *channel_registry_new(uv_loop_t *loop, const struct config_rtmp *rtmp,
                                              const struct config_channel *channels, int channel_count);
/* Asynchronous teardown: every channel goes at once (its publishers are
 * kicked, its remaining players told through on_removed), the registry's
 * timer is closed, and cb(arg) runs once that is done (cb may be NULL).
 * Observers are not called. */
void channel_registry_stop(struct channel_registry *reg, void (*cb)(void *arg), void *arg);
/* Apply a new config: channels added, removed (their publishers dropped) or
 * with new keys; live feeds of unchanged channels are kept. No pointer into
 * the previous config is kept past it. */
void channel_registry_reload(struct channel_registry *reg, const struct config_rtmp *rtmp,
                             const struct config_channel *channels, int channel_count);

int channel_registry_count(const struct channel_registry *reg);
struct channel *channel_registry_at(struct channel_registry *reg, int index);
struct channel *channel_registry_find(struct channel_registry *reg, const char *name);

/* Observers of the registry: whoever keeps something per channel (the
 * transcoder a pipeline, the restream manager its pushes) learns of
 * channels as they come and go on reload. on_channel_added runs for every
 * channel already there when the observer registers, and for each channel
 * a reload adds (after it is in the registry); on_channel_removed runs
 * before a reload frees a channel (it is still whole: unsubscribe from
 * it there). The registry copies the struct. At most 8 observers:
 * channel_registry_observe returns 0 or -ENOSPC. channel_registry_unobserve
 * takes out the observer with the same callbacks and opaque (0, or
 * -ENOENT); not from inside an observer callback. channel_registry_stop
 * calls no observer: stop what observes before it. */
struct channel_registry_observer {
  void (*on_channel_added)(void *opaque, struct channel *ch);
  void (*on_channel_removed)(void *opaque, struct channel *ch);
  void *opaque;
};
int channel_registry_observe(struct channel_registry *reg, const struct channel_registry_observer *obs);
int channel_registry_unobserve(struct channel_registry *reg, const struct channel_registry_observer *obs);

/* Failover: the active feed switches when its publisher goes, when it sent
 * no media for the channel's failover_after while the standby did, or
 * (prefer_primary) when the returning primary sends its second keyframe;
 * channel.c says why each. Sinks get on_start (is_backup, a new generation)
 * and then the new feed's packets from its last held keyframe. A timer on
 * the registry's loop calls channel_registry_check_feeds every 100 ms;
 * tests call it themselves, with a clock of their own (ms, monotonic)
 * instead of uv_now. */
void channel_registry_check_feeds(struct channel_registry *reg);
void channel_registry_set_clock(struct channel_registry *reg, uint64_t (*now)(void *opaque), void *opaque);

/* /metrics lines (galarelay_channel_*: live, players, bitrate, fps, size,
 * keyframe interval, uptime, media bytes, backup_active,
 * failovers_total{reason}: disconnect, silence, primary_returned), and the
 * fields of a channel's /api/v1/channels object (jansson json_t *; among
 * them "failovers": {reason: count}). */
void channel_registry_metrics(const struct channel_registry *reg, struct buf *out);
struct json_t;
void channel_api_fill(const struct channel *ch, struct json_t *obj);

/* ---- A channel ---- */

const char *channel_name(const struct channel *ch);
bool channel_is_live(const struct channel *ch);
int channel_player_count(const struct channel *ch);

/* The channel's failure codes (negative errno values: the enums below) as
 * words for logs; any other code as strerror(-code). */
const char *channel_strerror(int code);

/* ---- Sinks ---- */

/* A sink that does not need the past (the transcoder, a push). The
 * returned id (> 0) unsubscribes; -ENOMEM. If the channel is live, on_start
 * is called at once; the cached GOP is not replayed. channel_unsubscribe
 * may be called from inside any callback, the sink's own included; no
 * callback reaches a sink after it. */
int channel_subscribe(struct channel *ch, const struct channel_sink_ops *ops, void *opaque);
void channel_unsubscribe(struct channel *ch, int sink_id);

/* RTMP players: like channel_subscribe, and if the channel is live the
 * cached GOP (from the last keyframe) follows on_start at once. on_removed
 * runs if the channel is removed by a reload while subscribed: the sink id
 * is then already gone (do not unsubscribe).
 *
 * *sink_id is written once, before any callback runs, so a player whose
 * connection closes during this catch-up (its headers trip its output
 * limit) unsubscribes on its ordinary close path, from inside the
 * callback; the catch-up then stops, and the result says the sink is
 * already gone: the caller must not treat it as subscribed. This is what
 * keeps a sink for freed memory out of the channel whatever point the
 * close comes at. */
enum channel_subscribe_result {
  CHANNEL_SUBSCRIBED = 0,
  CHANNEL_SUBSCRIBE_NOMEM = -ENOMEM,   /* not subscribed; *sink_id is 0 */
  CHANNEL_SUBSCRIBE_LEFT = -ECANCELED, /* it unsubscribed from inside its catch-up */
};
int channel_subscribe_player(struct channel *ch, const struct channel_sink_ops *ops, void *opaque,
                             void (*on_removed)(void *opaque), int *sink_id);

/* What the active feed's players and pushes are sent before media: the
 * onMetaData body (AMF "onMetaData" + object) and the FLV bodies of the
 * sequence headers exactly as the publisher sent them. NULL if none. Valid
 * until the next on_start / on_stop. */
const uint8_t *channel_metadata(const struct channel *ch, size_t *len);
const uint8_t *channel_sequence_header(const struct channel *ch, int stream_index, size_t *len);

/* The timestamp a sink gives the sequence headers it sends from on_start:
 * no later than the first packet that follows (packets are on the
 * channel's output clock). Metadata goes at timestamp 0, as nginx-rtmp
 * sends it: it belongs to no instant, and FFmpeg's FLV reader takes a data
 * message at any other time for a subtitle stream beside the audio and
 * video. */
uint32_t channel_header_timestamp(const struct channel *ch);

/* ---- Publishers ---- */

/* A feed is one publishing connection on a channel, as its primary or
 * backup (key or backup_key). */
struct channel_feed;

struct channel_feed_ops {
  /* The channel drops this publisher (a newcomer took over a silent feed,
   * or the channel or its key went away on reload). The feed is already
   * detached: close the connection, do not call channel_feed_close. */
  void (*kick)(void *opaque, const char *why);
};

enum channel_open_result {
  CHANNEL_OPEN_OK = 0,
  CHANNEL_OPEN_UNKNOWN_KEY = -ENOENT,
  CHANNEL_OPEN_BUSY = -EBUSY, /* that key is live and its publisher not silent */
  CHANNEL_OPEN_NOMEM = -ENOMEM,
};

/* Find the channel by stream key (constant-time comparison against every
 * key) and attach a feed. addr is the publisher's address for the API.
 * Returns CHANNEL_OPEN_OK or a negative enum channel_open_result. */
int channel_feed_open(struct channel_registry *reg, const char *key, const char *addr,
                      const struct channel_feed_ops *ops, void *opaque, struct channel_feed **out);
void channel_feed_close(struct channel_feed *f);
struct channel *channel_feed_channel(const struct channel_feed *f);
bool channel_feed_is_backup(const struct channel_feed *f);

/* The onMetaData body as players get it. */
void channel_feed_metadata(struct channel_feed *f, const uint8_t *body, size_t len);
/* A sequence header: par is taken over by the channel (freed by it);
 * body is the FLV body, copied. */
void channel_feed_config(struct channel_feed *f, int stream_index, AVCodecParameters *par, const uint8_t *body,
                         size_t len);
/* A media packet (pts/dts in ms, stream_index set, opaque_ref may hold the
 * chunked RTMP wire bytes for players). The caller keeps its reference. */
void channel_feed_packet(struct channel_feed *f, const AVPacket *pkt, int64_t arrival_ms);

#endif
