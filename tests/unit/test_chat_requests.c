/* test_chat_requests: a client's operation is answered from what the
 * archive said about every record of it. A moderator's ban writes several
 * records (the user's ban, their comments deleted, the moderator log
 * line); when the archive fails one of them the moderator must get an
 * error and the event must not be published, even though the last record
 * (the log line) was stored. A comment is the same with one record.
 *
 * The requests run without sockets: a room, one member standing for the
 * connection, and a real archive in a scratch folder; a trigger in its
 * database makes the chosen table refuse writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "chat/archive.h"
#include "chat/chat_archive_int.h"
#include "chat/chat_int.h"
#include "chat/chat_requests_int.h"
#include "chat/protocol.h"
#include "chat/room.h"
#include "config/config.h"

struct fixture {
  char dir[64];
  char path[128];
  uv_loop_t loop;
  struct chat chat;
  struct chat_conn conn;
  int words_events;
};

static void op_wake(void *opaque, struct room_member *m) { (void)opaque, (void)m; }
static void op_kick(void *opaque, struct room_member *m, int code, const char *reason) {
  (void)opaque, (void)m, (void)code, (void)reason;
}
static void op_words(void *opaque, struct room *r, const json_t *ev) {
  (void)r, (void)ev;
  ((struct fixture *)opaque)->words_events++;
}
static const struct room_ops ops = {op_wake, op_kick, op_words};

static struct config cfg; /* large: not on the stack */

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/galarelay-requests-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof f->path, "%s/chat.sqlite3", f->dir);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  config_defaults(&cfg);
  struct chat *c = &f->chat;
  c->loop = &f->loop;
  c->cfg = (struct chat_sections){&cfg.chat, &cfg.server, &cfg.redis, cfg.channels, cfg.channel_count};
  room_params_from_config(&c->params, &cfg.chat, 0);
  struct archive_params ap = {.path = f->path, .commit_ms = 1, .batch = 64};
  c->archive = archive_open(&f->loop, &ap);
  assert_non_null(c->archive);
  struct chat_room *slot = &c->rooms[0];
  snprintf(slot->channel, sizeof slot->channel, "demo");
  slot->room = room_new("demo", &c->params, &ops, f, NULL);
  assert_non_null(slot->room);
  struct chat_conn *conn = &f->conn;
  conn->slot = slot;
  conn->m.transport = conn;
  conn->m.conn_id = 1;
  snprintf(conn->m.addr, sizeof conn->m.addr, "192.0.2.7");
  snprintf(conn->m.user_id, sizeof conn->m.user_id, "mod-1");
  snprintf(conn->m.name, sizeof conn->m.name, "mod");
  conn->m.role = ROOM_MODERATOR;
  conn->m.named = true;
  snprintf(conn->who, sizeof conn->who, "token:00000000");
  assert_int_equal(room_join(slot->room, &conn->m), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  struct chat *c = &f->chat;
  if (c->archive)
    archive_stop(c->archive, NULL, NULL);
  room_leave(&f->conn.m);
  room_free(c->rooms[0].room);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

/* Writes to `table` fail from now on (the archive's writer sees the
 * trigger at its next statement). */
static void refuse_writes_to(struct fixture *f, const char *table) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  char sql[256];
  snprintf(sql, sizeof sql, "CREATE TRIGGER refuse_%s BEFORE INSERT ON %s BEGIN SELECT RAISE(ABORT, 'refused'); END;",
           table, table);
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK)
    fail_msg("trigger: %s", err ? err : "?");
  sqlite3_close(db);
}

/* The first reply queued to the member, run the loop until there is one
 * (the archive answers through it). Caller decrefs. */
static json_t *next_reply(struct fixture *f) {
  for (int i = 0; i < 2000; i++) {
    struct room_frame *fr = room_member_take(&f->conn.m);
    if (fr) {
      json_t *msg = json_loadb((const char *)room_frame_payload(fr, 0), fr->len, 0, NULL);
      room_frame_unref(fr);
      assert_non_null(msg);
      return msg;
    }
    uv_run(&f->loop, UV_RUN_NOWAIT);
    uv_sleep(1);
  }
  fail_msg("no reply from the request");
  return NULL;
}

static void request(struct fixture *f, const char *text) {
  struct chat_msg msg;
  struct chat_parse_error err;
  assert_int_equal(chat_protocol_parse(text, strlen(text), &msg, &err), CHAT_PARSE_OK);
  if (msg.type == CHAT_MSG_MOD)
    chat__on_mod(&f->chat, &f->conn, &msg);
  else
    chat__on_comment(&f->chat, &f->conn, &msg);
  chat_msg_free(&msg);
}

