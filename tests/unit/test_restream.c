/* restream: the manager keeps one push per target of every channel in the
 * registry, in step with reloads of the targets and of the channels (in
 * either order), a push connects when its channel goes live, and the stop
 * is asynchronous, with its callback once every push is gone. On a real
 * loop with a loopback listener standing in for the target. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"
#include <uv.h>

#include "config/config.h"
#include "relay/channel.h"
#include "relay/restream.h"
#include "relay/rtmp_push.h"

#define STEP_LIMIT_MS 5000

struct env {
  uv_loop_t loop;
  struct config cfg;
  struct channel_registry *reg;
  struct restream *rs;
  uv_tcp_t target; /* where the pushes of "gala" go */
  int port;
  int accepted;
  uv_tcp_t *peers[8];
  int stopped; /* restream_stop's callback ran */
};

static void peer_closed(uv_handle_t *h) { free(h); }

static void on_target_connection(uv_stream_t *server, int status) {
  struct env *e = server->data;
  if (status < 0 || e->accepted >= 8)
    return;
  uv_tcp_t *peer = calloc(1, sizeof *peer);
  uv_tcp_init(&e->loop, peer);
  if (uv_accept(server, (uv_stream_t *)peer) == 0)
    e->peers[e->accepted++] = peer;
  else
    uv_close((uv_handle_t *)peer, peer_closed);
}

static void set_channel(struct config *cfg, int i, const char *name, const char *key, int pushes, int port) {
  struct config_channel *cc = &cfg->channels[i];
  memset(cc, 0, sizeof *cc);
  snprintf(cc->name, sizeof cc->name, "%s", name);
  snprintf(cc->key, sizeof cc->key, "%s", key);
  for (int p = 0; p < pushes; p++)
    snprintf(cc->push[p], sizeof cc->push[p], "rtmp://127.0.0.1:%d/live/%s-secret%d", port, name, p);
  cc->push_count = pushes;
  cc->failover_after = 2;
}

static int setup(void **state) {
  struct env *e = calloc(1, sizeof *e);
  if (!e || uv_loop_init(&e->loop) != 0)
    return -1;
  uv_tcp_init(&e->loop, &e->target);
  e->target.data = e;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  if (uv_tcp_bind(&e->target, (struct sockaddr *)&sa, 0) != 0 ||
      uv_listen((uv_stream_t *)&e->target, 8, on_target_connection) != 0)
    return -1;
  int len = sizeof sa;
  uv_tcp_getsockname(&e->target, (struct sockaddr *)&sa, &len);
  e->port = ntohs(sa.sin_port);
  config_defaults(&e->cfg);
  set_channel(&e->cfg, 0, "gala", "k-gala", 2, e->port);
  set_channel(&e->cfg, 1, "quiet", "k-quiet", 0, e->port);
  e->cfg.channel_count = 2;
  e->reg = channel_registry_new(&e->loop, &e->cfg.rtmp, e->cfg.channels, e->cfg.channel_count);
  e->rs = e->reg ? restream_start(&e->loop, &e->cfg.rtmp, e->cfg.channels, e->cfg.channel_count, e->reg) : NULL;
  *state = e;
  return e->rs ? 0 : -1;
}

static void run_until(struct env *e, bool (*done)(struct env *)) {
  uint64_t deadline = uv_now(&e->loop) + STEP_LIMIT_MS;
  while (!done(e) && uv_now(&e->loop) < deadline)
    uv_run(&e->loop, UV_RUN_ONCE);
  assert_true(done(e));
}

static bool loop_idle(struct env *e) { return !uv_loop_alive(&e->loop); }

static void on_stopped(void *arg) { ((struct env *)arg)->stopped++; }

static int teardown(void **state) {
  struct env *e = *state;
  if (e->rs)
    restream_stop(e->rs, on_stopped, e);
  channel_registry_stop(e->reg, NULL, NULL);
  for (int i = 0; i < e->accepted; i++)
    uv_close((uv_handle_t *)e->peers[i], peer_closed);
  uv_close((uv_handle_t *)&e->target, NULL);
  run_until(e, loop_idle);
  assert_int_equal(e->stopped, 1);
  assert_int_equal(uv_loop_close(&e->loop), 0);
  free(e);
  return 0;
}

static const char *url_of(struct env *e, const char *channel, int i) {
  const struct rtmp_push *p = restream_push_at(e->rs, channel, i);
  assert_non_null(p);
  return rtmp_push_url(p);
}

/* The channels there at start get a push per target, redacted in what the
 * pushes show; a channel without targets gets none. */
static void test_pushes_per_target(void **state) {
  struct env *e = *state;
  assert_int_equal(restream_push_count(e->rs, "gala"), 2);
  assert_int_equal(restream_push_count(e->rs, "quiet"), 0);
  assert_int_equal(restream_push_count(e->rs, "nope"), 0);
  assert_null(strstr(url_of(e, "gala", 0), "secret"));
  assert_string_equal(rtmp_push_state(restream_push_at(e->rs, "gala", 1)), "idle");
  assert_null(restream_push_at(e->rs, "gala", 2));
}

