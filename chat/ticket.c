/* ticket: an operation's records, then its events published and its
 * answer sent (ticket_int.h); and the replies, ids and clock the requests
 * share. */
#include "chat/ticket_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/bus.h"
#include "chat/chat_int.h"
#include "chat/room.h"

int64_t chat__wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void chat__make_id(struct chat *c, char out[BUS_ID_LEN]) {
  if (c->bus) {
    bus_make_id(c->bus, out);
    return;
  }
  /* stopping (no bus): nothing is published any more; an id all the same */
  idgen_make(&c->ids, (uint64_t)chat__wall_ms(), out);
}

/* ---- Replies */

void chat__reply(struct chat_conn *conn, json_t *msg /* stolen */) {
  if (msg && conn->m.room)
    room_send(&conn->m, msg);
  json_decref(msg);
}

void chat__reply_error(struct chat_conn *conn, const char *nonce, enum room_refusal why, const char *message,
                       int64_t retry_after_ms) {
  chat__reply(conn, chat_error_json(nonce, room_refusal_code(why), message, retry_after_ms));
}

/* ---- Tickets: archive commit, then publish, then ack */

struct ticket *chat__ticket_new(struct chat *c, struct chat_conn *conn, const char *nonce) {
  struct ticket *t = calloc(1, sizeof(*t));
  if (!t)
    return NULL;
  t->chat = c;
  t->slot = conn->slot;
  t->conn = conn;
  snprintf(t->nonce, sizeof(t->nonce), "%s", nonce ? nonce : "");
  t->next = conn->tickets;
  conn->tickets = t;
  t->slot->tickets++;
  return t;
}

void chat__ticket_detach(struct ticket *t) {
  if (!t->conn)
    return;
  for (struct ticket **p = &t->conn->tickets; *p; p = &(*p)->next) {
    if (*p == t) {
      *p = t->next;
      break;
    }
  }
  t->conn = NULL;
}

void chat__ticket_free(struct ticket *t) {
  chat__ticket_detach(t);
  for (int i = 0; i < t->event_count; i++)
    json_decref(t->events[i]);
  t->slot->tickets--;
  free(t);
}

static void publish(struct chat *c, struct chat_room *slot, json_t *ev) {
  char *text = json_dumps(ev, JSON_COMPACT);
  if (!text)
    return;
  if (!c->bus || bus_publish(c->bus, slot->channel, text, strlen(text)) != 0) {
    /* no bus (tests) or it refused: this node still shows it */
    if (slot->room)
      room_deliver(slot->room, ev, chat__wall_ms());
  }
  free(text);
}

/* The archive has answered for every record: publish and ack, or say
 * why not. A refusal is a busy server (try again later); a failed write
 * is the same to the client. Either way nothing is published, so no node
 * shows what this one did not store. */
static void answer(struct ticket *t) {
  bool ok = !t->refused && !t->failed;
  if (ok) {
    for (int i = 0; i < t->event_count; i++)
      publish(t->chat, t->slot, t->events[i]);
  }
  if (t->conn) {
    if (t->refused)
      chat__reply_error(t->conn, t->nonce, ROOM_RATE_LIMITED, "server busy", 1000);
    else if (t->failed)
      chat__reply_error(t->conn, t->nonce, ROOM_RATE_LIMITED, "not stored, try again", 1000);
    else if (t->error_code)
      chat__reply(t->conn, chat_error_json(t->nonce, t->error_code, "sent for review", -1));
    else
      chat__reply(t->conn, chat_ack_json(t->nonce, t->id[0] ? t->id : NULL));
  }
  chat__ticket_free(t);
}

void chat__ticket_record_done(void *opaque, int ok) {
  struct ticket *t = opaque;
  if (!ok)
    t->failed = true;
  if (--t->pending == 0 && t->sealed)
    answer(t);
}

void chat__ticket_submitted(struct ticket *t, int rc, unsigned accepted) {
  t->pending += accepted;
  if (rc < 0)
    t->refused = true;
}

void chat__ticket_seal(struct ticket *t) {
  t->sealed = true;
  if (t->pending == 0)
    answer(t);
}

void chat__ticket_event(struct ticket *t, json_t *ev /* stolen */) {
  if (ev && t->event_count < CHAT_EVENTS_PER_OP)
    t->events[t->event_count++] = ev;
  else
    json_decref(ev);
}
