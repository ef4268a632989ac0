/* test_chat_archive: group commit, completions on the loop thread, reload
 * after reopen, what a ban and a clear do to stored comments, the records
 * for events from other nodes (duplicate-tolerant insert, dropping a held
 * comment approved elsewhere), the in-flight
 * bound, drain on close, and a crash test (a child acks records then
 * SIGKILLs itself; every acked record is there). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "chat/archive.h"
#include "chat/idgen.h"
#include "core/buf.h"

struct fixture {
  char dir[64];
  char path[128];
  uv_loop_t loop;
  struct archive *a;
  uv_thread_t loop_thread;
  int acks, fails;
  int order_ok;
  int last_tag;
};

struct ticket {
  struct fixture *f;
  int tag;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/galarelay-archive-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof f->path, "%s/chat.sqlite3", f->dir);
  uv_loop_init(&f->loop);
  f->loop_thread = uv_thread_self();
  f->order_ok = 1;
  f->last_tag = -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  /* a failed assertion leaves the archive open: close it, or uv_run below
   * would wait on its async handle for ever instead of reporting */
  if (f->a)
    archive_stop(f->a, NULL, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

static struct archive *open_archive(struct fixture *f, int commit_ms, int batch, int qmax) {
  struct archive_params p = {.path = f->path, .commit_ms = commit_ms, .batch = batch, .queue_max = qmax};
  struct archive *a = archive_open(&f->loop, &p);
  assert_non_null(a);
  return a;
}

static void close_archive(struct fixture *f) {
  archive_stop(f->a, NULL, NULL);
  f->a = NULL;
}

static void on_done(void *opaque, int ok) {
  struct ticket *t = opaque;
  struct fixture *f = t->f;
  uv_thread_t self = uv_thread_self();
  assert_true(uv_thread_equal(&self, &f->loop_thread));
  if (t->tag <= f->last_tag)
    f->order_ok = 0;
  f->last_tag = t->tag;
  if (ok)
    f->acks++;
  else
    f->fails++;
}

static int submit_comment(struct fixture *f, struct ticket *t, int k, const char *channel) {
  char id[32], text[64];
  snprintf(id, sizeof id, "%021d", k);
  snprintf(text, sizeof text, "comment %d 新年快乐", k);
  struct archive_comment c = {.id = id,
                              .channel = channel,
                              .user_id = "u1",
                              .user_name = "小张",
                              .role = "viewer",
                              .text = text,
                              .ts_ms = 1000 + k,
                              .addr = "127.0.0.1",
                              .status = ARCHIVE_VISIBLE};
  t->f = f;
  t->tag = k;
  return archive_submit_comment(f->a, &c, on_done, t);
}

static void run_until(struct fixture *f, int want) {
  for (int spins = 0; f->acks + f->fails < want && spins < 100000; spins++)
    uv_run(&f->loop, UV_RUN_ONCE);
}

/* 200 records with a 20 ms window and a batch of 64: far fewer commits
 * than records, every completion ok, in order, on the loop thread. */
static void test_group_commit(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 20, 64, 0);
  struct ticket t[200];
  for (int k = 0; k < 200; k++)
    assert_int_equal(submit_comment(f, &t[k], k, "gala"), 0);
  run_until(f, 200);
  assert_int_equal(f->acks, 200);
  assert_true(f->order_ok);
  struct archive_stats s;
  archive_get_stats(f->a, &s);
  assert_int_equal(s.committed, 200);
  assert_int_equal(s.in_flight, 0);
  assert_true(s.commits >= 1 && s.commits <= 20);
  struct buf m;
  buf_init(&m);
  archive_metrics(f->a, &m);
  assert_non_null(strstr(m.data, "galarelay_chat_archive_commits_total"));
  assert_non_null(strstr(m.data, "galarelay_chat_archive_commit_seconds_bucket{le=\"+Inf\"} "));
  buf_free(&m);
  close_archive(f);
}

/* A duplicate id fails that record only; the rest of the batch commits. */
static void test_one_bad_record(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 5, 100, 0);
  struct ticket t[3];
  assert_int_equal(submit_comment(f, &t[0], 1, "gala"), 0);
  assert_int_equal(submit_comment(f, &t[1], 1, "gala"), 0);
  t[1].tag = 2;
  assert_int_equal(submit_comment(f, &t[2], 3, "gala"), 0);
  run_until(f, 3);
  assert_int_equal(f->acks, 2);
  assert_int_equal(f->fails, 1);
  close_archive(f);
}