static void assert_reply_type(json_t *msg, const char *type, const char *nonce) {
  const char *got = json_string_value(json_object_get(msg, "type"));
  if (!got || strcmp(got, type)) {
    char *text = json_dumps(msg, JSON_COMPACT);
    fail_msg("expected a reply of type %s, got %s", type, text ? text : "?");
  }
  assert_string_equal(json_string_value(json_object_get(msg, "nonce")), nonce);
}

/* Nothing published: the room has no ban event to send. */
static bool room_has_ban_pending(struct fixture *f) {
  room_tick(f->chat.rooms[0].room, 1);
  bool found = false;
  struct room_frame *fr;
  while ((fr = room_member_take(&f->conn.m))) {
    if (memmem(room_frame_payload(fr, 0), fr->len, "\"ban\"", 5))
      found = true;
    room_frame_unref(fr);
  }
  return found;
}

static void test_ban_stored_is_acked(void **state) {
  struct fixture *f = *state;
  request(f, "{\"type\":\"mod\",\"nonce\":\"b1\",\"action\":\"ban\",\"user\":\"troll\"}");
  json_t *r = next_reply(f);
  assert_reply_type(r, "ack", "b1");
  json_decref(r);
  assert_true(room_has_ban_pending(f));
}

static void test_ban_failed_record_is_not_acked(void **state) {
  struct fixture *f = *state;
  refuse_writes_to(f, "bans"); /* the log line still goes in: mod_log */
  request(f, "{\"type\":\"mod\",\"nonce\":\"b2\",\"action\":\"ban\",\"user\":\"troll\"}");
  json_t *r = next_reply(f);
  assert_reply_type(r, "error", "b2");
  json_decref(r);
  assert_false(room_has_ban_pending(f));
}

static void test_words_failed_record_is_not_acked(void **state) {
  struct fixture *f = *state;
  refuse_writes_to(f, "banned_words");
  request(f, "{\"type\":\"mod\",\"nonce\":\"w1\",\"action\":\"words_add\",\"words\":[\"spam\"]}");
  json_t *r = next_reply(f);
  assert_reply_type(r, "error", "w1");
  json_decref(r);
  room_tick(f->chat.rooms[0].room, 1);
  assert_int_equal(f->words_events, 0);
}

static void test_comment_failed_is_not_acked(void **state) {
  struct fixture *f = *state;
  refuse_writes_to(f, "comments");
  request(f, "{\"type\":\"comment\",\"nonce\":\"c1\",\"text\":\"hello\"}");
  json_t *r = next_reply(f);
  assert_reply_type(r, "error", "c1");
  json_decref(r);
}

static void test_comment_stored_is_acked(void **state) {
  struct fixture *f = *state;
  request(f, "{\"type\":\"comment\",\"nonce\":\"c2\",\"text\":\"hello\"}");
  json_t *r = next_reply(f);
  assert_reply_type(r, "ack", "c2");
  assert_non_null(json_string_value(json_object_get(r, "id")));
  json_decref(r);
}

/* ---- Events from other nodes: the same records, from the event */

static void wait_archive(struct fixture *f) {
  struct archive_stats st;
  for (int i = 0; i < 2000; i++) {
    archive_get_stats(f->chat.archive, &st);
    if (st.in_flight == 0)
      return;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    uv_sleep(1);
  }
  fail_msg("the archive did not finish");
}

static void remote(struct fixture *f, const char *text) {
  json_t *ev = json_loads(text, 0, NULL);
  assert_non_null(ev);
  chat__archive_remote(&f->chat, &f->chat.rooms[0], ev, "n2");
  json_decref(ev);
}

static int counted;
static const char *last_role, *last_by;
static char last_text[64];
static void count_comment(void *opaque, const struct archive_comment *c) {
  (void)opaque;
  counted++;
  last_role = c->role[0] == 'v' ? "viewer" : c->role;
  snprintf(last_text, sizeof last_text, "%s|%s", c->text, c->addr);
}
static void count_ban(void *opaque, const struct archive_ban *b) {
  (void)opaque;
  counted++;
  last_by = strcmp(b->by, "node:n2") ? "other" : "node:n2";
}
static void count_word(void *opaque, const char *channel, const char *word) {
  (void)opaque, (void)channel, (void)word;
  counted++;
}

static int count_comments(struct fixture *f, enum archive_status status) {
  counted = 0;
  assert_int_equal(archive_load_comments(f->chat.archive, "demo", status, 100, count_comment, NULL), 0);
  return counted;
}

