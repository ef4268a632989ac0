/* test_chat_service: the chat service's start and asynchronous stop,
 * without a libwebsockets context: chat_stop releases the tick, archive,
 * bus and filter and calls back once, after the last of them, whether the
 * rooms still hold members (the lws context still up) or not (it went
 * first); nothing of the service is left on the loop afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "chat/chat.h"
#include "chat/chat_int.h"
#include "chat/room.h"
#include "config/config.h"

static struct config cfg; /* large: not on the stack */

struct fixture {
  char dir[64];
  uv_loop_t loop;
  struct chat *chat;
  int stopped;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/galarelay-service-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  assert_int_equal(uv_loop_init(&f->loop), 0);
  config_defaults(&cfg);
  snprintf(cfg.server.state_dir, sizeof cfg.server.state_dir, "%s", f->dir);
  struct chat_sections s = {&cfg.chat, &cfg.server, &cfg.redis, cfg.channels, cfg.channel_count};
  f->chat = chat_start(&f->loop, &s);
  assert_non_null(f->chat);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  assert_int_equal(uv_loop_close(&f->loop), 0); /* nothing of the service left */
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

static void on_stopped(void *arg) { ((struct fixture *)arg)->stopped++; }

static void stop_and_run(struct fixture *f) {
  chat_stop(f->chat, on_stopped, f);
  assert_int_equal(f->stopped, 0); /* its handles close as the loop runs */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(f->stopped, 1);
}

static void test_stop_without_members(void **state) {
  struct fixture *f = *state;
  assert_true(cfg.channel_count > 0);
  int members = -1;
  assert_int_equal(chat_room_counts(f->chat, cfg.channels[0].name, &members), 0);
  assert_int_equal(members, 0);
  assert_int_equal(chat_room_counts(f->chat, "no-such-channel", &members), -ENOENT);
  stop_and_run(f);
}

/* A member whose connection is still open when the service stops (the
 * caller stopped chat before its lws context): flushed, closed, detached
 * from its room before the room goes. */
static void test_stop_with_members(void **state) {
  struct fixture *f = *state;
  struct chat_conn conn;
  memset(&conn, 0, sizeof conn);
  conn.slot = &f->chat->rooms[0];
  conn.m.transport = &conn;
  snprintf(conn.m.addr, sizeof conn.m.addr, "192.0.2.9");
  assert_non_null(conn.slot->room);
  assert_int_equal(room_join(conn.slot->room, &conn.m), 0);
  stop_and_run(f);
  assert_null(conn.m.room); /* its close callback will find nothing to leave */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_stop_without_members, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_with_members, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