struct collected {
  int n;
  char ids[64][32];
  char pinned[32];
};

static void collect_comment(void *opaque, const struct archive_comment *c) {
  struct collected *col = opaque;
  if (col->n < 64)
    snprintf(col->ids[col->n], sizeof col->ids[0], "%s", c->id);
  col->n++;
}

static void collect_ban(void *opaque, const struct archive_ban *b) {
  struct collected *col = opaque;
  if (col->n < 64)
    snprintf(col->ids[col->n], sizeof col->ids[0], "%s%s", b->user_id, b->addr);
  col->n++;
}

static void collect_word(void *opaque, const char *channel, const char *word) {
  struct collected *col = opaque;
  if (col->n < 64)
    snprintf(col->ids[col->n], sizeof col->ids[0], "%s:%s", channel, word);
  col->n++;
}

/* Everything kind of record, then close, reopen and load it back. */
static void test_reload_after_reopen(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 2, 16, 0);
  struct ticket t[48];
  int n = 0;
  for (int k = 0; k < 30; k++)
    assert_int_equal(submit_comment(f, &t[n++], k, k % 2 ? "gala" : "other"), 0);
  char id5[32];
  snprintf(id5, sizeof id5, "%021d", 5);
  t[n] = (struct ticket){f, 100};
  assert_int_equal(archive_submit_status(f->a, "gala", id5, ARCHIVE_DELETED, on_done, &t[n++]), 0);
  struct archive_mod m = {
      .channel = "gala", .ts_ms = 5, .moderator = "mod", .action = "delete", .target = id5, .detail = ""};
  t[n] = (struct ticket){f, 101};
  assert_int_equal(archive_submit_mod(f->a, &m, on_done, &t[n++]), 0);
  struct archive_ban b1 = {.channel = "gala", .user_id = "troll", .addr = "", .until_ms = 0, .ts_ms = 1, .by = "mod"};
  struct archive_ban b2 = {
      .channel = "gala", .user_id = "", .addr = "10.0.0.9", .until_ms = 10, .ts_ms = 2, .by = "mod"}; /* expired */
  struct archive_ban b3 = {.channel = "gala", .user_id = "gone", .addr = "", .until_ms = 0, .ts_ms = 3, .by = "mod"};
  t[n] = (struct ticket){f, 102};
  assert_int_equal(archive_submit_ban(f->a, &b1, on_done, &t[n++]), 0);
  t[n] = (struct ticket){f, 103};
  assert_int_equal(archive_submit_ban(f->a, &b2, on_done, &t[n++]), 0);
  t[n] = (struct ticket){f, 104};
  assert_int_equal(archive_submit_ban(f->a, &b3, on_done, &t[n++]), 0);
  t[n] = (struct ticket){f, 105};
  assert_int_equal(archive_submit_unban(f->a, "gala", "gone", "", on_done, &t[n++]), 0);
  t[n] = (struct ticket){f, 106};
  assert_int_equal(archive_submit_word(f->a, "", "spam", 1, on_done, &t[n++]), 0);
  t[n] = (struct ticket){f, 107};
  assert_int_equal(archive_submit_word(f->a, "gala", "ads", 1, on_done, &t[n++]), 0);
  t[n] = (struct ticket){f, 108};
  assert_int_equal(archive_submit_word(f->a, "gala", "gone", 1, on_done, &t[n++]), 0);
  t[n] = (struct ticket){f, 109};
  assert_int_equal(archive_submit_word(f->a, "gala", "gone", 0, on_done, &t[n++]), 0);
  struct archive_room_state rs = {.channel = "gala", .slow_seconds = 5, .hold = 1, .pinned_id = id5};
  t[n] = (struct ticket){f, 110};
  assert_int_equal(archive_submit_room_state(f->a, &rs, on_done, &t[n++]), 0);
  run_until(f, n);
  assert_int_equal(f->acks, n);
  close_archive(f);
  uv_run(&f->loop, UV_RUN_DEFAULT);

  f->a = open_archive(f, 2, 16, 0);
  struct collected col = {0};
  assert_int_equal(archive_load_comments(f->a, "gala", ARCHIVE_VISIBLE, 5, collect_comment, &col), 0);
  assert_int_equal(col.n, 5); /* the newest 5 of gala (odd k), oldest first */
  assert_string_equal(col.ids[0], "000000000000000000021");
  assert_string_equal(col.ids[4], "000000000000000000029");
  memset(&col, 0, sizeof col);
  assert_int_equal(archive_load_comments(f->a, "gala", ARCHIVE_VISIBLE, 100, collect_comment, &col), 0);
  assert_int_equal(col.n, 14); /* 15 odd, one deleted */
  memset(&col, 0, sizeof col);
  assert_int_equal(archive_load_comments(f->a, "gala", ARCHIVE_DELETED, 100, collect_comment, &col), 0);
  assert_int_equal(col.n, 1);
  assert_string_equal(col.ids[0], id5);

  memset(&col, 0, sizeof col);
  assert_int_equal(archive_load_bans(f->a, "gala", 100, collect_ban, &col), 0);
  assert_int_equal(col.n, 1);
  assert_string_equal(col.ids[0], "troll");

  memset(&col, 0, sizeof col);
  assert_int_equal(archive_load_words(f->a, NULL, collect_word, &col), 0);
  assert_int_equal(col.n, 2);
  assert_string_equal(col.ids[0], ":spam");
  assert_string_equal(col.ids[1], "gala:ads");

  struct archive_room_state got;
  char pinned[32];
  assert_int_equal(archive_load_room_state(f->a, "gala", &got, pinned, sizeof pinned), 0);
  assert_int_equal(got.slow_seconds, 5);
  assert_int_equal(got.hold, 1);
  assert_string_equal(got.pinned_id, id5);
  assert_int_equal(archive_load_room_state(f->a, "other", &got, pinned, sizeof pinned), -ENOENT);
  assert_string_equal(got.pinned_id, "");

  /* clear: every visible comment up to ts becomes deleted */
  struct ticket tc = {f, 200};
  f->last_tag = -1;
  assert_int_equal(archive_submit_clear(f->a, "gala", 1000000, on_done, &tc), 0);
  run_until(f, n + 1);
  memset(&col, 0, sizeof col);
  assert_int_equal(archive_load_comments(f->a, "gala", ARCHIVE_VISIBLE, 100, collect_comment, &col), 0);
  assert_int_equal(col.n, 0);
  close_archive(f);
}

