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
 * Entry points for main (daemon/subsystems.c), all on the loop thread:
 *   chat_start before the lws context exists (the protocol is static),
 *   chat_protocol() first in the protocols array, chat_reload after a new
 *   config is in app->cfg, chat_stop on SIGTERM (set app->chat = NULL after
 *   it and keep running the loop: handles close asynchronously). */
#ifndef GALARELAY_CHAT_CHAT_H
#define GALARELAY_CHAT_CHAT_H

struct app;
struct buf;
struct config;
struct lws_protocols;
struct chat;

/* Rooms for cfg's channels, archive (state_dir/chat.sqlite3) opened and
 * loaded, bus started. NULL on failure (logged). */
struct chat *chat_start(struct app *app);
/* Graceful: refuse new work, finish archive writes (acks still go out),
 * close members with 1001, free everything as the loop runs. */
void chat_stop(struct chat *chat);
/* Moderator tokens and auth secret are read at each hello; this applies
 * limits, the banned words file and the set of rooms (channels added get a
 * room, removed ones close their members). */
void chat_reload(struct chat *chat, const struct config *cfg);
void chat_metrics(const struct chat *chat, struct buf *out);
const struct lws_protocols *chat_protocol(void);
/* Members of channel's room: 0, or -1 if there is no such room. */
int chat_room_counts(const struct chat *chat, const char *channel, int *members);

#endif
