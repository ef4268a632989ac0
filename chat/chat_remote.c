/* chat_remote: archiving what other nodes did (chat_int.h).
 *
 * Each node's archive must hold the whole conversation, not only what its
 * own clients did: a restarted node reloads history, bans, words and room
 * state from its own database. The node that took a request archived it
 * before publishing (chat_requests.c); every other node archives the event
 * when the bus delivers it, here, with the same record kinds, in bus order
 * (the archive keeps submission order). The moderator log stays with the
 * node the moderator was on. Submits are asynchronous with no completion:
 * the loop never waits, and a refusal (queue full) costs only this node's
 * copy of that event after a restart; it is logged. */

#include <stdio.h>
#include <string.h>

#include "chat/archive.h"
#include "chat/chat_int.h"
#include "core/log.h"

struct remote_ban {
  struct chat *c;
  const char *channel;
  const char *by;
  int64_t until_ms;
  bool lift;
  int refused;
};

/* The addresses this node knows for the banned user, banned in memory by
 * room_deliver (apply_ban): archived too, as the origin does for its own. */
static void remote_addr_ban(void *opaque, const char *addr) {
  struct remote_ban *b = opaque;
  if (b->lift) {
    b->refused |= archive_submit_unban(b->c->archive, b->channel, NULL, addr, NULL, NULL);
    return;
  }
  struct archive_ban ban = {.channel = b->channel, .addr = addr, .until_ms = b->until_ms,
                            .ts_ms = chat__wall_ms(), .by = b->by};
  b->refused |= archive_submit_ban(b->c->archive, &ban, NULL, NULL);
}

static const char *ev_string(const json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

static int archive_remote_comment(struct archive *a, const char *channel, const json_t *ev,
                                  enum archive_status status) {
  const json_t *user = json_object_get(ev, "user");
  const char *id = ev_string(ev, "id"), *text = ev_string(ev, "text");
  if (!id || !text)
    return 0;
  struct archive_comment rec = {
      .id = id, .channel = channel, .user_id = ev_string(user, "id"),
      .user_name = ev_string(user, "name"), .role = ev_string(user, "role"), .text = text,
      .ts_ms = (int64_t)json_integer_value(json_object_get(ev, "ts")), .addr = "",
      .status = status};
  if (!rec.role)
    rec.role = "viewer";
  return archive_submit_comment_if_new(a, &rec, NULL, NULL);
}

static int archive_remote_words(struct archive *a, const json_t *ev) {
  int rc = 0;
  for (int add = 1; add >= 0; add--) {
    const json_t *list = json_object_get(ev, add ? "add" : "remove");
    for (size_t i = 0; i < json_array_size(list); i++) {
      const char *w = json_string_value(json_array_get(list, i));
      if (w)
        rc |= archive_submit_word(a, "", w, add, NULL, NULL);
    }
  }
  return rc;
}

void chat__archive_remote(struct chat *c, struct chat_room *slot, const json_t *ev,
                          const char *origin) {
  struct archive *a = c->archive;
  const char *ch = slot->channel;
  const char *type = ev_string(ev, "type"), *id = ev_string(ev, "id");
  char by[32];
  snprintf(by, sizeof(by), "node:%s", origin);
  int rc = 0;
  if (!strcmp(type, "comment")) {
    rc = archive_remote_comment(a, ch, ev, ARCHIVE_VISIBLE);
  } else if (!strcmp(type, "held")) {
    rc = archive_remote_comment(a, ch, json_object_get(ev, "comment"), ARCHIVE_HELD);
  } else if (!strcmp(type, "delete")) {
    rc = archive_submit_status(a, ch, id, ARCHIVE_DELETED, NULL, NULL);
  } else if (!strcmp(type, "clear")) {
    rc = archive_submit_clear(a, ch, chat__wall_ms(), NULL, NULL);
  } else if (!strcmp(type, "resolved")) {
    const char *action = ev_string(ev, "action");
    if (action && !strcmp(action, "reject"))
      rc = archive_submit_status(a, ch, id, ARCHIVE_REJECTED, NULL, NULL);
    else if (action && !strcmp(action, "approve"))
      rc = archive_submit_drop_held(a, ch, id, NULL, NULL);
  } else if (!strcmp(type, "ban") || !strcmp(type, "timeout") || !strcmp(type, "unban")) {
    const char *user = ev_string(ev, "user");
    struct remote_ban b = {c, ch, by, 0, !strcmp(type, "unban"), 0};
    if (!strcmp(type, "timeout"))
      b.until_ms = (int64_t)json_integer_value(json_object_get(ev, "until"));
    room_user_addrs(slot->room, user, remote_addr_ban, &b);
    rc = b.refused;
    if (b.lift) {
      rc |= archive_submit_unban(a, ch, user, NULL, NULL, NULL);
    } else {
      struct archive_ban ban = {.channel = ch, .user_id = user, .until_ms = b.until_ms,
                                .ts_ms = chat__wall_ms(), .by = by};
      rc |= archive_submit_ban(a, &ban, NULL, NULL);
      rc |= archive_submit_user_deleted(a, ch, user, NULL, NULL);
    }
  } else if (!strcmp(type, "words")) {
    rc = archive_remote_words(a, ev);
  } else if (!strcmp(type, "state")) {
    const json_t *pinned = json_object_get(ev, "pinned");
    const char *pid = json_is_object(pinned) ? ev_string(pinned, "id") : NULL;
    struct archive_room_state st = {
        .channel = ch, .slow_seconds = (int)json_integer_value(json_object_get(ev, "slow")),
        .hold = json_is_true(json_object_get(ev, "hold")), .pinned_id = pid ? pid : ""};
    rc = archive_submit_room_state(a, &st, NULL, NULL);
  }
  if (rc != 0)
    log_warn("chat", "archive refused an event from another node channel=%s origin=%s type=%s",
             ch, origin, type);
}

