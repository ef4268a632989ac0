/* ticket: one client operation (a comment, a moderator action) between
 * its archive records and its answer. Internal to chat/ (chat__ names).
 *
 * An operation writes one or more archive records; its events are
 * published and its ack is sent only once the archive has answered for
 * every one of them and every answer was "stored". Any record refused at
 * submit (queue full, closing) or failed at write turns the answer into an
 * error and nothing is published: "acked" means "on disk", for the whole
 * operation, not only for its last record.
 *
 * Ownership: a ticket owns its events until it publishes or drops them and
 * frees itself after its answer. The archive holds it as the opaque of
 * each record's completion; the connection only points at it and detaches
 * it when it closes, so a client that leaves first costs nothing.
 *
 * The replies, ids and wall clock the requests share live here too, as
 * the ticket's ends. Loop thread only. */
#ifndef GALARELAY_CHAT_TICKET_INT_H
#define GALARELAY_CHAT_TICKET_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "chat/bus.h"
#include "chat/chat_int.h"
#include "chat/protocol.h"
#include "chat/room.h"

struct ticket {
  struct chat *chat;
  struct chat_room *slot;
  struct chat_conn *conn; /* NULL once the client left */
  struct ticket *next;
  char nonce[CHAT_NONCE_MAX + 1];
  char id[BUS_ID_LEN];                /* the ack's id, "" for none */
  const char *error_code;             /* reply an error instead of an ack (held) */
  json_t *events[CHAT_EVENTS_PER_OP]; /* published after the commit */
  int event_count;
  unsigned pending; /* records submitted, not yet answered by the archive */
  bool refused;     /* a record was refused at submit */
  bool failed;      /* a record was not stored */
  bool sealed;      /* every record is submitted: answer once pending is 0 */
};

int64_t chat__wall_ms(void);
void chat__make_id(struct chat *c, char out[BUS_ID_LEN]);
void chat__reply(struct chat_conn *conn, json_t *msg /* stolen */);
void chat__reply_error(struct chat_conn *conn, const char *nonce, enum room_refusal why, const char *message,
                       int64_t retry_after_ms);

/* NULL when out of memory. */
struct ticket *chat__ticket_new(struct chat *c, struct chat_conn *conn, const char *nonce);
/* Drop an operation that submitted nothing (a refused request). */
void chat__ticket_free(struct ticket *t);
/* The connection closes: the ticket answers nobody. */
void chat__ticket_detach(struct ticket *t);
void chat__ticket_event(struct ticket *t, json_t *ev /* stolen */);
/* Completion for each record of the operation (archive_done_fn), with t. */
void chat__ticket_record_done(void *opaque, int ok);
/* What the archive said for records submitted with
 * chat__ticket_record_done: it took `accepted` of them (each pending until
 * its completion), and rc < 0 when it refused one. */
void chat__ticket_submitted(struct ticket *t, int rc, unsigned accepted);
/* Every record is submitted: the ticket answers now when nothing is
 * pending, or at the last completion. t may be gone on return. */
void chat__ticket_seal(struct ticket *t);

#endif
