/* chat_requests: what a client asks: hello (name, JWT, moderator token),
 * comment (room checks, archive, then publish and ack) and the moderator
 * actions (each its archive records and the events published after the
 * commit, then the moderator log line). Every record of an operation is
 * submitted on its ticket, which answers once the archive has answered for
 * all of them (ticket_int.h). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_requests_int.h"

#include "chat/archive.h"
#include "chat/chat_archive_int.h"
#include "chat/chat_int.h"
#include "chat/filter.h"
#include "chat/jwt.h"
#include "chat/ticket_int.h"
#include "core/log.h"

/* ---- hello */

static bool in_tokens(const struct config_tokens *list, const char *token) {
  size_t n = strlen(token);
  for (int i = 0; i < list->count; i++) {
    const char *t = list->token[i];
    if (*t && strlen(t) == n && CRYPTO_memcmp(t, token, n) == 0)
      return true;
  }
  return false;
}

/* A [chat] token moderates every channel; a [channel NAME] one only its
 * own. Read from the current config at each hello, so SIGHUP applies. */
static bool is_moderator_token(const struct chat_sections *cfg, const char *channel, const char *token) {
  if (in_tokens(&cfg->chat->moderator_tokens, token))
    return true;
  for (int i = 0; i < cfg->channel_count; i++)
    if (!strcmp(cfg->channels[i].name, channel))
      return in_tokens(&cfg->channels[i].moderator_tokens, token);
  return false;
}

/* Another channel's moderator token: here its holder is a plain viewer
 * (as without a token), not a client with a bad token. */
static bool is_other_channel_token(const struct chat_sections *cfg, const char *token) {
  for (int i = 0; i < cfg->channel_count; i++)
    if (in_tokens(&cfg->channels[i].moderator_tokens, token))
      return true;
  return false;
}

/* Who a token moderator is, for the moderation log and the archive:
 * "token:" and the first 8 hex digits of the token's SHA-256. Stable
 * across connections and restarts, and says nothing of the token. */
static void token_who(const char *token, char *out, size_t size) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL) || n < 4) {
    snprintf(out, size, "token:?");
    return;
  }
  snprintf(out, size, "token:%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
}

/* Display name: sanitised, 1..ROOM_NAME_MAX code points, no banned word. */
static enum room_refusal check_name(struct chat *c, const char *raw, char *out, size_t outlen, const char **why) {
  size_t len;
  char *d = filter_sanitize(raw, strlen(raw), c->params.max_combining, &len);
  enum room_refusal r = ROOM_OK;
  if (!d || len == 0)
    r = ROOM_BAD_REQUEST, *why = "empty name";
  else if (chat_utf8_length(d, len) > ROOM_NAME_MAX || len >= outlen)
    r = ROOM_BAD_REQUEST, *why = "name too long";
  else if (c->filter && filter_check(c->filter, d, len))
    r = ROOM_FORBIDDEN, *why = "name not allowed";
  else
    memcpy(out, d, len + 1);
  free(d);
  return r;
}