/* approve re-keys the held comment to the id it was published with: it
 * loads as visible under the new id, sorted after what was published while
 * it waited; the held id is gone. A second approve of the same id (already
 * resolved) changes nothing. */
static void test_approve_rekeys(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 2, 16, 0);
  struct ticket t[6];
  struct archive_comment held = {.id = "000000000000000000010",
                                 .channel = "gala",
                                 .user_id = "u2",
                                 .user_name = "troll",
                                 .role = "viewer",
                                 .text = "please approve",
                                 .ts_ms = 500,
                                 .addr = "10.0.0.9",
                                 .status = ARCHIVE_HELD};
  t[0] = (struct ticket){f, 0};
  assert_int_equal(archive_submit_comment(f->a, &held, on_done, &t[0]), 0);
  assert_int_equal(submit_comment(f, &t[1], 11, "gala"), 0); /* published meanwhile */
  t[2] = (struct ticket){f, 12};
  assert_int_equal(archive_submit_approve(f->a, "gala", held.id, "000000000000000000012", on_done, &t[2]), 0);
  t[3] = (struct ticket){f, 13};
  assert_int_equal(archive_submit_approve(f->a, "gala", held.id, "000000000000000000013", on_done, &t[3]), 0);
  run_until(f, 4);
  assert_int_equal(f->acks, 4);
  struct collected col = {0};
  assert_int_equal(archive_load_comments(f->a, "gala", ARCHIVE_VISIBLE, 100, collect_comment, &col), 0);
  assert_int_equal(col.n, 2);
  assert_string_equal(col.ids[0], "000000000000000000011");
  assert_string_equal(col.ids[1], "000000000000000000012");
  memset(&col, 0, sizeof col);
  assert_int_equal(archive_load_comments(f->a, "gala", ARCHIVE_HELD, 100, collect_comment, &col), 0);
  assert_int_equal(col.n, 0);
  close_archive(f);
}

static int submit_as(struct fixture *f, struct ticket *t, int k, const char *channel, const char *user,
                     enum archive_status status) {
  char id[32];
  snprintf(id, sizeof id, "%021d", k);
  struct archive_comment c = {.id = id,
                              .channel = channel,
                              .user_id = user,
                              .user_name = user,
                              .role = "viewer",
                              .text = "x",
                              .ts_ms = 1000 + k,
                              .addr = "10.0.0.1",
                              .status = status};
  t->f = f;
  t->tag = k;
  return archive_submit_comment(f->a, &c, on_done, t);
}

