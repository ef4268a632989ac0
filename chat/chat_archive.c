/* chat_archive: the archive records of chat events (chat_archive_int.h).
 *
 * One switch turns a typed description of an operation into archive
 * submits; the node that took the request fills it from the request
 * (chat_requests.c), every other node from the event the bus delivered
 * (chat__records_from_event, below), in bus order (the archive keeps
 * submission order). The moderator log stays with the node the moderator
 * was on. */
#include "chat/chat_archive_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "chat/chat_int.h"
#include "chat/room.h"
#include "chat/ticket_int.h"
#include "core/log.h"

/* Submits of one operation, counted: how many the archive took, and
 * whether it refused any. */
struct submits {
  struct archive *a;
  archive_done_fn done;
  void *opaque;
  unsigned accepted;
  bool refused;
};

static void count(struct submits *s, int rc) {
  if (rc == 0)
    s->accepted++;
  else
    s->refused = true;
}

struct addr_ban {
  struct submits *s;
  const struct chat_records *r;
  bool lift;
};

/* The addresses the room knows for the banned user: banned (or lifted)
 * with the user, so that a new account from the same line is kept out. */
static void addr_ban(void *opaque, const char *addr) {
  struct addr_ban *b = opaque;
  struct submits *s = b->s;
  if (b->lift) {
    count(s, archive_submit_unban(s->a, b->r->channel, NULL, addr, s->done, s->opaque));
    return;
  }
  struct archive_ban ban = {
      .channel = b->r->channel, .addr = addr, .until_ms = b->r->until_ms, .ts_ms = b->r->ts_ms, .by = b->r->by};
  count(s, archive_submit_ban(s->a, &ban, s->done, s->opaque));
}

static void words(struct submits *s, const json_t *list, int add) {
  for (size_t i = 0; i < json_array_size(list); i++) {
    const char *w = json_string_value(json_array_get(list, i));
    if (w)
      count(s, archive_submit_word(s->a, "", w, add, s->done, s->opaque));
  }
}

int chat__archive_records(struct archive *a, struct room *room, const struct chat_records *r, archive_done_fn done,
                          void *opaque, unsigned *accepted) {
  struct submits s = {a, done, opaque, 0, false};
  const char *ch = r->channel;
  switch (r->kind) {
  case CHAT_RECORD_COMMENT: {
    struct archive_comment c = r->comment;
    c.channel = ch;
    count(&s,
          r->if_new ? archive_submit_comment_if_new(a, &c, done, opaque) : archive_submit_comment(a, &c, done, opaque));
    break;
  }
  case CHAT_RECORD_DELETE: count(&s, archive_submit_status(a, ch, r->id, ARCHIVE_DELETED, done, opaque)); break;
  case CHAT_RECORD_REJECT: count(&s, archive_submit_status(a, ch, r->id, ARCHIVE_REJECTED, done, opaque)); break;
  case CHAT_RECORD_APPROVE: count(&s, archive_submit_approve(a, ch, r->id, r->new_id, done, opaque)); break;
  case CHAT_RECORD_DROP_HELD: count(&s, archive_submit_drop_held(a, ch, r->id, done, opaque)); break;
  case CHAT_RECORD_BAN:
  case CHAT_RECORD_UNBAN: {
    struct addr_ban b = {&s, r, r->kind == CHAT_RECORD_UNBAN};
    if (room)
      room_user_addrs(room, r->user, addr_ban, &b);
    if (b.lift) {
      count(&s, archive_submit_unban(a, ch, r->user, NULL, done, opaque));
      break;
    }
    struct archive_ban ban = {
        .channel = ch, .user_id = r->user, .until_ms = r->until_ms, .ts_ms = r->ts_ms, .by = r->by};
    count(&s, archive_submit_ban(a, &ban, done, opaque));
    /* the room deletes the user's comments from its history when the
     * event arrives; without this a restart would reload them */
    count(&s, archive_submit_user_deleted(a, ch, r->user, done, opaque));
    break;
  }
  case CHAT_RECORD_WORDS:
    words(&s, r->add, 1);
    words(&s, r->remove, 0);
    break;
  case CHAT_RECORD_STATE: {
    struct archive_room_state st = r->state;
    st.channel = ch;
    count(&s, archive_submit_room_state(a, &st, done, opaque));
    break;
  }
  case CHAT_RECORD_CLEAR: count(&s, archive_submit_clear(a, ch, r->ts_ms, done, opaque)); break;
  }
  if (accepted)
    *accepted = s.accepted;
  return s.refused ? -EAGAIN : 0;
}