void chat__on_hello(struct chat *c, struct chat_conn *conn, const struct chat_msg *msg) {
  const struct chat_sections *cfg = &c->cfg;
  struct room_member *m = &conn->m;
  char name[sizeof(m->name)] = "";
  const char *why = NULL;
  int64_t retry;
  /* before any work: a hello costs a name check, maybe an HMAC and a
   * welcome with the whole history */
  if (room_admit_hello(conn->slot->room, m, uv_now(c->loop), &retry) != ROOM_OK) {
    chat__reply_error(conn, msg->nonce, ROOM_RATE_LIMITED, "too many hellos", retry);
    return;
  }
  if (msg->name) {
    enum room_refusal r = check_name(c, msg->name, name, sizeof(name), &why);
    if (r != ROOM_OK) {
      chat__reply_error(conn, msg->nonce, r, why, -1);
      return;
    }
  }
  if (msg->token && is_moderator_token(cfg, conn->slot->channel, msg->token)) {
    m->role = ROOM_MODERATOR;
    m->named = true;
    token_who(msg->token, conn->who, sizeof(conn->who));
    if (!name[0] && !m->name[0])
      snprintf(name, sizeof(name), "moderator");
  } else if (msg->token && !is_other_channel_token(cfg, msg->token)) {
    struct jwt_claims cl;
    int jr = cfg->chat->auth_secret[0]
                 ? jwt_verify_hs256(msg->token, cfg->chat->auth_secret, chat__wall_ms() / 1000, CHAT_JWT_LEEWAY_S, &cl)
                 : JWT_BAD_SIGNATURE;
    if (jr != JWT_OK) {
      chat__reply_error(conn, msg->nonce, ROOM_FORBIDDEN, jr == JWT_EXPIRED ? "token expired" : "token not valid", -1);
      return;
    }
    if (!name[0] && cl.name[0] && check_name(c, cl.name, name, sizeof(name), &why) != ROOM_OK)
      name[0] = '\0';
    snprintf(m->user_id, sizeof(m->user_id), "%s", cl.sub);
    m->role = !strcmp(cl.role, "moderator") ? ROOM_MODERATOR : ROOM_VIEWER;
    snprintf(conn->who, sizeof(conn->who), "%s", cl.sub);
    m->authenticated = m->named = true;
    if (!name[0] && !m->name[0])
      snprintf(name, sizeof(name), "%s", cl.sub);
  } else if (name[0] && !cfg->chat->require_token) {
    m->named = true;
  }
  if (name[0])
    memcpy(m->name, name, sizeof(name));
  if (msg->compress)
    m->deflate = !strcmp(msg->compress, CHAT_COMPRESS_DEFLATE_RAW);
  if (msg->nonce)
    chat__reply(conn, chat_ack_json(msg->nonce, NULL));
  /* A hello with neither name nor token changes nothing a welcome shows
   * (an anonymous reader asking for compressed batches): no second
   * history for it. */
  if (msg->name || msg->token)
    room_send_welcome(conn->slot->room, m);
}

/* ---- comment */

/* An operation's records, on its ticket (nothing to store without an
 * archive: the ticket then answers at once). */
static void submit_records(struct chat *c, struct ticket *t, const struct chat_records *r) {
  if (!c->archive)
    return;
  unsigned accepted = 0;
  int rc = chat__archive_records(c->archive, t->slot->room, r, chat__ticket_record_done, t, &accepted);
  chat__ticket_submitted(t, rc, accepted);
}

static json_t *member_user(const struct room_member *m) {
  return chat_user_json(m->user_id, m->name, room_role_name(m->role));
}

void chat__on_comment(struct chat *c, struct chat_conn *conn, const struct chat_msg *msg) {
  struct room_member *m = &conn->m;
  struct room *room = conn->slot->room;
  if (!m->named) {
    room_count_refusal(room, ROOM_FORBIDDEN);
    chat__reply_error(conn, msg->nonce, ROOM_FORBIDDEN,
                      c->cfg.chat->require_token ? "a token is required to post" : "say hello with a name first", -1);
    return;
  }
  char *display;
  int64_t retry;
  int64_t now = chat__wall_ms();
  enum room_refusal why = room_admit_comment(room, m, msg->text, &display, &retry, uv_now(c->loop), now);
  if (why != ROOM_OK && why != ROOM_HELD) {
    chat__reply_error(conn, msg->nonce, why, NULL, retry);
    return;
  }
  struct ticket *t = chat__ticket_new(c, conn, msg->nonce);
  if (!t) {
    free(display);
    chat__reply_error(conn, msg->nonce, ROOM_RATE_LIMITED, "server busy", 1000);
    return;
  }
  char id[BUS_ID_LEN];
  chat__make_id(c, id);
  room_note_author(room, m->user_id, m->addr);
  json_t *ev = chat_comment_event(id, member_user(m), display, now);
  if (why == ROOM_HELD) {
    t->error_code = "held";
    chat__ticket_event(t, json_pack("{s:s, s:o}", "type", "held", "comment", ev));
  } else {
    snprintf(t->id, sizeof(t->id), "%s", id);
    chat__ticket_event(t, ev);
  }
  struct chat_records rec = {.kind = CHAT_RECORD_COMMENT,
                             .channel = conn->slot->channel,
                             .comment = {.id = id,
                                         .user_id = m->user_id,
                                         .user_name = m->name,
                                         .role = room_role_name(m->role),
                                         .text = display,
                                         .ts_ms = now,
                                         .addr = m->addr,
                                         .status = why == ROOM_HELD ? ARCHIVE_HELD : ARCHIVE_VISIBLE}};
  submit_records(c, t, &rec);
  chat__ticket_seal(t);
  free(display);
}