static void expect_comments(struct fixture *f, const char *channel, enum archive_status status, int n, const int *ks) {
  struct collected col = {0};
  assert_int_equal(archive_load_comments(f->a, channel, status, 100, collect_comment, &col), 0);
  assert_int_equal(col.n, n);
  for (int k = 0; k < n; k++) {
    char id[32];
    snprintf(id, sizeof id, "%021d", ks[k]);
    assert_string_equal(col.ids[k], id);
  }
}

/* A ban/timeout deletes what the room takes out of its history: the user
 * id's visible comments in that channel, nobody else's (not even from the
 * same address), not in another channel; held ones stay held, as in the
 * room's review queue. Reloaded after a reopen, as a restart would. */
static void test_ban_deletes_user_comments(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 2, 16, 0);
  struct ticket t[8];
  assert_int_equal(submit_as(f, &t[0], 1, "gala", "troll", ARCHIVE_VISIBLE), 0);
  assert_int_equal(submit_as(f, &t[1], 2, "gala", "alice", ARCHIVE_VISIBLE), 0);
  assert_int_equal(submit_as(f, &t[2], 3, "gala", "troll", ARCHIVE_VISIBLE), 0);
  assert_int_equal(submit_as(f, &t[3], 4, "gala", "troll", ARCHIVE_HELD), 0);
  assert_int_equal(submit_as(f, &t[4], 5, "other", "troll", ARCHIVE_VISIBLE), 0);
  assert_int_equal(submit_as(f, &t[5], 6, "gala", "troll2", ARCHIVE_VISIBLE), 0);
  t[6] = (struct ticket){f, 7};
  assert_int_equal(archive_submit_user_deleted(f->a, "gala", "troll", on_done, &t[6]), 0);
  run_until(f, 7);
  assert_int_equal(f->acks, 7);
  assert_true(f->order_ok);
  close_archive(f);
  uv_run(&f->loop, UV_RUN_DEFAULT);

  f->a = open_archive(f, 2, 16, 0);
  expect_comments(f, "gala", ARCHIVE_VISIBLE, 2, (const int[]){2, 6});
  expect_comments(f, "gala", ARCHIVE_DELETED, 2, (const int[]){1, 3});
  expect_comments(f, "gala", ARCHIVE_HELD, 1, (const int[]){4});
  expect_comments(f, "other", ARCHIVE_VISIBLE, 1, (const int[]){5});
  close_archive(f);
}

/* clear deletes the visible comments only: a held one stays held (the
 * room keeps its review queue), and approving it afterwards stores it as
 * visible under its new id, so the acked approve survives a restart. */
static void test_clear_keeps_held(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 2, 16, 0);
  struct ticket t[8];
  assert_int_equal(submit_as(f, &t[0], 1, "gala", "alice", ARCHIVE_VISIBLE), 0);
  assert_int_equal(submit_as(f, &t[1], 2, "gala", "bob", ARCHIVE_HELD), 0);
  assert_int_equal(submit_as(f, &t[2], 3, "gala", "carol", ARCHIVE_HELD), 0);
  assert_int_equal(submit_as(f, &t[3], 4, "other", "alice", ARCHIVE_VISIBLE), 0);
  t[4] = (struct ticket){f, 5};
  assert_int_equal(archive_submit_clear(f->a, "gala", 1000000, on_done, &t[4]), 0);
  t[5] = (struct ticket){f, 6};
  assert_int_equal(
      archive_submit_approve(f->a, "gala", "000000000000000000002", "000000000000000000006", on_done, &t[5]), 0);
  run_until(f, 6);
  assert_int_equal(f->acks, 6);
  close_archive(f);
  uv_run(&f->loop, UV_RUN_DEFAULT);

  f->a = open_archive(f, 2, 16, 0);
  expect_comments(f, "gala", ARCHIVE_VISIBLE, 1, (const int[]){6});
  expect_comments(f, "gala", ARCHIVE_HELD, 1, (const int[]){3});
  expect_comments(f, "gala", ARCHIVE_DELETED, 1, (const int[]){1});
  expect_comments(f, "other", ARCHIVE_VISIBLE, 1, (const int[]){4});
  close_archive(f);
}

