/* chat_int: what chat.c (transport, rooms, bus, archive glue),
 * chat_requests.c (hello, comment and moderator requests) and chat_remote.c
 * (archiving other nodes' events) share. Not an
 * API: nothing outside chat/chat*.c includes it. Internal names carry the
 * chat__ prefix. */
#ifndef GALARELAY_CHAT_INT_H
#define GALARELAY_CHAT_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "chat/bus.h"
#include "chat/fanout.h"
#include "chat/protocol.h"
#include "chat/room.h"
#include "config/config.h"

struct app;
struct archive;
struct filter;
struct lws;

#define CHAT_ROOMS_MAX CONFIG_MAX_CHANNELS
#define CHAT_JWT_LEEWAY_S 30
#define CHAT_EVENTS_PER_OP 4

struct chat_room {
  char channel[64];
  struct room *room;
  unsigned tickets; /* archive completions still to come */
  bool removed;     /* gone from the config: freed once empty */
};

struct chat {
  struct app *app;
  uv_timer_t tick;
  struct archive *archive;
  struct bus *bus;
  struct filter *filter;
  struct room_params params;
  struct chat_room rooms[CHAT_ROOMS_MAX];
  uint64_t next_conn_id;
  bool stopping;
  /* the fan-out's pacing (fanout.h): members with frames to write, a slice
   * of them per turn of the loop while the idle handle runs */
  struct fanout_ready ready;
  uv_idle_t fanout_idle;
  size_t fanout_slice;
  int open_handles; /* tick and fanout_idle: freed when both closed */
  struct fanout_stats fanout;
  struct {
    uint64_t connections, bad_utf8, oversize, bad_request, refused_join;
    uint64_t slices;        /* fan-out slices run */
    uint64_t spilled_bytes; /* rests of partly sent frames handed to lws (copied) */
    uint64_t lws_frames;    /* frames written through lws_write (not raw) */
  } stats;
};

/* Per connection (lws per-session data). */
struct chat_conn {
  struct room_member m; /* first: the room's view of this connection */
  struct lws *wsi;
  struct chat_room *slot;
  /* reassembly of one message that arrives in pieces, at most
   * max_frame_bytes; allocated at its first piece, freed after its last */
  unsigned char *rx;
  size_t rx_cap; /* bytes allocated (max_frame_bytes when it was allocated) */
  size_t rx_len;
  bool rx_binary;
  int close_code; /* set: close at the next writable callback */
  /* the write path (chat.c, "Writing to members") */
  struct fanout_link ready; /* in chat.ready: frames to write */
  struct fanout_tx tx;      /* a raw frame partly sent: finish before anything else */
  bool raw;                 /* plain TCP: frames go to the socket ourselves */
  bool awaiting_writable;   /* lws holds bytes, or the kernel is full: wait for WRITEABLE */
  struct ticket *tickets;
  /* who this moderator is in the moderation log and the archive: the
   * token's short id (token:1a2b3c4d) or the JWT's sub; never the token */
  char who[CHAT_ID_MAX + 1];
};

/* One client operation waiting for its archive commit. Owned by the
 * archive callback; the connection only points at it (and detaches it on
 * close), so a client that leaves first costs nothing. */
struct ticket {
  struct chat *chat;
  struct chat_room *slot;
  struct chat_conn *conn; /* NULL once the client left */
  struct ticket *next;
  char nonce[CHAT_NONCE_MAX + 1];
  char id[BUS_ID_LEN];      /* the ack's id, "" for none */
  const char *error_code;   /* reply an error instead of an ack (held) */
  json_t *events[CHAT_EVENTS_PER_OP]; /* published after the commit */
  int event_count;
};

int64_t chat__wall_ms(void);
void chat__make_id(struct chat *c, char out[BUS_ID_LEN]);
void chat__reply(struct chat_conn *conn, json_t *msg /* stolen */);
void chat__reply_error(struct chat_conn *conn, const char *nonce, enum room_refusal why,
                       const char *message, int64_t retry_after_ms);

/* Tickets: an operation's events are published and its ack sent after the
 * archive committed its records (see chat.c). */
struct ticket *chat__ticket_new(struct chat *c, struct chat_conn *conn, const char *nonce);
void chat__ticket_free(struct ticket *t);
void chat__ticket_event(struct ticket *t, json_t *ev /* stolen */);
void chat__ticket_done(void *opaque, int ok); /* archive_done_fn */
int chat__ticket_submit_result(struct ticket *t, int rc);
void chat__ticket_commit_now(struct ticket *t);

/* Requests (chat_requests.c) */
void chat__on_hello(struct chat *c, struct chat_conn *conn, const struct chat_msg *msg);
void chat__on_comment(struct chat *c, struct chat_conn *conn, const struct chat_msg *msg);
void chat__on_mod(struct chat *c, struct chat_conn *conn, const struct chat_msg *msg);

/* chat_remote.c: archive an event another node published (origin), which
 * room_deliver accepted (its shape is checked there). Loop thread; never
 * waits; a refusal is logged. */
void chat__archive_remote(struct chat *c, struct chat_room *slot, const json_t *ev,
                          const char *origin);

#endif
