/* RTMP door: admission of newcomers, who makes room for them, the player
 * limit and the memory ceiling, played out on entries without sockets the
 * way rtmp_server drives them (enter as unauthenticated, check, close the
 * named victim, check again). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "relay/rtmp_door.h"

#define N 64

struct table {
  struct rtmp_door door;
  struct rtmp_door_entry e[N];
  uint64_t now;
  int evicted[RTMP_DOOR_VERDICTS];
};

/* The server's accept path: enter, then close victims until admitted.
 * Returns the verdict that ended it (ADMIT or REFUSE_FULL). */
static enum rtmp_door_verdict arrive(struct table *t, int i, const char *ip, const struct rtmp_door_limits *lim) {
  assert_int_equal(rtmp_door_set(&t->door, &t->e[i], RTMP_DOOR_UNAUTH, ip, ++t->now), 0);
  for (;;) {
    struct rtmp_door_entry *victim;
    enum rtmp_door_verdict v = rtmp_door_check(&t->door, &t->e[i], lim, &victim);
    if (v == RTMP_DOOR_ADMIT)
      return v;
    if (!victim) {
      rtmp_door_set(&t->door, &t->e[i], RTMP_DOOR_NONE, NULL, t->now);
      return v;
    }
    assert_ptr_not_equal(victim, &t->e[i]);
    assert_int_equal(victim->cls, RTMP_DOOR_UNAUTH);
    t->evicted[v]++;
    rtmp_door_set(&t->door, victim, RTMP_DOOR_NONE, NULL, t->now);
  }
}

/* Distinct documentation addresses, one per i. */
static const char *addr(int i) {
  static char ip[32];
  snprintf(ip, sizeof ip, "203.0.113.%d", i);
  return ip;
}

static void table_init(struct table *t) {
  memset(t, 0, sizeof *t);
  rtmp_door_init(&t->door);
}

/* 60 idle connections from one address with a per-address cap of 16: the
 * table never holds more than 16 of them, the newest stay, and one more
 * from the same address (the encoder) is admitted. */
static void test_per_address_cap(void **state) {
  (void)state;
  struct table t;
  table_init(&t);
  struct rtmp_door_limits lim = {.max_connections = 1000, .per_address = 16, .reserve = 16};
  for (int i = 0; i < 60; i++)
    assert_int_equal(arrive(&t, i, "127.0.0.1", &lim), RTMP_DOOR_ADMIT);
  assert_int_equal(rtmp_door_count(&t.door, RTMP_DOOR_UNAUTH), 16);
  assert_int_equal(t.evicted[RTMP_DOOR_EVICT_PER_ADDRESS], 44);
  for (int i = 0; i < 44; i++)
    assert_int_equal(t.e[i].cls, RTMP_DOOR_NONE); /* the oldest went first */
  for (int i = 44; i < 60; i++)
    assert_int_equal(t.e[i].cls, RTMP_DOOR_UNAUTH);
  /* another address is not touched by that flood */
  assert_int_equal(arrive(&t, 60, "10.0.0.7", &lim), RTMP_DOOR_ADMIT);
  assert_int_equal(arrive(&t, 61, "127.0.0.1", &lim), RTMP_DOOR_ADMIT);
  assert_int_equal(t.e[60].cls, RTMP_DOOR_UNAUTH);
  assert_int_equal(t.e[44].cls, RTMP_DOOR_NONE);
  for (int i = 0; i < N; i++)
    rtmp_door_set(&t.door, &t.e[i], RTMP_DOOR_NONE, NULL, 0);
  assert_int_equal(rtmp_door_total(&t.door), 0);
  rtmp_door_free(&t.door);
}

/* A full table makes room from the address holding the most
 * unauthenticated connections, not from the oldest one overall (which is
 * the encoder that connected first here). */