static int submit_if_new(struct fixture *f, struct ticket *t, int k, const char *user, enum archive_status status) {
  char id[32];
  snprintf(id, sizeof id, "%021d", k);
  struct archive_comment c = {.id = id,
                              .channel = "gala",
                              .user_id = user,
                              .user_name = user,
                              .role = "viewer",
                              .text = "from node 2",
                              .ts_ms = 1000 + k,
                              .addr = "",
                              .status = status};
  t->f = f;
  t->tag = k;
  return archive_submit_comment_if_new(f->a, &c, on_done, t);
}

/* Comments from another node: a duplicate id (the bus may deliver an
 * event twice around a Redis failure) is no failure and changes nothing,
 * so a comment deleted meanwhile stays deleted and a held one stays held;
 * new ids are stored with their status. */
static void test_comment_if_new_ignores_duplicate(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 2, 16, 0);
  struct ticket t[8];
  assert_int_equal(submit_as(f, &t[0], 1, "gala", "alice", ARCHIVE_VISIBLE), 0);
  t[1] = (struct ticket){f, 2};
  assert_int_equal(archive_submit_status(f->a, "gala", "000000000000000000001", ARCHIVE_DELETED, on_done, &t[1]), 0);
  assert_int_equal(submit_if_new(f, &t[2], 1, "alice", ARCHIVE_VISIBLE), 0);
  t[2].tag = 3;
  assert_int_equal(submit_if_new(f, &t[3], 4, "bob", ARCHIVE_VISIBLE), 0);
  assert_int_equal(submit_if_new(f, &t[4], 5, "bob", ARCHIVE_VISIBLE), 0);
  assert_int_equal(submit_if_new(f, &t[5], 6, "carol", ARCHIVE_HELD), 0);
  assert_int_equal(submit_if_new(f, &t[6], 6, "carol", ARCHIVE_VISIBLE), 0);
  t[6].tag = 7;
  assert_int_equal(submit_if_new(f, &t[7], 4, "bob", ARCHIVE_VISIBLE), 0);
  t[7].tag = 8;
  run_until(f, 8);
  assert_int_equal(f->acks, 8);
  assert_int_equal(f->fails, 0);
  assert_true(f->order_ok);
  close_archive(f);
  uv_run(&f->loop, UV_RUN_DEFAULT);

  f->a = open_archive(f, 2, 16, 0);
  expect_comments(f, "gala", ARCHIVE_VISIBLE, 2, (const int[]){4, 5});
  expect_comments(f, "gala", ARCHIVE_DELETED, 1, (const int[]){1});
  expect_comments(f, "gala", ARCHIVE_HELD, 1, (const int[]){6});
  close_archive(f);
}

/* An approve seen from another node: its comment event stored the visible
 * comment under the new id first (bus order), then the held row goes, so
 * a restart reloads it as neither held nor twice. Only a held row goes: a
 * visible comment with that id, or an unknown id, is left alone. */
static void test_drop_held(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 2, 16, 0);
  struct ticket t[8];
  assert_int_equal(submit_if_new(f, &t[0], 1, "bob", ARCHIVE_HELD), 0);
  assert_int_equal(submit_if_new(f, &t[1], 2, "carol", ARCHIVE_HELD), 0);
  assert_int_equal(submit_if_new(f, &t[2], 3, "alice", ARCHIVE_VISIBLE), 0);
  assert_int_equal(submit_if_new(f, &t[3], 4, "bob", ARCHIVE_VISIBLE), 0); /* 1 approved */
  t[4] = (struct ticket){f, 5};
  assert_int_equal(archive_submit_drop_held(f->a, "gala", "000000000000000000001", on_done, &t[4]), 0);
  t[5] = (struct ticket){f, 6};
  assert_int_equal(archive_submit_drop_held(f->a, "gala", "000000000000000000003", on_done, &t[5]), 0);
  t[6] = (struct ticket){f, 7};
  assert_int_equal(archive_submit_drop_held(f->a, "gala", "000000000000000000099", on_done, &t[6]), 0);
  t[7] = (struct ticket){f, 8};
  assert_int_equal(archive_submit_drop_held(f->a, "other", "000000000000000000002", on_done, &t[7]), 0);
  run_until(f, 8);
  assert_int_equal(f->acks, 8);
  assert_true(f->order_ok);
  close_archive(f);
  uv_run(&f->loop, UV_RUN_DEFAULT);

  f->a = open_archive(f, 2, 16, 0);
  expect_comments(f, "gala", ARCHIVE_VISIBLE, 2, (const int[]){3, 4});
  expect_comments(f, "gala", ARCHIVE_HELD, 1, (const int[]){2});
  close_archive(f);
}