/* ---- mod */

/* The records of one action (at most two, written in this order) and its
 * events; returns a reason to refuse (bad_request), or NULL. */
static const char *mod_prepare(struct chat *c, struct chat_conn *conn, const struct chat_msg *msg, struct ticket *t,
                               struct chat_records rec[2], int *nrec) {
  struct room *room = conn->slot->room;
  int64_t now = chat__wall_ms();
  const json_t *found;
  struct chat_records *r = &rec[0];
  *r = (struct chat_records){.channel = conn->slot->channel, .ts_ms = now, .by = conn->who};
  *nrec = 1;
  switch (msg->action) {
  case CHAT_MOD_DELETE:
    chat__ticket_event(t, json_pack("{s:s, s:s}", "type", "delete", "id", msg->id));
    r->kind = CHAT_RECORD_DELETE;
    r->id = msg->id;
    return NULL;
  case CHAT_MOD_TIMEOUT:
  case CHAT_MOD_BAN:
  case CHAT_MOD_UNBAN: {
    bool lift = msg->action == CHAT_MOD_UNBAN;
    int64_t until = msg->action == CHAT_MOD_TIMEOUT ? now + msg->seconds * 1000 : 0;
    json_t *ev = json_pack("{s:s, s:s}", "type", chat_mod_action_name(msg->action), "user", msg->user);
    if (ev && msg->action == CHAT_MOD_TIMEOUT)
      json_object_set_new(ev, "until", json_integer(until));
    chat__ticket_event(t, ev);
    r->kind = lift ? CHAT_RECORD_UNBAN : CHAT_RECORD_BAN;
    r->user = msg->user;
    r->until_ms = until;
    return NULL;
  }
  case CHAT_MOD_SLOW:
  case CHAT_MOD_HOLD:
  case CHAT_MOD_PIN: {
    int slow = msg->action == CHAT_MOD_SLOW ? (int)msg->seconds : room_slow_seconds(room);
    bool hold = msg->action == CHAT_MOD_HOLD ? msg->on : room_hold(room);
    const json_t *pinned = room_pinned(room);
    if (msg->action == CHAT_MOD_PIN) {
      pinned = msg->id ? room_find_comment(room, msg->id) : NULL;
      if (msg->id && !pinned)
        return "no such comment";
    }
    chat__ticket_event(t, chat_state_json(slow, hold, pinned));
    const char *pid = pinned ? json_string_value(json_object_get(pinned, "id")) : "";
    r->kind = CHAT_RECORD_STATE;
    r->state = (struct archive_room_state){.slow_seconds = slow, .hold = hold, .pinned_id = pid};
    return NULL;
  }
  case CHAT_MOD_APPROVE:
  case CHAT_MOD_REJECT: {
    if (!(found = room_find_held(room, msg->id)))
      return "no such held comment";
    r->id = msg->id;
    if (msg->action == CHAT_MOD_REJECT) {
      chat__ticket_event(t, json_pack("{s:s, s:s, s:s}", "type", "resolved", "id", msg->id, "action", "reject"));
      r->kind = CHAT_RECORD_REJECT;
      return NULL;
    }
    /* Published now, so it gets an id of now: ids sort in publish order,
     * and the held id is older than every comment published while it
     * waited. Its ts stays the moment it was written about. The ack and
     * the moderators' "resolved" carry the new id. */
    char *published = t->id;
    chat__make_id(c, published);
    json_t *ev = json_deep_copy(found);
    if (ev)
      json_object_set_new(ev, "id", json_string(published));
    chat__ticket_event(t, ev);
    chat__ticket_event(t, json_pack("{s:s, s:s, s:s, s:s}", "type", "resolved", "id", msg->id, "action", "approve",
                                    "comment_id", published));
    r->kind = CHAT_RECORD_APPROVE;
    r->new_id = published;
    return NULL;
  }
  case CHAT_MOD_WORDS_ADD:
  case CHAT_MOD_WORDS_REMOVE: {
    bool add = msg->action == CHAT_MOD_WORDS_ADD;
    chat__ticket_event(t, json_pack("{s:s, s:O}", "type", "words", add ? "add" : "remove", msg->words));
    r->kind = CHAT_RECORD_WORDS;
    if (add)
      r->add = msg->words;
    else
      r->remove = msg->words;
    return NULL;
  }
  case CHAT_MOD_CLEAR:
    chat__ticket_event(t, json_pack("{s:s}", "type", "clear"));
    r->kind = CHAT_RECORD_CLEAR;
    if (room_pinned(room)) { /* the room unpins it too */
      rec[1] = (struct chat_records){
          .kind = CHAT_RECORD_STATE,
          .channel = r->channel,
          .state = {.slow_seconds = room_slow_seconds(room), .hold = room_hold(room), .pinned_id = ""}};
      *nrec = 2;
    }
    return NULL;
  }
  return "unknown action";
}

