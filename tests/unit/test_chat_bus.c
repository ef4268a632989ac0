/* test_chat_bus: the bus in local mode (order, no re-entry, subscriptions,
 * clean stop) and bus_make_id (fixed width, strictly increasing, so string
 * order = publish order), the signed envelope between nodes (seal, open,
 * every tampering refused) and the url/secret checks at start. The Redis
 * mode is in test_chat_bus_redis.c. */
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

#include "chat/bus.h"
#include "chat/idgen.h"
#include "chat/bus_envelope.h"
#include "config/config.h"
#include "core/buf.h"

struct sink {
  struct bus *bus;
  int n;
  char got[64][64];
  int in_deliver;
  int reentered;
  int republish; /* publish one more from inside the callback, once */
};

static void on_deliver(void *opaque, const struct bus_msg *m) {
  struct sink *s = opaque;
  if (s->in_deliver)
    s->reentered = 1;
  s->in_deliver = 1;
  if (s->n < 64)
    snprintf(s->got[s->n], sizeof s->got[0], "%s:%.*s", m->channel, (int)m->len, m->json);
  s->n++;
  assert_int_equal(m->local, 1);
  assert_string_equal(m->origin, bus_node_id(s->bus));
  if (s->republish) {
    s->republish = 0;
    assert_int_equal(bus_publish(s->bus, "gala", "\"again\"", 7), 0);
  }
  s->in_deliver = 0;
}

static struct config *local_config(void) {
  struct config *cfg = calloc(1, sizeof *cfg);
  config_defaults(cfg);
  cfg->redis.url[0] = '\0';
  return cfg;
}

