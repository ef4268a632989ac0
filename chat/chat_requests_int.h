/* chat_requests: what a client asks of the chat service: hello, comment
 * and the moderator actions (docs/protocol.md). Internal to chat/ (chat__
 * names): the transport (chat.c) calls these with a parsed message for a
 * connection that joined a room; each answers the client itself, at once
 * or through a ticket (ticket_int.h). Loop thread only. */
#ifndef GALARELAY_CHAT_CHAT_REQUESTS_INT_H
#define GALARELAY_CHAT_CHAT_REQUESTS_INT_H

struct chat;
struct chat_conn;
struct chat_msg;

void chat__on_hello(struct chat *c, struct chat_conn *conn, const struct chat_msg *msg);
void chat__on_comment(struct chat *c, struct chat_conn *conn, const struct chat_msg *msg);
void chat__on_mod(struct chat *c, struct chat_conn *conn, const struct chat_msg *msg);

#endif