/* ---- Events from other nodes */

static const char *ev_string(const json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }

/* A comment event's record, as the author's node stored it, less the
 * address (which never leaves that node). */
static int comment_records(const json_t *ev, enum archive_status status, struct chat_records *out) {
  const json_t *user = json_object_get(ev, "user");
  const char *id = ev_string(ev, "id"), *text = ev_string(ev, "text");
  if (!id || !text)
    return -ENOENT;
  out->kind = CHAT_RECORD_COMMENT;
  out->if_new = true;
  out->comment = (struct archive_comment){.id = id,
                                          .user_id = ev_string(user, "id"),
                                          .user_name = ev_string(user, "name"),
                                          .role = ev_string(user, "role"),
                                          .text = text,
                                          .ts_ms = (int64_t)json_integer_value(json_object_get(ev, "ts")),
                                          .addr = "",
                                          .status = status};
  if (!out->comment.role)
    out->comment.role = "viewer";
  return 0;
}

int chat__records_from_event(const json_t *ev, const char *channel, const char *by, int64_t now_ms,
                             struct chat_records *out) {
  const char *type = ev_string(ev, "type");
  *out = (struct chat_records){.channel = channel, .ts_ms = now_ms, .by = by, .id = ev_string(ev, "id")};
  if (!type)
    return -ENOENT;
  if (!strcmp(type, "comment"))
    return comment_records(ev, ARCHIVE_VISIBLE, out);
  if (!strcmp(type, "held"))
    return comment_records(json_object_get(ev, "comment"), ARCHIVE_HELD, out);
  if (!strcmp(type, "delete")) {
    out->kind = CHAT_RECORD_DELETE;
    return 0;
  }
  if (!strcmp(type, "clear")) {
    out->kind = CHAT_RECORD_CLEAR;
    return 0;
  }
  if (!strcmp(type, "resolved")) {
    const char *action = ev_string(ev, "action");
    if (action && !strcmp(action, "reject"))
      out->kind = CHAT_RECORD_REJECT;
    else if (action && !strcmp(action, "approve"))
      out->kind = CHAT_RECORD_DROP_HELD;
    else
      return -ENOENT;
    return 0;
  }
  if (!strcmp(type, "ban") || !strcmp(type, "timeout") || !strcmp(type, "unban")) {
    out->kind = !strcmp(type, "unban") ? CHAT_RECORD_UNBAN : CHAT_RECORD_BAN;
    out->user = ev_string(ev, "user");
    if (!strcmp(type, "timeout"))
      out->until_ms = (int64_t)json_integer_value(json_object_get(ev, "until"));
    return 0;
  }
  if (!strcmp(type, "words")) {
    out->kind = CHAT_RECORD_WORDS;
    out->add = json_object_get(ev, "add");
    out->remove = json_object_get(ev, "remove");
    return 0;
  }
  if (!strcmp(type, "state")) {
    const json_t *pinned = json_object_get(ev, "pinned");
    const char *pid = json_is_object(pinned) ? ev_string(pinned, "id") : NULL;
    out->kind = CHAT_RECORD_STATE;
    out->state = (struct archive_room_state){.slow_seconds = (int)json_integer_value(json_object_get(ev, "slow")),
                                             .hold = json_is_true(json_object_get(ev, "hold")),
                                             .pinned_id = pid ? pid : ""};
    return 0;
  }
  return -ENOENT;
}

/* A record of another node's event that the archive could not write. */
static void remote_done(void *opaque, int ok) {
  (void)opaque;
  if (!ok)
    log_warn("chat", "archive could not store an event from another node");
}

void chat__archive_remote(struct chat *c, struct chat_room *slot, const json_t *ev, const char *origin) {
  char by[32];
  snprintf(by, sizeof(by), "node:%s", origin);
  struct chat_records r;
  if (chat__records_from_event(ev, slot->channel, by, chat__wall_ms(), &r) != 0)
    return;
  if (chat__archive_records(c->archive, slot->room, &r, remote_done, NULL, NULL) != 0)
    log_warn("chat", "archive refused an event from another node channel=%s origin=%s type=%s", slot->channel, origin,
             json_string_value(json_object_get(ev, "type")));
}
