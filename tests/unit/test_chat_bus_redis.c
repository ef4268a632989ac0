/* test_chat_bus_redis: two buses (two "nodes") on one loop through a real
 * redis-server that the test starts on a free loopback port. Both see one
 * conversation in one order; Redis killed: local delivery goes on; Redis
 * back on the same port: both reconnect and share the conversation again.
 * Also: a refused connect is retried (chat/redis_uv.c's fix to hiredis
 * 0.14's libuv adapter); events published
 * straight into Redis without the shared secret's HMAC are dropped and
 * counted, and so are replays of signed ones; a password in the url is
 * sent (AUTH) on both connections, and a wrong one keeps the bus down,
 * retrying. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <hiredis/hiredis.h>

#include "chat/bus.h"
#include "chat/bus_envelope.h"
#include "core/buf.h"
#include "config/config.h"

#define MAXGOT 256

struct node {
  struct bus *bus;
  int n;
  char got[MAXGOT][48];
  int local[MAXGOT];
};

static void on_deliver(void *opaque, const struct bus_msg *m) {
  struct node *nd = opaque;
  if (nd->n < MAXGOT) {
    snprintf(nd->got[nd->n], sizeof nd->got[0], "%.*s", (int)m->len, m->json);
    nd->local[nd->n] = m->local;
  }
  nd->n++;
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  socklen_t len = sizeof sa;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

static int port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {
      .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
  return ok;
}

/* password: NULL = none (else --requirepass) */
static pid_t redis_start_auth(int port, const char *password) {
  if (access("/usr/bin/redis-server", X_OK) != 0)
    fail_msg("/usr/bin/redis-server is missing (scripts/bootstrap.sh installs redis-server)");
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    execl("/usr/bin/redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly",
          "no", "--loglevel", "warning", "--logfile", "/dev/null", "--requirepass", password ? password : "",
          (char *)NULL);
    _exit(127);
  }
  for (int k = 0; k < 500 && !port_open(port); k++)
    usleep(10000);
  assert_true(port_open(port));
  return pid;
}

static pid_t redis_start(int port) { return redis_start_auth(port, NULL); }

static void redis_kill(pid_t pid) {
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
}

static void tick(uv_timer_t *t) { (void)t; }

/* Run the loop until cond(arg) or ms pass. */
static int run_until(uv_loop_t *loop, int (*cond)(void *), void *arg, uint64_t ms) {
  uv_timer_t t;
  uv_timer_init(loop, &t);
  uv_timer_start(&t, tick, 5, 5);
  uv_update_time(loop);
  uint64_t end = uv_now(loop) + ms;
  int ok;
  while (!(ok = cond(arg)) && uv_now(loop) < end)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return ok;
}

/* A node's config for the Redis on port: userinfo ("" or ":PASSWORD@")
 * in the url, a channel prefix of its own, the shared secret. */
static struct config *redis_config(int port, const char *userinfo) {
  struct config *cfg = calloc(1, sizeof *cfg);
  config_defaults(cfg);
  snprintf(cfg->redis.url, sizeof cfg->redis.url, "redis://%s127.0.0.1:%d", userinfo, port);
  snprintf(cfg->redis.prefix, sizeof cfg->redis.prefix, "test%d:", port);
  snprintf(cfg->redis.secret, sizeof cfg->redis.secret, "shared-secret");
  return cfg;
}

