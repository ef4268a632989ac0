/* chat: the live comment service: the websocket protocol "chat" on the
 * daemon's libwebsockets context (path /chat/CHANNEL), one room per
 * configured channel, the banned-word filter, the archive and the bus.
 *
 * A client frame is reassembled (bounded by chat.max_frame_bytes: past it
 * the connection is closed with 1009), parsed (chat/protocol), checked by
 * the room (auth, bans, limits, filter) and, when accepted, written to the
 * archive; after the commit it is published on the bus and the sender gets
 * its ack. Rooms receive events only from the bus and send them in batches
 * every chat.tick_ms: one shared frame per tick, written to the members
 * chat.fanout_slice at a time per turn of the loop, straight to their
 * sockets (chat.c, "Writing to members"), so that reading and acking never
 * wait for a whole fan-out.
 *
 * What it is given: the loop and the config sections it reads (struct
 * chat_sections), borrowed: chat reads them while it runs and gets new
 * ones at each chat_reload, after which it holds nothing of the old
 * config. The lws context is not its own: chat only provides the
 * protocol, whose callback finds the service through the handle the
 * caller keeps (chat_protocol) and does nothing once that reads NULL.
 * Stopping does not depend on whether the lws context went first: members
 * still connected get their last acks and a 1001, members already gone
 * cost nothing.
 *
 * Ownership: the caller owns the service from chat_start until chat_stop;
 * chat owns its rooms, archive, bus and filter. Every function here is
 * for the loop thread. */
#ifndef GALARELAY_CHAT_CHAT_H
#define GALARELAY_CHAT_CHAT_H

#include <uv.h>

struct buf;
struct config_channel;
struct config_chat;
struct config_redis;
struct config_server;
struct lws_protocols;
struct chat;

/* The config sections the chat reads. */
struct chat_sections {
  const struct config_chat *chat;
  const struct config_server *server; /* state_dir, trusted_proxy, allowed_origins */
  const struct config_redis *redis;
  const struct config_channel *channels; /* one room each; moderator tokens */
  int channel_count;
};

/* Rooms for the channels, archive (state_dir/chat.sqlite3) opened and
 * loaded, bus started. NULL on failure (logged). */
struct chat *chat_start(uv_loop_t *loop, const struct chat_sections *cfg);
/* Asynchronous, graceful: refuses new work, finishes archive writes (acks
 * still go out to members still connected), closes members with 1001 and
 * its handles; cb(arg) runs once everything is released (cb may be NULL).
 * The caller's handle must read NULL from now on (chat_protocol). */
void chat_stop(struct chat *chat, void (*cb)(void *arg), void *arg);
/* Moderator tokens and auth secret are read at each hello; this applies
 * limits, the banned words file and the set of rooms (channels added get a
 * room, removed ones close their members), and replaces the sections. */
void chat_reload(struct chat *chat, const struct chat_sections *cfg);
void chat_metrics(const struct chat *chat, struct buf *out);
/* The "chat" protocol for the lws context, into *out. handle is where the
 * caller keeps the service (set by chat_start's result, NULL once it
 * called chat_stop): the callback reads it at every call, so the protocol
 * may be registered before the service exists and outlive it. */
void chat_protocol(struct lws_protocols *out, struct chat *const *handle);
/* Members of channel's room: 0, or -ENOENT if there is no such room. */
int chat_room_counts(const struct chat *chat, const char *channel, int *members);

#endif
