/* restream: the restream manager. It owns the pushes (relay/rtmp_push) of
 * every channel: one per rtmp:// target in the channel's "push" keys.
 *
 * It observes the channel registry (channel_registry_observe): a channel
 * that comes into the registry gets its pushes, one that leaves loses them
 * before it is freed. The pushes themselves are channel sinks: they connect
 * when the channel goes live, send what it sends, and wait while it is
 * offline. On reload a channel whose list of targets changed (any target,
 * or their order) has all its pushes replaced; an unchanged list keeps its
 * pushes and their connections. The targets and the [rtmp] limits the
 * pushes read (player_queue_bytes, push_retry_max) are copied: nothing
 * points into the config.
 *
 * Loop thread only. The manager owns its pushes; the registry outlives the
 * manager (stop the manager first). */
#ifndef GALARELAY_RESTREAM_H
#define GALARELAY_RESTREAM_H

#include <uv.h>

struct channel_registry;
struct config_channel;
struct config_rtmp;
struct rtmp_push;
struct restream;

/* Copies the targets of channels[0..channel_count) and observes reg: the
 * channels already there get their pushes at once. NULL on no memory. */
struct restream *restream_start(uv_loop_t *loop, const struct config_rtmp *rtmp, const struct config_channel *channels,
                                int channel_count, struct channel_registry *reg);
/* A new config's targets and limits. Order against channel_registry_reload
 * does not matter: a channel's pushes start once it is both in the
 * registry and in the targets. */
void restream_reload(struct restream *rs, const struct config_rtmp *rtmp, const struct config_channel *channels,
                     int channel_count);
/* Asynchronous teardown: stops observing the registry and stops every
 * push; cb(arg) (may be NULL) runs once the last push is freed, and with
 * it the manager: before restream_stop returns when no push was running. */
void restream_stop(struct restream *rs, void (*cb)(void *arg), void *arg);

/* The pushes running for a channel (a target whose URL was not usable
 * counts and is NULL), in the order of its push keys. For the API and
 * tests. */
int restream_push_count(const struct restream *rs, const char *channel);
const struct rtmp_push *restream_push_at(const struct restream *rs, const char *channel, int index);

#endif