/* Stop both buses, close the loop, kill Redis, free what the test made. */
static void two_nodes_end(uv_loop_t *loop, struct node *a, struct node *b, pid_t redis, struct config *cfg) {
  bus_stop(a->bus, NULL, NULL);
  bus_stop(b->bus, NULL, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
  redis_kill(redis);
  free(a);
  free(b);
  free(cfg);
}

struct pair {
  struct node *a, *b;
  int want;
};

static int both_ready(void *arg) {
  struct pair *p = arg;
  return bus_is_channel_via_redis(p->a->bus, "gala") && bus_is_channel_via_redis(p->b->bus, "gala");
}
static int both_down(void *arg) {
  struct pair *p = arg;
  return !bus_is_redis_connected(p->a->bus) && !bus_is_redis_connected(p->b->bus);
}
static int both_got(void *arg) {
  struct pair *p = arg;
  return p->a->n >= p->want && p->b->n >= p->want;
}
static int a_got(void *arg) {
  struct pair *p = arg;
  return p->a->n >= p->want;
}

static void publish_round(struct node *a, struct node *b, int round, int count) {
  char ev[48];
  for (int k = 0; k < count; k++) {
    struct node *from = k % 2 ? b : a;
    int n = snprintf(ev, sizeof ev, "{\"r\":%d,\"k\":%d,\"from\":\"%s\"}", round, k, from == a ? "a" : "b");
    assert_int_equal(bus_publish(from->bus, "gala", ev, (size_t)n), 0);
  }
}

static void test_two_nodes_one_order_and_reconnect(void **state) {
  (void)state;
  int port = free_port();
  pid_t redis = redis_start(port);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct config *cfg = redis_config(port, "");
  struct node *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
  a->bus = bus_start(&loop, &cfg->redis, on_deliver, a);
  b->bus = bus_start(&loop, &cfg->redis, on_deliver, b);
  assert_non_null(a->bus);
  assert_non_null(b->bus);
  assert_int_equal(bus_subscribe_channel(a->bus, "gala"), 0);
  assert_int_equal(bus_subscribe_channel(b->bus, "gala"), 0);
  struct pair p = {a, b, 0};
  assert_true(run_until(&loop, both_ready, &p, 5000));

  /* One conversation, one order, on both nodes, all through Redis. */
  publish_round(a, b, 1, 60);
  p.want = 60;
  assert_true(run_until(&loop, both_got, &p, 5000));
  assert_int_equal(a->n, 60);
  assert_int_equal(b->n, 60);
  for (int k = 0; k < 60; k++) {
    assert_string_equal(a->got[k], b->got[k]);
    assert_int_equal(a->local[k], 0);
  }

  /* Redis dies: both notice; a keeps delivering locally. */
  redis_kill(redis);
  assert_true(run_until(&loop, both_down, &p, 5000));
  char ev[32];
  for (int k = 0; k < 10; k++) {
    int n = snprintf(ev, sizeof ev, "{\"down\":%d}", k);
    assert_int_equal(bus_publish(a->bus, "gala", ev, (size_t)n), 0);
  }
  p.want = 70;
  assert_true(run_until(&loop, a_got, &p, 2000));
  assert_int_equal(a->n, 70);
  assert_int_equal(b->n, 60);
  for (int k = 60; k < 70; k++)
    assert_int_equal(a->local[k], 1);

  /* Redis back on the same port: reconnect, re-SUBSCRIBE, one order again. */
  redis = redis_start(port);
  assert_true(run_until(&loop, both_ready, &p, 10000));
  a->n = b->n = 0;
  publish_round(a, b, 2, 40);
  p.want = 40;
  assert_true(run_until(&loop, both_got, &p, 5000));
  for (int k = 0; k < 40; k++) {
    assert_string_equal(a->got[k], b->got[k]);
    assert_int_equal(b->local[k], 0);
  }
  struct bus_stats st;
  bus_get_stats(a->bus, &st);
  assert_true(st.reconnects >= 1);
  assert_int_equal(st.redis_connected, 1);
  assert_true(st.redis_received >= 100);
  assert_int_equal(st.backlog_bytes, 0);

  two_nodes_end(&loop, a, b, redis, cfg);
}

/* Nothing listening at first: connects are refused and retried (with
 * Debian's adapter this hung), local delivery works meanwhile; once Redis
 * starts, the bus connects by itself. Stopping while down is clean. */
static void test_refused_then_up(void **state) {
  (void)state;
  int port = free_port();
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct config *cfg = calloc(1, sizeof *cfg);
  config_defaults(cfg);
  snprintf(cfg->redis.url, sizeof cfg->redis.url, "redis://127.0.0.1:%d", port);
  snprintf(cfg->redis.secret, sizeof cfg->redis.secret, "shared-secret");
  struct node *a = calloc(1, sizeof *a);
  a->bus = bus_start(&loop, &cfg->redis, on_deliver, a);
  assert_int_equal(bus_subscribe_channel(a->bus, "gala"), 0);
  struct pair p = {a, a, 1};
  assert_int_equal(bus_publish(a->bus, "gala", "{}", 2), 0);
  assert_true(run_until(&loop, a_got, &p, 1000));
  assert_int_equal(a->local[0], 1);
  pid_t redis = redis_start(port);
  assert_true(run_until(&loop, both_ready, &p, 10000));
  bus_stop(a->bus, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  redis_kill(redis);

  /* stop while Redis is down (retry timer armed) */
  uv_loop_init(&loop);
  a->bus = bus_start(&loop, &cfg->redis, on_deliver, a);
  uv_run(&loop, UV_RUN_NOWAIT);
  bus_stop(a->bus, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  free(a);
  free(cfg);
}

static int a_up(void *arg) { return bus_is_channel_via_redis(((struct pair *)arg)->a->bus, "gala"); }

/* PUBLISH straight into the room's Redis channel, as anyone who can reach
 * Redis could. */
static void forge(int port, const char *password, const char *channel, const char *msg, size_t len) {
  redisContext *rc = redisConnect("127.0.0.1", port);
  assert_non_null(rc);
  assert_int_equal(rc->err, 0);
  redisReply *r = redisCommand(rc, "AUTH %s", password);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_STATUS);
  freeReplyObject(r);
  r = redisCommand(rc, "PUBLISH %s %b", channel, msg, len);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_INTEGER);
  assert_true(r->integer >= 1); /* the bus heard it */
  freeReplyObject(r);
  redisFree(rc);
}

/* A Redis with a password: the url's password is sent on both connections
 * (the bus comes up and its own events go round); forged events (no HMAC,
 * or one made with another secret) are dropped and counted; a wrong
 * password keeps a bus down. */
static void test_password_and_forged_events(void **state) {
  (void)state;
  int port = free_port();
  pid_t redis = redis_start_auth(port, "s3cr3t@pw");
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct config *cfg = redis_config(port, ":s3cr3t%40pw@");
  struct node *a = calloc(1, sizeof *a);
  a->bus = bus_start(&loop, &cfg->redis, on_deliver, a);
  assert_non_null(a->bus);
  assert_int_equal(bus_subscribe_channel(a->bus, "gala"), 0);
  struct pair p = {a, a, 1};
  assert_true(run_until(&loop, a_up, &p, 5000));

  char channel[64];
  snprintf(channel, sizeof channel, "test%d:gala", port);
  static const char unsigned_ban[] =
      "{\"origin\":\"abcdef\",\"seq\":1,\"event\":{\"type\":\"ban\",\"user\":\"victim\"}}";
  forge(port, "s3cr3t@pw", channel, unsigned_ban, sizeof unsigned_ban - 1);
  static const char ev[] = "{\"type\":\"comment\",\"id\":\"x\",\"text\":\"forged\"}";
  struct buf wrong;
  buf_init(&wrong);
  uint64_t now = (uint64_t)time(NULL) * 1000;
  assert_int_equal(bus_envelope_seal(&wrong, "guessed", "gala", "abcdef", 2, now, ev, sizeof ev - 1), 0);
  forge(port, "s3cr3t@pw", channel, wrong.data, wrong.len);
  assert_int_equal(bus_publish(a->bus, "gala", "{\"real\":1}", 10), 0);
  assert_true(run_until(&loop, a_got, &p, 5000));
  /* Replays: one signed event (as captured on the wire) twice, then one
   * with a later seq but an old ts: only the first is delivered. */
  buf_reset(&wrong);
  static const char re[] = "{\"replayed\":1}";
  assert_int_equal(bus_envelope_seal(&wrong, "shared-secret", "gala", "abcdef", 5, now, re, sizeof re - 1), 0);
  forge(port, "s3cr3t@pw", channel, wrong.data, wrong.len);
  forge(port, "s3cr3t@pw", channel, wrong.data, wrong.len);
  buf_reset(&wrong);
  assert_int_equal(bus_envelope_seal(&wrong, "shared-secret", "gala", "abcdef", 6, now - 600000, re, sizeof re - 1), 0);
  forge(port, "s3cr3t@pw", channel, wrong.data, wrong.len);
  buf_free(&wrong);
  run_until(&loop, a_got, &(struct pair){a, a, 3}, 300); /* nothing more than 2 comes */
  assert_int_equal(a->n, 2);
  assert_string_equal(a->got[0], "{\"real\":1}");
  assert_int_equal(a->local[0], 0); /* through Redis, so AUTH worked on both */
  assert_string_equal(a->got[1], re);
  struct bus_stats st;
  bus_get_stats(a->bus, &st);
  assert_int_equal(st.rejected_mac, 2);
  assert_int_equal(st.rejected_replay, 2);
  assert_int_equal(st.malformed, 0);
  struct buf m;
  buf_init(&m);
  bus_metrics(a->bus, &m);
  assert_non_null(strstr(m.data, "galarelay_chat_bus_rejected_total{reason=\"hmac\"} 2\n"));
  buf_free(&m);

  /* the wrong password: never up (AUTH refused, retried with backoff) */
  snprintf(cfg->redis.url, sizeof cfg->redis.url, "redis://:wrong@127.0.0.1:%d", port);
  struct node *b = calloc(1, sizeof *b);
  b->bus = bus_start(&loop, &cfg->redis, on_deliver, b);
  assert_non_null(b->bus);
  assert_int_equal(bus_subscribe_channel(b->bus, "gala"), 0);
  struct pair pb = {b, b, 1};
  assert_false(run_until(&loop, a_up, &pb, 700));
  assert_false(bus_is_redis_connected(b->bus));
  two_nodes_end(&loop, a, b, redis, cfg);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_nodes_one_order_and_reconnect),
      cmocka_unit_test(test_refused_then_up),
      cmocka_unit_test(test_password_and_forged_events),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