void chat__on_mod(struct chat *c, struct chat_conn *conn, const struct chat_msg *msg) {
  if (conn->m.role != ROOM_MODERATOR) {
    chat__reply_error(conn, msg->nonce, ROOM_FORBIDDEN, "moderators only", -1);
    return;
  }
  struct ticket *t = chat__ticket_new(c, conn, msg->nonce);
  if (!t) {
    chat__reply_error(conn, msg->nonce, ROOM_RATE_LIMITED, "server busy", 1000);
    return;
  }
  struct chat_records rec[2];
  int nrec = 0;
  const char *bad = mod_prepare(c, conn, msg, t, rec, &nrec);
  if (bad) {
    chat__reply_error(conn, msg->nonce, ROOM_BAD_REQUEST, bad, -1);
    chat__ticket_free(t);
    return;
  }
  const char *target = msg->id ? msg->id : msg->user ? msg->user : "";
  json_t *args = json_deep_copy(msg->root);
  json_object_del(args, "nonce");
  json_object_del(args, "type");
  char *detail = args ? json_dumps(args, JSON_COMPACT) : NULL;
  json_decref(args);
  struct archive_mod entry = {.channel = conn->slot->channel,
                              .ts_ms = chat__wall_ms(),
                              .moderator = conn->who,
                              .action = chat_mod_action_name(msg->action),
                              .target = target,
                              .detail = detail ? detail : ""};
  log_info("chat", "moderation channel=%s by=%s action=%s target=%s", entry.channel, entry.moderator, entry.action,
           target);
  for (int i = 0; i < nrec; i++)
    submit_records(c, t, &rec[i]);
  if (c->archive) {
    int rc = archive_submit_mod(c->archive, &entry, chat__ticket_record_done, t);
    chat__ticket_submitted(t, rc, rc == 0);
  }
  chat__ticket_seal(t);
  free(detail);
}
