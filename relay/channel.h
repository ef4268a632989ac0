/* channel: one per configured channel, the fan-out point of the media path.
 *
 * RTMP publishers feed it (primary and backup keys), and it forwards the
 * active feed to its sinks: RTMP players, restream push targets and the
 * transcoder. Everything here runs on the loop thread. A sink that keeps a
 * packet takes its own reference (av_packet_ref); a sink never blocks: if it
 * falls behind, it drops by its own written policy.
 *
 * Timestamps: packets carry pts/dts in milliseconds (time base 1/1000) as
 * RTMP delivers them; stream_index is CHANNEL_VIDEO or CHANNEL_AUDIO. */
#ifndef GALARELAY_CHANNEL_H
#define GALARELAY_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>

struct app;
struct config;
struct buf;

enum { CHANNEL_VIDEO = 0, CHANNEL_AUDIO = 1 };

/* What a sink learns when a feed starts (or the active feed switches, or
 * its codec parameters change): it starts a new timeline (a discontinuity). */
struct channel_feed_info {
  const AVCodecParameters *video; /* NULL = audio-only feed */
  const AVCodecParameters *audio; /* NULL = video-only feed */
  double fps;                     /* from metadata or measured; 0 = unknown */
  bool is_backup;                 /* the backup key's feed */
  uint64_t generation;            /* grows by one for every new feed timeline */
};

struct channel_sink_ops {
  void (*on_start)(void *opaque, const struct channel_feed_info *info);
  /* arrival_ms: wall clock (ms since the epoch) when the packet's last byte
   * was read from the socket: the program-date-time of HLS. */
  void (*on_packet)(void *opaque, const AVPacket *pkt, int64_t arrival_ms);
  void (*on_stop)(void *opaque); /* feed gone (no live feed left) */
};

struct channel;
struct channel_registry;

struct channel_registry *channel_registry_new(struct app *app);
void channel_registry_free(struct channel_registry *reg);
/* Apply a new config: channels added, removed (their publishers dropped) or
 * with new keys; live feeds of unchanged channels are kept. */
void channel_registry_reload(struct channel_registry *reg, const struct config *cfg);

int channel_registry_count(const struct channel_registry *reg);
struct channel *channel_registry_at(struct channel_registry *reg, int index);
struct channel *channel_registry_find(struct channel_registry *reg, const char *name);

const char *channel_name(const struct channel *ch);
bool channel_is_live(const struct channel *ch);

/* Sinks. The returned id (> 0) unsubscribes. If the channel is live when a
 * sink subscribes, on_start is called at once (and, for RTMP players, the
 * cached GOP follows). */
int channel_subscribe(struct channel *ch, const struct channel_sink_ops *ops, void *opaque);
void channel_unsubscribe(struct channel *ch, int sink_id);

/* Observers of the registry (the transcoder attaches a pipeline per channel
 * as channels come and go on reload). */
struct channel_registry_observer {
  void (*on_channel_added)(void *opaque, struct channel *ch);
  void (*on_channel_removed)(void *opaque, struct channel *ch);
  void *opaque;
};
void channel_registry_observe(struct channel_registry *reg, const struct channel_registry_observer *obs);

/* JSON object fields for /api/v1/channels (jansson json_t *), and lines for
 * /metrics. */
struct json_t;
void channel_api_fill(const struct channel *ch, struct json_t *obj);
void channel_registry_metrics(const struct channel_registry *reg, struct buf *out);

#endif