static void finish(uv_loop_t *loop, struct bus *b) {
  bus_stop(b, NULL, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

static void count_stopped(void *arg) { ++*(int *)arg; }

/* bus_stop is asynchronous: the callback runs once, after the last handle
 * closed and the bus was freed. */
static void test_stop_calls_back_once(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct config *cfg = local_config();
  struct bus *b = bus_start(&loop, &cfg->redis, on_deliver, NULL);
  free(cfg); /* read at start only */
  assert_non_null(b);
  int stopped = 0;
  bus_stop(b, count_stopped, &stopped);
  assert_int_equal(stopped, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(stopped, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_local_order(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct config *cfg = local_config();
  struct sink s = {0};
  s.bus = bus_start(&loop, &cfg->redis, on_deliver, &s);
  assert_non_null(s.bus);
  assert_int_equal(bus_subscribe_channel(s.bus, "gala"), 0);
  assert_int_equal(bus_subscribe_channel(s.bus, "other"), 0);
  char ev[32];
  for (int k = 0; k < 20; k++) {
    int n = snprintf(ev, sizeof ev, "{\"n\":%d}", k);
    assert_int_equal(bus_publish(s.bus, k % 2 ? "other" : "gala", ev, (size_t)n), 0);
  }
  assert_int_equal(s.n, 0); /* never delivered from inside bus_publish */
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(s.n, 20);
  for (int k = 0; k < 20; k++) {
    snprintf(ev, sizeof ev, "%s:{\"n\":%d}", k % 2 ? "other" : "gala", k);
    assert_string_equal(s.got[k], ev);
  }
  struct bus_stats st;
  bus_get_stats(s.bus, &st);
  assert_int_equal(st.published, 20);
  assert_int_equal(st.delivered, 20);
  assert_int_equal(st.redis_connected, 0);
  assert_false(bus_is_redis_connected(s.bus));
  finish(&loop, s.bus);
  free(cfg);
}

static void test_local_publish_from_callback(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct config *cfg = local_config();
  struct sink s = {.republish = 1};
  s.bus = bus_start(&loop, &cfg->redis, on_deliver, &s);
  assert_int_equal(bus_subscribe_channel(s.bus, "gala"), 0);
  assert_int_equal(bus_publish(s.bus, "gala", "\"first\"", 7), 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(s.n, 2);
  assert_false(s.reentered);
  assert_string_equal(s.got[1], "gala:\"again\"");
  finish(&loop, s.bus);
  free(cfg);
}

static void test_subscriptions(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct config *cfg = local_config();
  struct sink s = {0};
  s.bus = bus_start(&loop, &cfg->redis, on_deliver, &s);
  assert_int_equal(bus_publish(s.bus, "gala", "1", 1), -ENOENT); /* not subscribed */
  assert_int_equal(bus_subscribe_channel(s.bus, ""), -EINVAL);
  char longname[200];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(bus_subscribe_channel(s.bus, longname), -EINVAL);
  assert_int_equal(bus_subscribe_channel(s.bus, "gala"), 0);
  assert_int_equal(bus_subscribe_channel(s.bus, "gala"), 0); /* idempotent */
  assert_int_equal(bus_publish(s.bus, "gala", "1", 1), 0);
  /* a room that goes away before delivery: its events are dropped */
  bus_unsubscribe_channel(s.bus, "gala");
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(s.n, 0);
  assert_false(bus_is_channel_via_redis(s.bus, "gala"));
  struct buf m;
  buf_init(&m);
  bus_metrics(s.bus, &m);
  assert_non_null(strstr(m.data, "galarelay_redis_connected 0\n"));
  assert_non_null(strstr(m.data, "galarelay_chat_bus_published_total 1\n"));
  buf_free(&m);
  /* stop with events still queued: nothing delivered, loop closes */
  assert_int_equal(bus_subscribe_channel(s.bus, "gala"), 0);
  assert_int_equal(bus_publish(s.bus, "gala", "2", 1), 0);
  finish(&loop, s.bus);
  assert_int_equal(s.n, 0);
  free(cfg);
}

static void test_bad_url(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct config *cfg = local_config();
  snprintf(cfg->redis.url, sizeof cfg->redis.url, "http://x:1");
  assert_null(bus_start(&loop, &cfg->redis, on_deliver, NULL));
  snprintf(cfg->redis.url, sizeof cfg->redis.url, "redis://127.0.0.1:99999");
  assert_null(bus_start(&loop, &cfg->redis, on_deliver, NULL));
  snprintf(cfg->redis.secret, sizeof cfg->redis.secret, "s");
  snprintf(cfg->redis.url, sizeof cfg->redis.url, "redis://:@127.0.0.1:6379"); /* empty password */
  assert_null(bus_start(&loop, &cfg->redis, on_deliver, NULL));
  snprintf(cfg->redis.url, sizeof cfg->redis.url, "redis://:p%%zz@127.0.0.1:6379"); /* bad %-escape */
  assert_null(bus_start(&loop, &cfg->redis, on_deliver, NULL));
  /* a url without a secret: every node would accept forged events */
  cfg->redis.secret[0] = '\0';
  snprintf(cfg->redis.url, sizeof cfg->redis.url, "redis://127.0.0.1:6379");
  assert_null(bus_start(&loop, &cfg->redis, on_deliver, NULL));
  assert_int_equal(uv_loop_close(&loop), 0);
  free(cfg);
}

static void test_ids_sort_in_order(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct config *cfg = local_config();
  struct bus *a = bus_start(&loop, &cfg->redis, on_deliver, NULL);
  struct bus *b = bus_start(&loop, &cfg->redis, on_deliver, NULL);
  char prev[BUS_ID_LEN] = "", id[BUS_ID_LEN];
  /* chat/idgen's ids on the wall clock, with this node's id in their last
   * four characters (test_chat_idgen checks the clock stepping back and
   * 4096 ids in one ms) */
  for (int k = 0; k < 5000; k++) {
    bus_make_id(a, id);
    assert_int_equal(strlen(id), IDGEN_LEN);
    assert_true(strcmp(prev, id) < 0);
    memcpy(prev, id, sizeof id);
  }
  uint64_t ms;
  uint32_t seq, node;
  assert_int_equal(idgen_parse(id, &ms, &seq, &node), 0);
  assert_int_equal(node, strtoul(bus_node_id(a), NULL, 16));
  /* Across nodes: unique, and a later id from another node sorts after an
   * earlier one once the ms has moved on. */
  char ida[BUS_ID_LEN], idb[BUS_ID_LEN];
  bus_make_id(a, ida);
  bus_make_id(b, idb);
  assert_string_not_equal(ida, idb);
  uv_sleep(3);
  bus_make_id(b, idb);
  if (strcmp(ida, idb) >= 0)
    fail_msg("ids across nodes out of order: %s %s", ida, idb);
  /* a floor from the archive (a restart with the clock set back): later
   * ids sort after it */
  char later[IDGEN_LEN + 1];
  struct idgen other;
  idgen_init(&other, 7);
  idgen_make(&other, ms + 60000, later);
  assert_int_equal(bus_id_floor(a, later), 0);
  bus_make_id(a, id);
  assert_true(strcmp(later, id) < 0);
  assert_int_equal(bus_id_floor(a, "19ae2a628000000abcdef"), -1); /* the older format */
  bus_stop(a, NULL, NULL);
  bus_stop(b, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  free(cfg);
}

static int open_buf(const char *secret, const char *channel, const struct buf *b, struct bus_envelope *env) {
  return bus_envelope_open(secret, channel, (const char *)b->data, b->len, env);
}

/* Sealed with the shared secret: opens on the same channel; any other
 * secret, channel, byte or length does not; an unsigned envelope (the
 * form before signing, or a forgery) is a bad MAC, garbage is malformed. */
static void test_envelope_strerror(void **state) {
  (void)state;
  assert_string_equal(bus_envelope_strerror(BUS_ENVELOPE_BAD_MAC), "bad_mac");
  assert_string_equal(bus_envelope_strerror(BUS_ENVELOPE_MALFORMED), "malformed");
  assert_string_equal(bus_envelope_strerror(-EINVAL), strerror(EINVAL));
}

static void test_envelope_seal_open(void **state) {
  (void)state;
  static const char ev[] = "{\"type\":\"ban\",\"user\":\"victim\"}";
  struct buf b;
  buf_init(&b);
  assert_int_equal(bus_envelope_seal(&b, "k3y", "gala", "a1b2c3", 42, 1700000000123, ev, sizeof ev - 1), 0);
  struct bus_envelope env;
  assert_int_equal(open_buf("k3y", "gala", &b, &env), BUS_ENVELOPE_OK);
  assert_string_equal(env.origin, "a1b2c3");
  assert_int_equal(env.seq, 42);
  assert_int_equal(env.ts_ms, 1700000000123);
  assert_int_equal(env.event_len, sizeof ev - 1);
  assert_memory_equal(env.event, ev, sizeof ev - 1);
  assert_int_equal(open_buf("other", "gala", &b, &env), BUS_ENVELOPE_BAD_MAC);
  assert_int_equal(open_buf("k3y", "other", &b, &env), BUS_ENVELOPE_BAD_MAC);
  for (size_t i = 0; i < b.len; i++) { /* every byte matters */
    char saved = b.data[i];
    b.data[i] = saved == 'a' ? 'b' : 'a';
    assert_int_not_equal(open_buf("k3y", "gala", &b, &env), BUS_ENVELOPE_OK);
    b.data[i] = saved;
  }
  for (size_t n = 0; n < b.len; n++) /* and every byte is needed */
    assert_int_not_equal(bus_envelope_open("k3y", "gala", (const char *)b.data, n, &env), BUS_ENVELOPE_OK);
  static const char unsigned_env[] = "{\"origin\":\"a1b2c3\",\"seq\":43,\"event\":{\"type\":\"ban\"}}";
  assert_int_equal(bus_envelope_open("k3y", "gala", unsigned_env, sizeof unsigned_env - 1, &env), BUS_ENVELOPE_BAD_MAC);
  assert_int_equal(bus_envelope_open("k3y", "gala", "hello", 5, &env), BUS_ENVELOPE_MALFORMED);
  assert_int_equal(bus_envelope_open("k3y", "gala", "", 0, &env), BUS_ENVELOPE_MALFORMED);
  /* bad arguments are refused, not sealed */
  buf_reset(&b);
  assert_int_equal(bus_envelope_seal(&b, "", "gala", "a1", 1, 1, ev, sizeof ev - 1), -EINVAL);
  assert_int_equal(bus_envelope_seal(&b, "k", "gala", "", 1, 1, ev, sizeof ev - 1), -EINVAL);
  assert_int_equal(bus_envelope_seal(&b, "k", "gala", "a1", 1, 0, ev, sizeof ev - 1), -EINVAL);
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_local_order),
      cmocka_unit_test(test_stop_calls_back_once),
      cmocka_unit_test(test_local_publish_from_callback),
      cmocka_unit_test(test_subscriptions),
      cmocka_unit_test(test_bad_url),
      cmocka_unit_test(test_ids_sort_in_order),
      cmocka_unit_test(test_envelope_seal_open),
      cmocka_unit_test(test_envelope_strerror),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