static void test_full_table_evicts_the_biggest_address(void **state) {
  (void)state;
  struct table t;
  table_init(&t);
  struct rtmp_door_limits lim = {.max_connections = 10, .per_address = 16, .reserve = 2};
  assert_int_equal(arrive(&t, 0, "192.0.2.1", &lim), RTMP_DOOR_ADMIT); /* the encoder, handshaking */
  for (int i = 1; i < 10; i++)
    assert_int_equal(arrive(&t, i, "198.51.100.9", &lim), RTMP_DOOR_ADMIT);
  for (int i = 10; i < 40; i++) { /* one each, many addresses */
    assert_int_equal(arrive(&t, i, addr(i), &lim), RTMP_DOOR_ADMIT);
    assert_int_equal(rtmp_door_total(&t.door), 10);
  }
  /* the flood of single addresses took the 9 of the big one first, then
   * each other's oldest; the encoder is the oldest of all, and went only
   * once no address held more than one (as many as its own) */
  assert_int_equal(t.evicted[RTMP_DOOR_EVICT_FULL], 30);
  for (int i = 1; i < 10; i++)
    assert_int_equal(t.e[i].cls, RTMP_DOOR_NONE);
  assert_int_equal(t.e[39].cls, RTMP_DOOR_UNAUTH);
  rtmp_door_free(&t.door);

  /* with the big address still holding more than one, the encoder stays */
  table_init(&t);
  assert_int_equal(arrive(&t, 0, "192.0.2.1", &lim), RTMP_DOOR_ADMIT);
  for (int i = 1; i < 30; i++)
    assert_int_equal(arrive(&t, i, "198.51.100.9", &lim), RTMP_DOOR_ADMIT);
  assert_int_equal(t.e[0].cls, RTMP_DOOR_UNAUTH);
  assert_int_equal(rtmp_door_total(&t.door), 10);
  rtmp_door_free(&t.door);
}

/* Players stop at max_connections - stream keys - reserve; publishers are
 * never refused while an unauthenticated connection can make room; a table
 * of publishers and players only refuses a newcomer. */
static void test_player_limit_and_reserve(void **state) {
  (void)state;
  struct table t;
  table_init(&t);
  struct rtmp_door_limits lim = {.max_connections = 20, .per_address = 16, .reserve = 4, .stream_keys = 2};
  assert_int_equal(rtmp_door_player_limit(&lim), 14);
  int i = 0;
  for (; rtmp_door_check_play(&t.door, &lim) == RTMP_DOOR_ADMIT; i++) {
    assert_int_equal(arrive(&t, i, addr(i), &lim), RTMP_DOOR_ADMIT);
    rtmp_door_set(&t.door, &t.e[i], RTMP_DOOR_PLAYER, NULL, t.now);
  }
  assert_int_equal(i, 14);
  assert_int_equal(rtmp_door_check_play(&t.door, &lim), RTMP_DOOR_REFUSE_PLAYERS);
  /* idle connections fill the rest */
  for (; i < 40; i++)
    assert_int_equal(arrive(&t, i, "198.51.100.5", &lim), RTMP_DOOR_ADMIT);
  assert_int_equal(rtmp_door_total(&t.door), 20);
  /* both encoders connect and publish */
  assert_int_equal(arrive(&t, 40, "192.0.2.1", &lim), RTMP_DOOR_ADMIT);
  rtmp_door_set(&t.door, &t.e[40], RTMP_DOOR_PUBLISHER, NULL, t.now);
  assert_int_equal(arrive(&t, 41, "192.0.2.2", &lim), RTMP_DOOR_ADMIT);
  rtmp_door_set(&t.door, &t.e[41], RTMP_DOOR_PUBLISHER, NULL, t.now);
  assert_int_equal(rtmp_door_count(&t.door, RTMP_DOOR_PUBLISHER), 2);
  assert_int_equal(rtmp_door_count(&t.door, RTMP_DOOR_UNAUTH), 4);
  /* a table of publishers and players only: a newcomer is refused */
  lim.reserve = 0;
  lim.stream_keys = 0;
  struct table u;
  table_init(&u);
  assert_int_equal(arrive(&u, 0, "192.0.2.1", &lim), RTMP_DOOR_ADMIT);
  rtmp_door_set(&u.door, &u.e[0], RTMP_DOOR_PLAYER, NULL, u.now);
  lim.max_connections = 1;
  assert_int_equal(arrive(&u, 1, "192.0.2.1", &lim), RTMP_DOOR_REFUSE_FULL);
  assert_int_equal(u.e[1].cls, RTMP_DOOR_NONE);
  assert_int_equal(rtmp_door_total(&u.door), 1);
  rtmp_door_free(&u.door);
  rtmp_door_free(&t.door);
}

