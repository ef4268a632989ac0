/* chat_archive: which archive records a chat event makes, written once
 * for both paths. Internal to chat/ (chat__ names).
 *
 * Every node's archive holds the whole conversation: the node that took a
 * request stores its records before it publishes the events (through its
 * ticket, chat_requests.c), and every other node stores the same records
 * when the bus delivers the events (chat__archive_remote). Both describe
 * what to store as a struct chat_records, and chat__archive_records turns
 * that into archive submits; the answer is checked on both paths (a
 * ticket refuses to ack, the remote path logs).
 *
 * Strings in a struct chat_records are borrowed for the call (the archive
 * copies what it keeps). Loop thread only. */
#ifndef GALARELAY_CHAT_CHAT_ARCHIVE_INT_H
#define GALARELAY_CHAT_CHAT_ARCHIVE_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "chat/archive.h"

struct chat;
struct chat_room;
struct room;

enum chat_record_kind {
  CHAT_RECORD_COMMENT,   /* comment, visible or held (comment.status) */
  CHAT_RECORD_DELETE,    /* id becomes deleted */
  CHAT_RECORD_REJECT,    /* held id becomes rejected */
  CHAT_RECORD_APPROVE,   /* held id becomes visible under new_id (the approving node) */
  CHAT_RECORD_DROP_HELD, /* held id dropped: its visible copy came as a comment (other nodes) */
  CHAT_RECORD_BAN,       /* user and the addresses the room knows for it, until until_ms
                            (0 = for good); the user's visible comments deleted */
  CHAT_RECORD_UNBAN,     /* user and the addresses the room knows for it */
  CHAT_RECORD_WORDS,     /* banned words added and removed (the global list) */
  CHAT_RECORD_STATE,     /* slow, hold, pinned */
  CHAT_RECORD_CLEAR,     /* visible comments with ts <= ts_ms become deleted */
};

struct chat_records {
  enum chat_record_kind kind;
  const char *channel;
  int64_t ts_ms;
  const char *id;                  /* DELETE, REJECT, APPROVE, DROP_HELD */
  const char *new_id;              /* APPROVE */
  const char *user;                /* BAN, UNBAN */
  const char *by;                  /* BAN: the moderator, or node:ORIGIN */
  int64_t until_ms;                /* BAN */
  struct archive_comment comment;  /* COMMENT (its channel: channel) */
  bool if_new;                     /* COMMENT: a stored one stays (the bus may repeat) */
  const json_t *add, *remove;      /* WORDS: arrays of strings, NULL = none */
  struct archive_room_state state; /* STATE (its channel: channel) */
};

/* Submits r's records, each with done(opaque), in order; room gives the
 * addresses of a banned user. *accepted (may be NULL) counts the records
 * the archive took: done runs once for each of them. Returns 0, or
 * -EAGAIN when the archive refused one (the others are still submitted). */
int chat__archive_records(struct archive *a, struct room *room, const struct chat_records *r, archive_done_fn done,
                          void *opaque, unsigned *accepted);

/* The records of an event as the bus carries it (docs/protocol.md), for a
 * node that did not take the request; by names that node (node:ORIGIN).
 * Returns 0 with *out filled (strings borrowed from ev), or -ENOENT for an
 * event that stores nothing. */
int chat__records_from_event(const json_t *ev, const char *channel, const char *by, int64_t now_ms,
                             struct chat_records *out);

/* Archive an event another node published (origin), which room_deliver
 * accepted (its shape is checked there). Never waits; a refusal or a
 * failed write is logged: it costs only this node's copy of the event
 * after a restart. */
void chat__archive_remote(struct chat *c, struct chat_room *slot, const json_t *ev, const char *origin);

#endif