static bool two_connected(struct env *e) { return e->accepted == 2; }

/* A push is a sink of its channel: live, it connects to its target. */
static void test_push_connects_when_live(void **state) {
  struct env *e = *state;
  struct channel_feed *f = NULL;
  static const struct channel_feed_ops feed_ops = {NULL};
  assert_int_equal(channel_feed_open(e->reg, "k-gala", "192.0.2.1:1", &feed_ops, NULL, &f), CHANNEL_OPEN_OK);
  AVPacket *pkt = av_packet_alloc();
  av_new_packet(pkt, 16);
  pkt->stream_index = CHANNEL_AUDIO;
  channel_feed_packet(f, pkt, 0);
  av_packet_free(&pkt);
  assert_true(channel_is_live(channel_registry_find(e->reg, "gala")));
  run_until(e, two_connected);
  assert_string_equal(rtmp_push_state(restream_push_at(e->rs, "gala", 0)), "connecting");
  channel_feed_close(f);
  assert_string_equal(rtmp_push_state(restream_push_at(e->rs, "gala", 0)), "idle");
}

/* Reload: an unchanged list keeps its pushes, a changed one is replaced,
 * a channel without targets gains them. */
static void test_reload_targets(void **state) {
  struct env *e = *state;
  const struct rtmp_push *kept = restream_push_at(e->rs, "gala", 0);
  struct config next = e->cfg;
  restream_reload(e->rs, &next.rtmp, next.channels, next.channel_count);
  assert_ptr_equal(restream_push_at(e->rs, "gala", 0), kept);
  set_channel(&next, 0, "gala", "k-gala", 1, e->port + 1);
  set_channel(&next, 1, "quiet", "k-quiet", 3, e->port);
  restream_reload(e->rs, &next.rtmp, next.channels, next.channel_count);
  memset(&next, 0xa5, sizeof next); /* nothing may point into it now */
  assert_int_equal(restream_push_count(e->rs, "gala"), 1);
  char want[64];
  snprintf(want, sizeof want, "rtmp://127.0.0.1:%d/live/***", e->port + 1);
  assert_string_equal(url_of(e, "gala", 0), want);
  assert_int_equal(restream_push_count(e->rs, "quiet"), 3);
}

/* Channels come and go with the registry; the manager's reload before or
 * after the registry's gives the same result. */
static void test_channels_come_and_go(void **state) {
  struct env *e = *state;
  struct config next = e->cfg;
  set_channel(&next, 0, "fresh", "k-fresh", 2, e->port); /* gala goes, fresh comes */
  /* the manager first: fresh is not in the registry yet */
  restream_reload(e->rs, &next.rtmp, next.channels, next.channel_count);
  assert_int_equal(restream_push_count(e->rs, "gala"), 0);
  assert_int_equal(restream_push_count(e->rs, "fresh"), 0);
  channel_registry_reload(e->reg, &next.rtmp, next.channels, next.channel_count);
  assert_int_equal(restream_push_count(e->rs, "fresh"), 2);
  /* the registry first: back to gala */
  struct config back = e->cfg;
  channel_registry_reload(e->reg, &back.rtmp, back.channels, back.channel_count);
  assert_int_equal(restream_push_count(e->rs, "fresh"), 0);
  restream_reload(e->rs, &back.rtmp, back.channels, back.channel_count);
  assert_int_equal(restream_push_count(e->rs, "gala"), 2);
  assert_int_equal(restream_push_count(e->rs, "fresh"), 0);
  /* the registry keeps pointing at the test's config from here */
  channel_registry_reload(e->reg, &e->cfg.rtmp, e->cfg.channels, e->cfg.channel_count);
}

/* The stop waits for the pushes' handles: its callback runs from the loop,
 * and the registry no longer calls the manager afterwards. */
static void test_stop_is_async(void **state) {
  struct env *e = *state;
  restream_stop(e->rs, on_stopped, e);
  assert_int_equal(e->stopped, 0);
  e->rs = NULL;
  struct config next = e->cfg;
  next.channel_count = 1; /* quiet goes: no observer may be called */
  channel_registry_reload(e->reg, &next.rtmp, next.channels, next.channel_count);
  uv_run(&e->loop, UV_RUN_NOWAIT);
  assert_int_equal(e->stopped, 1);
  channel_registry_reload(e->reg, &e->cfg.rtmp, e->cfg.channels, e->cfg.channel_count);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pushes_per_target, setup, teardown),
      cmocka_unit_test_setup_teardown(test_push_connects_when_live, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload_targets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_channels_come_and_go, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_is_async, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