/* Over the memory ceiling: no new player, and the unauthenticated are held
 * to the reserve (a newcomer takes the oldest's place); a publisher still
 * gets in. */
static void test_memory_ceiling(void **state) {
  (void)state;
  struct table t;
  table_init(&t);
  struct rtmp_door_limits lim = {.max_connections = 1000, .per_address = 16, .reserve = 4, .over_memory = true};
  assert_int_equal(rtmp_door_check_play(&t.door, &lim), RTMP_DOOR_REFUSE_MEMORY);
  for (int i = 0; i < 10; i++)
    assert_int_equal(arrive(&t, i, addr(i), &lim), RTMP_DOOR_ADMIT);
  assert_int_equal(rtmp_door_count(&t.door, RTMP_DOOR_UNAUTH), 4);
  assert_int_equal(t.evicted[RTMP_DOOR_EVICT_MEMORY], 6);
  assert_int_equal(arrive(&t, 10, "192.0.2.1", &lim), RTMP_DOOR_ADMIT);
  rtmp_door_set(&t.door, &t.e[10], RTMP_DOOR_PUBLISHER, NULL, t.now);
  assert_int_equal(rtmp_door_count(&t.door, RTMP_DOOR_PUBLISHER), 1);
  /* under the ceiling again, plays start */
  lim.over_memory = false;
  assert_int_equal(rtmp_door_check_play(&t.door, &lim), RTMP_DOOR_ADMIT);
  rtmp_door_free(&t.door);
}

/* A publisher that stops is unauthenticated again, from that moment. */
static void test_back_to_unauthenticated(void **state) {
  (void)state;
  struct table t;
  table_init(&t);
  struct rtmp_door_limits lim = {.max_connections = 10, .per_address = 1, .reserve = 1};
  assert_int_equal(arrive(&t, 0, "192.0.2.1", &lim), RTMP_DOOR_ADMIT);
  rtmp_door_set(&t.door, &t.e[0], RTMP_DOOR_PUBLISHER, NULL, 5);
  assert_int_equal(arrive(&t, 1, "192.0.2.1", &lim), RTMP_DOOR_ADMIT); /* not counted against it */
  assert_int_equal(t.e[0].cls, RTMP_DOOR_PUBLISHER);
  t.now = 100;
  rtmp_door_set(&t.door, &t.e[0], RTMP_DOOR_UNAUTH, "192.0.2.1", t.now);
  assert_int_equal(t.e[0].since, 100);
  assert_int_equal(rtmp_door_count(&t.door, RTMP_DOOR_UNAUTH), 2);
  /* the next newcomer from there takes the oldest's place: e[1] */
  assert_int_equal(arrive(&t, 2, "192.0.2.1", &lim), RTMP_DOOR_ADMIT);
  assert_int_equal(t.e[1].cls, RTMP_DOOR_NONE);
  assert_int_equal(t.e[0].cls, RTMP_DOOR_NONE);
  assert_int_equal(rtmp_door_count(&t.door, RTMP_DOOR_UNAUTH), 1);
  assert_string_equal(rtmp_door_reason(RTMP_DOOR_EVICT_PER_ADDRESS), "per_address");
  rtmp_door_free(&t.door);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_per_address_cap),          cmocka_unit_test(test_full_table_evicts_the_biggest_address),
      cmocka_unit_test(test_player_limit_and_reserve), cmocka_unit_test(test_memory_ceiling),
      cmocka_unit_test(test_back_to_unauthenticated),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