/* queue_max in flight, then -1 at once, and no callback for the refused. */
static void test_full_queue_refuses(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 200, 1000, 8); /* long window: nothing commits meanwhile */
  struct ticket t[9];
  for (int k = 0; k < 8; k++)
    assert_int_equal(submit_comment(f, &t[k], k, "gala"), 0);
  assert_int_equal(submit_comment(f, &t[8], 8, "gala"), -EAGAIN);
  struct archive_stats s;
  archive_get_stats(f->a, &s);
  assert_int_equal(s.refused, 1);
  assert_int_equal(s.in_flight, 8);
  run_until(f, 8);
  assert_int_equal(f->acks, 8);
  /* room again once the completions have run */
  assert_int_equal(submit_comment(f, &t[8], 8, "gala"), 0);
  run_until(f, 9);
  assert_int_equal(f->acks, 9);
  close_archive(f);
}

/* close drains: a long window would hold records, close commits them all
 * and runs their completions before it returns. */
static void test_close_drains(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 60000, 100000, 0);
  struct ticket t[50];
  for (int k = 0; k < 50; k++)
    assert_int_equal(submit_comment(f, &t[k], k, "gala"), 0);
  close_archive(f);
  assert_int_equal(f->acks, 50);
  assert_true(f->order_ok);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  f->a = open_archive(f, 1, 1, 0);
  struct collected col = {0};
  assert_int_equal(archive_load_comments(f->a, "gala", ARCHIVE_VISIBLE, 1000, collect_comment, &col), 0);
  assert_int_equal(col.n, 50);
  /* closing: refused (f->a stays valid until the loop runs its close) */
  archive_stop(f->a, NULL, NULL);
  assert_int_equal(submit_comment(f, &t[0], 99, "gala"), -EAGAIN);
  f->a = NULL;
}

/* Crash: a child acks comments and writes each acked id to a pipe, then
 * SIGKILLs itself with more in flight. The parent finds every acked one. */
static int crash_pipe = -1;
static int crash_acked;

static void crash_done(void *opaque, int ok) {
  struct ticket *t = opaque;
  if (!ok)
    return;
  char id[32];
  snprintf(id, sizeof id, "%021d\n", t->tag);
  if (write(crash_pipe, id, 22) != 22)
    _exit(3);
  if (++crash_acked == 300)
    raise(SIGKILL);
}

