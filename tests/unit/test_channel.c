/* channel: keys (unknown, busy, backup standby, takeover), fan-out to
 * sinks, the GOP a late player starts with, failover to the standby feed,
 * reload removing a channel, metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "config/config.h"
#include "relay/app.h"
#include "relay/buf.h"
#include "relay/channel.h"

struct env {
  uv_loop_t loop;
  struct config cfg;
  struct app app;
  struct channel_registry *reg;
};

struct sink {
  int starts, stops, packets, keys, removed;
  uint64_t generation;
  bool backup, has_video;
  int64_t first_dts;
};

static void s_start(void *o, const struct channel_feed_info *i) {
  struct sink *s = o;
  s->starts++;
  s->generation = i->generation;
  s->backup = i->is_backup;
  s->has_video = i->video != NULL;
  s->first_dts = -1;
}
static void s_packet(void *o, const AVPacket *p, int64_t arrival) {
  (void)arrival;
  struct sink *s = o;
  if (s->first_dts < 0)
    s->first_dts = p->dts;
  s->packets++;
  s->keys += (p->flags & AV_PKT_FLAG_KEY) != 0;
}
static void s_stop(void *o) { ((struct sink *)o)->stops++; }
static void s_removed(void *o) { ((struct sink *)o)->removed++; }
static const struct channel_sink_ops sink_ops = {s_start, s_packet, s_stop};

static int kicked;
static void kick(void *o, const char *why) {
  (void)o, (void)why;
  kicked++;
}
static const struct channel_feed_ops feed_ops = {kick};

static int setup(void **state) {
  struct env *e = calloc(1, sizeof *e);
  uv_loop_init(&e->loop);
  struct config_channel *ch = &e->cfg.channels[0];
  snprintf(ch->name, sizeof ch->name, "gala");
  snprintf(ch->key, sizeof ch->key, "k-primary");
  snprintf(ch->backup_key, sizeof ch->backup_key, "k-backup");
  e->cfg.channel_count = 1;
  e->cfg.rtmp.publisher_takeover = 3600;
  e->app.loop = &e->loop;
  e->app.cfg = &e->cfg;
  e->reg = channel_registry_new(&e->app);
  e->app.channels = e->reg;
  kicked = 0;
  *state = e;
  return e->reg ? 0 : -1;
}

static int teardown(void **state) {
  struct env *e = *state;
  channel_registry_free(e->reg);
  uv_run(&e->loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(&e->loop), 0);
  free(e);
  return 0;
}

static AVCodecParameters *video_par(void) {
  AVCodecParameters *p = avcodec_parameters_alloc();
  p->codec_type = AVMEDIA_TYPE_VIDEO;
  p->codec_id = AV_CODEC_ID_H264;
  p->width = 320;
  p->height = 240;
  return p;
}

static void send_frames(struct channel_feed *f, int from, int n) {
  AVPacket *p = av_packet_alloc();
  for (int i = from; i < from + n; i++) {
    av_new_packet(p, 100);
    p->stream_index = CHANNEL_VIDEO;
    p->dts = p->pts = i * 33;
    if (i % 10 == 0)
      p->flags |= AV_PKT_FLAG_KEY;
    channel_feed_packet(f, p, 0);
    av_packet_unref(p);
  }
  av_packet_free(&p);
}

static void configure(struct channel_feed *f) {
  const uint8_t seq[] = {0x17, 0, 0, 0, 0, 1, 2, 3};
  channel_feed_config(f, CHANNEL_VIDEO, video_par(), seq, sizeof seq);
}

static void test_keys(void **state) {
  struct env *e = *state;
  struct channel_feed *a = NULL, *b = NULL, *c = NULL;
  assert_int_equal(channel_feed_open(e->reg, "nope", "1.2.3.4:1", &feed_ops, NULL, &a), CHANNEL_OPEN_UNKNOWN_KEY);
  assert_int_equal(channel_feed_open(e->reg, "k-primar", "1.2.3.4:1", &feed_ops, NULL, &a), CHANNEL_OPEN_UNKNOWN_KEY);
  assert_int_equal(channel_feed_open(e->reg, "", "1.2.3.4:1", &feed_ops, NULL, &a), CHANNEL_OPEN_UNKNOWN_KEY);
  assert_int_equal(channel_feed_open(e->reg, "k-primary", "1.2.3.4:1", &feed_ops, NULL, &a), CHANNEL_OPEN_OK);
  assert_int_equal(channel_feed_open(e->reg, "k-primary", "1.2.3.4:2", &feed_ops, NULL, &b), CHANNEL_OPEN_BUSY);
  assert_int_equal(channel_feed_open(e->reg, "k-backup", "1.2.3.4:3", &feed_ops, NULL, &c), CHANNEL_OPEN_OK);
  assert_true(channel_feed_is_backup(c));
  assert_string_equal(channel_name(channel_feed_channel(c)), "gala");
  channel_feed_close(a);
  channel_feed_close(c);
}

static void test_takeover_of_silent_publisher(void **state) {
  struct env *e = *state;
  e->cfg.rtmp.publisher_takeover = 0;
  struct channel_feed *a = NULL, *b = NULL;
  assert_int_equal(channel_feed_open(e->reg, "k-primary", "a", &feed_ops, NULL, &a), CHANNEL_OPEN_OK);
  assert_int_equal(channel_feed_open(e->reg, "k-primary", "b", &feed_ops, NULL, &b), CHANNEL_OPEN_OK);
  assert_int_equal(kicked, 1);
  channel_feed_close(b);
}

static void test_fanout_gop_and_standby(void **state) {
  struct env *e = *state;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct sink early = {0}, late = {0};
  int id = channel_subscribe(ch, &sink_ops, &early);
  assert_true(id > 0);
  struct channel_feed *a = NULL, *bk = NULL;
  assert_int_equal(channel_feed_open(e->reg, "k-primary", "a", &feed_ops, NULL, &a), CHANNEL_OPEN_OK);
  assert_int_equal(channel_feed_open(e->reg, "k-backup", "b", &feed_ops, NULL, &bk), CHANNEL_OPEN_OK);
  configure(a);
  configure(bk);
  assert_false(channel_is_live(ch));
  send_frames(a, 0, 25); /* keyframes at 0, 10, 20 */
  send_frames(bk, 0, 25); /* standby: not forwarded */
  assert_true(channel_is_live(ch));
  assert_int_equal(early.starts, 1);
  assert_true(early.has_video);
  assert_int_equal(early.packets, 25);
  size_t len;
  assert_non_null(channel_sequence_header(ch, CHANNEL_VIDEO, &len));
  assert_int_equal(len, 8);
  /* a late player gets on_start and the GOP from frame 20 */
  int pid = channel_subscribe_player(ch, &sink_ops, &late, s_removed);
  assert_int_equal(late.starts, 1);
  assert_int_equal(late.packets, 5);
  assert_int_equal(late.first_dts, 20 * 33);
  assert_int_equal(channel_player_count(ch), 1);
  /* the primary goes: the backup takes over, a new timeline */
  channel_feed_close(a);
  assert_int_equal(early.starts, 2);
  assert_true(early.backup);
  assert_int_equal(early.stops, 0);
  send_frames(bk, 25, 5);
  assert_int_equal(early.packets, 30);
  channel_feed_close(bk);
  assert_int_equal(early.stops, 1);
  assert_false(channel_is_live(ch));
  channel_unsubscribe(ch, id);
  channel_unsubscribe(ch, pid);
  assert_int_equal(channel_player_count(ch), 0);
}

