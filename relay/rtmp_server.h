/* rtmp_server: the RTMP listener on the libuv loop (ingest and play).
 *
 * Each accepted connection runs an rtmp_session (relay/rtmp_session.h):
 * a publisher's media goes through relay/flv into its channel's feed
 * (relay/channel.h); a player subscribes to a channel and is written the
 * shared chunked messages. Limits and timeouts come from the [rtmp]
 * config section: handshake_timeout (from accept to publish or play),
 * idle_timeout, offline_player_timeout, max_chunk_size, max_message_size,
 * player_queue_bytes, and for admission max_connections,
 * max_unauthenticated_per_address and publisher_reserve (the policy is
 * relay/rtmp_door.h's: a newcomer makes room by closing a connection that
 * has not published or played, so the broadcaster always gets in).
 *
 * Player queue: a player's unsent bytes (libuv's write queue) are bounded
 * by rtmp.player_queue_bytes. A message that would pass the bound is not
 * queued; the player then skips everything up to the next video keyframe
 * (audio-only: just that message), so a slow player never grows memory or
 * slows the publisher or other players. */
#ifndef GALARELAY_RTMP_SERVER_H
#define GALARELAY_RTMP_SERVER_H

#include <uv.h>

struct buf;
struct channel_registry;
struct config_addr;
struct config_channel;
struct config_rtmp;
struct rtmp_server;

/* Binds listen (copied) on loop; NULL (logged) on failure. Publishers and
 * players find their channels in reg, which outlives the server. rtmp and
 * channels (whose stream keys count for admission) are read while the
 * server runs: they must stay valid until the next rtmp_server_reload or
 * rtmp_server_stop. Loop thread only, as everything here. */
struct rtmp_server *rtmp_server_start(uv_loop_t *loop, const struct config_addr *listen, const struct config_rtmp *rtmp,
                                      const struct config_channel *channels, int channel_count,
                                      struct channel_registry *reg);
/* A new config's [rtmp] and channel list: the limits apply from the next
 * connection, read or sweep on. The listen address changes only at
 * restart. No pointer into the previous config is kept past it. */
void rtmp_server_reload(struct rtmp_server *srv, const struct config_rtmp *rtmp, const struct config_channel *channels,
                        int channel_count);
/* Asynchronous teardown: stop accepting and close every connection;
 * cb(arg) (may be NULL) runs once every handle is closed and the memory
 * freed, so uv_run can return and uv_loop_close() == 0. */
void rtmp_server_stop(struct rtmp_server *srv, void (*cb)(void *arg), void *arg);
/* Prometheus lines (prefix galarelay_rtmp_). */
void rtmp_server_metrics(const struct rtmp_server *srv, struct buf *out);
/* Open RTMP connections (publishers, players, handshakes); 0 for NULL. */
int rtmp_server_connections(const struct rtmp_server *srv);

#endif