static void test_crash_keeps_acked(void **state) {
  struct fixture *f = *state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    crash_pipe = fds[1];
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct archive_params p = {.path = f->path, .commit_ms = 2, .batch = 32};
    struct archive *a = archive_open(&loop, &p);
    if (!a)
      _exit(2);
    static struct ticket t[1000];
    for (int k = 0; k < 1000; k++) {
      char id[32];
      snprintf(id, sizeof id, "%021d", k);
      struct archive_comment c = {.id = id,
                                  .channel = "gala",
                                  .user_id = "u",
                                  .user_name = "n",
                                  .role = "viewer",
                                  .text = "x",
                                  .ts_ms = k,
                                  .addr = "a"};
      t[k].tag = k;
      if (archive_submit_comment(a, &c, crash_done, &t[k]) != 0)
        _exit(4);
      if (k % 100 == 99)
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(5); /* not reached: SIGKILL at 300 acks */
  }
  close(fds[1]);
  char acked[1000][22];
  int n = 0;
  char line[22];
  while (n < 1000 && read(fds[0], line, 22) == 22)
    memcpy(acked[n++], line, 22);
  close(fds[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  assert_true(n >= 300);

  f->a = open_archive(f, 1, 1, 0);
  struct collected col = {0};
  assert_int_equal(archive_load_comments(f->a, "gala", ARCHIVE_VISIBLE, 1000, collect_comment, &col), 0);
  assert_true(col.n >= n);
  /* acks come in order and rows sort by id: the first n rows are the acked */
  for (int k = 0; k < n && k < 64; k++) {
    acked[k][21] = '\0';
    assert_string_equal(col.ids[k], acked[k]);
  }
  close_archive(f);
}

static int submit_with_id(struct fixture *f, struct ticket *t, int tag, const char *id, enum archive_status status) {
  struct archive_comment c = {.id = id,
                              .channel = "gala",
                              .user_id = "u1",
                              .user_name = "小张",
                              .role = "viewer",
                              .text = id,
                              .ts_ms = tag,
                              .addr = "127.0.0.1",
                              .status = status};
  t->f = f;
  t->tag = tag;
  return archive_submit_comment(f->a, &c, on_done, t);
}

static void collect_id(void *opaque, const struct archive_comment *c) {
  char(*ids)[32] = opaque;
  for (int i = 0; i < 8; i++) {
    if (!ids[i][0]) {
      snprintf(ids[i], sizeof(ids[i]), "%s", c->id);
      return;
    }
  }
}

/* An archive written before the short ids (21 hex digits) and after
 * (chat/idgen's 13 characters): the history comes back in publish order,
 * the newest id is a new one (also when it was deleted: the floor of the
 * id generator at start) and a restart's ids sort after it. */
static void test_short_ids_after_hex_ids(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 2, 16, 0);
  struct idgen g;
  idgen_init(&g, 0x123456);
  char n1[IDGEN_LEN + 1], n2[IDGEN_LEN + 1], n3[IDGEN_LEN + 1];
  idgen_make(&g, 1764800000000ull, n1); /* made earlier by the clock than the hex ids below */
  idgen_make(&g, 1764800000000ull, n2);
  idgen_make(&g, 1764800000001ull, n3);
  const char *ids[] = {n2, "19ae2a628000000abcdef", n1, "19ae2a628ff0000abcdef", n3};
  struct ticket t[5];
  for (int k = 0; k < 5; k++)
    assert_int_equal(submit_with_id(f, &t[k], k, ids[k], k == 4 ? ARCHIVE_DELETED : ARCHIVE_VISIBLE), 0);
  run_until(f, 5);
  assert_int_equal(f->acks, 5);
  char got[8][32] = {{0}};
  assert_int_equal(archive_load_comments(f->a, "gala", ARCHIVE_VISIBLE, 3, collect_id, got), 0);
  /* the newest three, oldest first: the hex ones sort before the short */
  assert_string_equal(got[0], "19ae2a628ff0000abcdef");
  assert_string_equal(got[1], n1);
  assert_string_equal(got[2], n2);
  assert_string_equal(got[3], "");
  char newest[32];
  assert_int_equal(archive_newest_id(f->a, "gala", newest, sizeof(newest)), 1);
  assert_string_equal(newest, n3); /* deleted, still the newest */
  assert_int_equal(archive_newest_id(f->a, "other", newest, sizeof(newest)), 0);
  struct idgen restarted;
  idgen_init(&restarted, 0);
  assert_int_equal(idgen_floor(&restarted, n3), 0);
  char next[IDGEN_LEN + 1];
  idgen_make(&restarted, 1764799000000ull, next); /* the clock went back */
  assert_true(strcmp(n3, next) < 0);
  close_archive(f);
}

static void count_stopped(void *arg) { ++*(int *)arg; }

/* archive_stop drains synchronously (the completions run before it
 * returns) and releases asynchronously: the callback runs once, after
 * the handle closed and the archive was freed. */
static void test_stop_calls_back_once(void **state) {
  struct fixture *f = *state;
  f->a = open_archive(f, 5, 64, 0);
  struct archive_comment c = {.id = "s1",
                              .channel = "gala",
                              .user_id = "u",
                              .user_name = "n",
                              .role = "viewer",
                              .text = "t",
                              .ts_ms = 1,
                              .addr = "",
                              .status = ARCHIVE_VISIBLE};
  struct ticket t = {f, 0};
  assert_int_equal(archive_submit_comment(f->a, &c, on_done, &t), 0);
  int stopped = 0;
  archive_stop(f->a, count_stopped, &stopped);
  f->a = NULL;
  assert_int_equal(f->acks, 1);
  assert_int_equal(stopped, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(stopped, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_short_ids_after_hex_ids, setup, teardown),
      cmocka_unit_test_setup_teardown(test_one_bad_record, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload_after_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_approve_rekeys, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ban_deletes_user_comments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_clear_keeps_held, setup, teardown),
      cmocka_unit_test_setup_teardown(test_comment_if_new_ignores_duplicate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_drop_held, setup, teardown),
      cmocka_unit_test_setup_teardown(test_full_queue_refuses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_drains, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_calls_back_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crash_keeps_acked, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