static void test_api_and_metrics(void **state) {
  struct env *e = *state;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct channel_feed *a = NULL;
  assert_int_equal(channel_feed_open(e->reg, "k-primary", "10.0.0.1:5000", &feed_ops, NULL, &a), CHANNEL_OPEN_OK);
  configure(a);
  send_frames(a, 0, 3);
  json_t *obj = json_object();
  channel_api_fill(ch, obj);
  assert_true(json_is_true(json_object_get(obj, "live")));
  assert_string_equal(json_string_value(json_object_get(obj, "codec")), "h264");
  assert_int_equal(json_integer_value(json_object_get(obj, "width")), 320);
  assert_string_equal(json_string_value(json_object_get(obj, "publisher_addr")), "10.0.0.1:5000");
  json_decref(obj);
  struct buf b;
  buf_init(&b);
  channel_registry_metrics(e->reg, &b);
  assert_non_null(strstr(b.data, "galarelay_channel_live{channel=\"gala\"} 1\n"));
  assert_non_null(strstr(b.data, "galarelay_channel_height{channel=\"gala\"} 240\n"));
  buf_free(&b);
  channel_feed_close(a);
}

static void test_reload_removes_channel(void **state) {
  struct env *e = *state;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct sink player = {0};
  struct channel_feed *a = NULL;
  assert_int_equal(channel_feed_open(e->reg, "k-primary", "a", &feed_ops, NULL, &a), CHANNEL_OPEN_OK);
  channel_subscribe_player(ch, &sink_ops, &player, s_removed);
  struct config next = e->cfg;
  snprintf(next.channels[0].name, sizeof next.channels[0].name, "other");
  snprintf(next.channels[0].key, sizeof next.channels[0].key, "k-other");
  channel_registry_reload(e->reg, &next);
  assert_int_equal(kicked, 1);
  assert_int_equal(player.removed, 1);
  assert_null(channel_registry_find(e->reg, "gala"));
  assert_non_null(channel_registry_find(e->reg, "other"));
  assert_int_equal(channel_registry_count(e->reg), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
      cmocka_unit_test_setup_teardown(test_takeover_of_silent_publisher, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fanout_gop_and_standby, setup, teardown),
      cmocka_unit_test_setup_teardown(test_api_and_metrics, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload_removes_channel, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