static void test_remote_events_make_the_same_records(void **state) {
  struct fixture *f = *state;
  const char *comment =
      "{\"type\":\"comment\",\"id\":\"x1\",\"user\":{\"id\":\"u9\",\"name\":\"n\"},\"text\":\"hi\",\"ts\":5}";
  remote(f, comment);
  remote(f, comment); /* the bus may repeat an event: stored once */
  remote(f, "{\"type\":\"held\",\"comment\":{\"id\":\"x2\",\"user\":{\"id\":\"u8\",\"name\":\"m\","
            "\"role\":\"viewer\"},\"text\":\"later\",\"ts\":6}}");
  wait_archive(f);
  assert_int_equal(count_comments(f, ARCHIVE_VISIBLE), 1);
  assert_string_equal(last_role, "viewer");
  assert_string_equal(last_text, "hi|"); /* no address: it stays with the author's node */
  assert_int_equal(count_comments(f, ARCHIVE_HELD), 1);

  room_note_author(f->chat.rooms[0].room, "u9", "198.51.100.9");
  remote(f, "{\"type\":\"ban\",\"user\":\"u9\"}");
  remote(f, "{\"type\":\"words\",\"add\":[\"spam\",\"eggs\"]}");
  remote(f, "{\"type\":\"state\",\"slow\":5,\"hold\":true,\"pinned\":null}");
  remote(f, "{\"type\":\"resolved\",\"id\":\"x2\",\"action\":\"approve\",\"comment_id\":\"x3\"}");
  remote(f, "{\"type\":\"no such type\"}");
  wait_archive(f);
  assert_int_equal(count_comments(f, ARCHIVE_VISIBLE), 0); /* the banned user's comment */
  assert_int_equal(count_comments(f, ARCHIVE_HELD), 0);    /* approved elsewhere: dropped */
  counted = 0;
  assert_int_equal(archive_load_bans(f->chat.archive, "demo", 0, count_ban, NULL), 0);
  assert_int_equal(counted, 2); /* the user and the address the room knew */
  assert_string_equal(last_by, "node:n2");
  counted = 0;
  assert_int_equal(archive_load_words(f->chat.archive, NULL, count_word, NULL), 0);
  assert_int_equal(counted, 2);
  struct archive_room_state st;
  char pinned[64];
  assert_int_equal(archive_load_room_state(f->chat.archive, "demo", &st, pinned, sizeof pinned), 0);
  assert_int_equal(st.slow_seconds, 5);
  assert_int_equal(st.hold, 1);
}

static void test_records_from_event_knows_what_stores_nothing(void **state) {
  (void)state;
  struct chat_records r;
  json_t *ev = json_loads("{\"type\":\"dropped\",\"batches\":2}", 0, NULL);
  assert_int_equal(chat__records_from_event(ev, "demo", "node:n2", 1, &r), -ENOENT);
  json_decref(ev);
  ev = json_loads("{\"type\":\"comment\",\"id\":\"x1\"}", 0, NULL); /* no text */
  assert_int_equal(chat__records_from_event(ev, "demo", "node:n2", 1, &r), -ENOENT);
  json_decref(ev);
  ev = json_loads("{\"type\":\"timeout\",\"user\":\"u\",\"until\":77}", 0, NULL);
  assert_int_equal(chat__records_from_event(ev, "demo", "node:n2", 1, &r), 0);
  assert_int_equal(r.kind, CHAT_RECORD_BAN);
  assert_int_equal(r.until_ms, 77);
  assert_string_equal(r.user, "u");
  json_decref(ev);
}

/* A refusal at submit (the in-flight bound) is an error too, and the
 * records the archive did take are waited for before the answer. */
static void test_refused_record_is_not_acked(void **state) {
  struct fixture *f = *state;
  archive_stop(f->chat.archive, NULL, NULL);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  struct archive_params ap = {.path = f->path, .commit_ms = 50, .batch = 64, .queue_max = 2};
  f->chat.archive = archive_open(&f->loop, &ap);
  assert_non_null(f->chat.archive);
  room_note_author(f->chat.rooms[0].room, "troll", "198.51.100.9");
  /* address ban, user ban, then refused: user_deleted and the log line */
  request(f, "{\"type\":\"mod\",\"nonce\":\"b3\",\"action\":\"ban\",\"user\":\"troll\"}");
  json_t *r = next_reply(f);
  assert_reply_type(r, "error", "b3");
  assert_string_equal(json_string_value(json_object_get(r, "message")), "server busy");
  json_decref(r);
  assert_false(room_has_ban_pending(f));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_ban_stored_is_acked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ban_failed_record_is_not_acked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_words_failed_record_is_not_acked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_comment_failed_is_not_acked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_comment_stored_is_acked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused_record_is_not_acked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_remote_events_make_the_same_records, setup, teardown),
      cmocka_unit_test(test_records_from_event_knows_what_stores_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
