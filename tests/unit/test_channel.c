/* channel: keys (unknown, busy, backup standby, takeover), fan-out to
 * sinks, the GOP a late player starts with, failover to the standby feed
 * (disconnect, silence, the primary's return with and without
 * prefer_primary, at the right keyframe, counted), reload removing a
 * channel, metrics. Socket-free: a fake clock drives the channel, and the
 * tests call the failover check the registry's timer would. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"
#include <jansson.h>
#include <uv.h>

#include "config/config.h"
#include "core/buf.h"
#include "relay/channel.h"
#include "relay/rtmp_chunk.h"

struct env {
  uv_loop_t loop;
  struct config cfg;
  struct channel_registry *reg;
};

struct sink {
  int starts, stops, packets, keys, removed;
  uint64_t generation;
  bool backup, has_video;
  int64_t first_frame; /* send_frames' index of the timeline's first packet */
  bool first_is_key;   /* the first packet of the current timeline */
  int64_t first_dts;   /* ... and its timestamp on the output clock */
  int64_t last_dts;    /* the output clock: never goes back, across timelines */
  bool dts_went_back;
  int wired;               /* packets with RTMP wire bytes ... */
  bool wire_ts_wrong;      /* ... whose message timestamp is not the packet's dts */
  int64_t key_interval_ms; /* channel_feed_info's, at the last start */
  int packets_since_start;
};

static void s_start(void *o, const struct channel_feed_info *i) {
  struct sink *s = o;
  s->starts++;
  s->generation = i->generation;
  s->backup = i->is_backup;
  s->has_video = i->video != NULL;
  s->key_interval_ms = i->key_interval_ms;
  s->first_frame = -1;
  s->packets_since_start = 0;
}
static void s_packet(void *o, const AVPacket *p, int64_t arrival) {
  (void)arrival;
  struct sink *s = o;
  if (p->stream_index == CHANNEL_VIDEO) {
    if (s->packets > 0 && p->dts <= s->last_dts)
      s->dts_went_back = true;
    s->last_dts = p->dts;
  }
  if (s->first_frame < 0) {
    int32_t frame = -1;
    if (p->size >= 4)
      memcpy(&frame, p->data, 4);
    s->first_frame = frame;
    s->first_dts = p->dts;
    s->first_is_key = (p->flags & AV_PKT_FLAG_KEY) != 0;
  }
  if (p->opaque_ref) { /* csid < 64: a 1-byte basic header, then the timestamp */
    const uint8_t *w = p->opaque_ref->data;
    uint32_t ts = (uint32_t)w[1] << 16 | (uint32_t)w[2] << 8 | w[3];
    if (ts == 0xffffff)
      ts = (uint32_t)w[12] << 24 | (uint32_t)w[13] << 16 | (uint32_t)w[14] << 8 | w[15];
    s->wired++;
    if (ts != (uint32_t)p->dts)
      s->wire_ts_wrong = true;
  }
  s->packets++;
  s->packets_since_start++;
  s->keys += (p->flags & AV_PKT_FLAG_KEY) != 0;
}
static void s_stop(void *o) { ((struct sink *)o)->stops++; }
static void s_removed(void *o) { ((struct sink *)o)->removed++; }
static const struct channel_sink_ops sink_ops = {s_start, s_packet, s_stop};

/* A player that subscribes and stays subscribed. */
static int subscribe_player(struct channel *ch, const struct channel_sink_ops *ops, void *sink) {
  int id = 0;
  assert_int_equal(channel_subscribe_player(ch, ops, sink, s_removed, &id), CHANNEL_SUBSCRIBED);
  assert_true(id > 0);
  return id;
}

static int kicked;
static void kick(void *o, const char *why) {
  (void)o, (void)why;
  kicked++;
}
static const struct channel_feed_ops feed_ops = {kick};

static uint64_t fake_ms; /* the channel's clock in these tests */
static uint64_t fake_clock(void *o) {
  (void)o;
  return fake_ms;
}

static int setup(void **state) {
  struct env *e = calloc(1, sizeof *e);
  uv_loop_init(&e->loop);
  struct config_channel *ch = &e->cfg.channels[0];
  snprintf(ch->name, sizeof ch->name, "gala");
  snprintf(ch->key, sizeof ch->key, "k-primary");
  snprintf(ch->backup_key, sizeof ch->backup_key, "k-backup");
  ch->failover_after = 2.0;
  ch->prefer_primary = true;
  e->cfg.channel_count = 1;
  e->cfg.rtmp.publisher_takeover = 3600;
  e->reg = channel_registry_new(&e->loop, &e->cfg.rtmp, e->cfg.channels, e->cfg.channel_count);
  kicked = 0;
  fake_ms = 1000000;
  if (e->reg)
    channel_registry_set_clock(e->reg, fake_clock, NULL);
  *state = e;
  return e->reg ? 0 : -1;
}

static int teardown(void **state) {
  struct env *e = *state;
  channel_registry_stop(e->reg, NULL, NULL);
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
    int32_t frame = i;
    memcpy(p->data, &frame, 4); /* which frame, whatever the output clock makes of its dts */
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
  send_frames(a, 0, 25);  /* keyframes at 0, 10, 20 */
  send_frames(bk, 0, 25); /* standby: not forwarded */
  assert_true(channel_is_live(ch));
  assert_int_equal(early.starts, 1);
  assert_true(early.has_video);
  assert_int_equal(early.packets, 25);
  size_t len;
  assert_non_null(channel_sequence_header(ch, CHANNEL_VIDEO, &len));
  assert_int_equal(len, 8);
  /* a late player gets on_start and the GOP from frame 20 */
  int pid = subscribe_player(ch, &sink_ops, &late);
  assert_int_equal(late.starts, 1);
  assert_int_equal(late.packets, 5);
  assert_int_equal(late.first_frame, 20);
  assert_int_equal(channel_player_count(ch), 1);
  /* the primary goes: the backup takes over, a new timeline that starts
   * with the backup's held GOP (its keyframe at 20, frames 20..24) */
  channel_feed_close(a);
  assert_int_equal(early.starts, 2);
  assert_true(early.backup);
  assert_int_equal(early.stops, 0);
  assert_int_equal(early.packets, 30);
  assert_true(early.first_is_key);
  assert_int_equal(early.first_frame, 20);
  assert_int_equal(early.key_interval_ms, 10 * 33); /* measured while standby */
  send_frames(bk, 25, 5);
  assert_int_equal(early.packets, 35);
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
  /* never the publisher's address, under any name */
  char *text = json_dumps(obj, JSON_COMPACT);
  assert_non_null(text);
  assert_null(strstr(text, "10.0.0.1"));
  assert_null(strstr(text, "addr"));
  free(text);
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
  subscribe_player(ch, &sink_ops, &player);
  struct config next = e->cfg;
  snprintf(next.channels[0].name, sizeof next.channels[0].name, "other");
  snprintf(next.channels[0].key, sizeof next.channels[0].key, "k-other");
  channel_registry_reload(e->reg, &next.rtmp, next.channels, next.channel_count);
  assert_int_equal(kicked, 1);
  assert_int_equal(player.removed, 1);
  assert_null(channel_registry_find(e->reg, "gala"));
  assert_non_null(channel_registry_find(e->reg, "other"));
  assert_int_equal(channel_registry_count(e->reg), 1);
}


/* ---- failover ---- */

static struct channel_feed *open_feed(struct env *e, const char *key, const char *addr) {
  struct channel_feed *f = NULL;
  assert_int_equal(channel_feed_open(e->reg, key, addr, &feed_ops, NULL, &f), CHANNEL_OPEN_OK);
  configure(f);
  return f;
}

/* A player's connection as the RTMP server has it: it may close from
 * inside any callback (past its output limit while it is written its
 * headers or its first packets), unsubscribing with the id the channel
 * gave it; here its memory goes at once, the harshest case. */
struct closing_player {
  struct channel *ch;
  int id;
  int close_at; /* 0: in on_start; n: at its n-th packet */
  int packets;
  bool *closed;
};
static void cp_close(struct closing_player *p) {
  channel_unsubscribe(p->ch, p->id);
  *p->closed = true;
  free(p);
}
static void cp_start(void *o, const struct channel_feed_info *i) {
  (void)i;
  struct closing_player *p = o;
  if (p->close_at == 0)
    cp_close(p);
}
static void cp_packet(void *o, const AVPacket *pkt, int64_t arrival) {
  (void)pkt, (void)arrival;
  struct closing_player *p = o;
  if (++p->packets == p->close_at)
    cp_close(p);
}
static const struct channel_sink_ops closing_player_ops = {cp_start, cp_packet, s_stop};

/* A player that closes during its catch-up (on_start, then the GOP): it
 * knows its id then, the catch-up stops, the channel holds no sink for it
 * and says so; nothing reaches the freed sink afterwards (ASan). */
static void test_player_leaves_during_catch_up(void **state) {
  struct env *e = *state;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct channel_feed *a = open_feed(e, "k-primary", "a");
  send_frames(a, 0, 25); /* the GOP a player starts with: frames 20..24 */
  for (int close_at = 0; close_at <= 3; close_at++) {
    bool closed = false;
    struct closing_player *p = calloc(1, sizeof *p);
    assert_non_null(p);
    *p = (struct closing_player){.ch = ch, .close_at = close_at, .closed = &closed};
    assert_int_equal(channel_subscribe_player(ch, &closing_player_ops, p, s_removed, &p->id), CHANNEL_SUBSCRIBE_LEFT);
    assert_true(closed);
    assert_int_equal(channel_player_count(ch), 0);
    send_frames(a, 25 + close_at, 1);
  }
  /* one that stays, beside: it gets the whole GOP */
  struct sink stays = {0};
  subscribe_player(ch, &sink_ops, &stays);
  assert_int_equal(stays.packets, 9); /* frames 20..28 */
  channel_feed_close(a);
  assert_int_equal(stays.stops, 1);
}

/* Frames from..from+n-1 (33 ms apart, a keyframe every 10th) on each
 * non-NULL feed, the clock advancing with them and the registry's check
 * run after each, as its timer would. */
static void play(struct env *e, struct channel_feed *a, struct channel_feed *b, int from, int n) {
  for (int i = from; i < from + n; i++) {
    fake_ms += 33;
    if (a)
      send_frames(a, i, 1);
    if (b)
      send_frames(b, i, 1);
    channel_registry_check_feeds(e->reg);
  }
}

static uint64_t failovers(struct env *e, const char *reason) {
  struct buf b;
  buf_init(&b);
  channel_registry_metrics(e->reg, &b);
  char want[128];
  snprintf(want, sizeof want, "galarelay_channel_failovers_total{channel=\"gala\",reason=\"%s\"} ", reason);
  const char *at = strstr(b.data, want);
  assert_non_null(at);
  uint64_t v = strtoull(at + strlen(want), NULL, 10);
  buf_free(&b);
  return v;
}

static const char *api_feed(struct channel *ch) {
  static char feed[16];
  json_t *obj = json_object();
  channel_api_fill(ch, obj);
  const char *f = json_string_value(json_object_get(obj, "feed"));
  snprintf(feed, sizeof feed, "%s", f ? f : "");
  json_decref(obj);
  return feed;
}

/* Frames as from RTMP: wire bytes with the encoder's own clock at base. */
static void send_wired(struct channel_feed *f, int from, int n, int64_t base) {
  AVPacket *p = av_packet_alloc();
  for (int i = from; i < from + n; i++) {
    av_new_packet(p, 5000); /* two chunks on the wire */
    memset(p->data, 0, 5000);
    int32_t frame = i;
    memcpy(p->data, &frame, 4);
    p->stream_index = CHANNEL_VIDEO;
    p->dts = p->pts = base + i * 33;
    if (i % 10 == 0)
      p->flags |= AV_PKT_FLAG_KEY;
    p->opaque_ref = rtmp_chunk_wire(RTMP_CSID_VIDEO, RTMP_MSG_VIDEO, (uint32_t)p->dts, p->data, 5000);
    channel_feed_packet(f, p, 0);
    av_packet_unref(p);
  }
  av_packet_free(&p);
}

struct header_sink {
  struct sink s;
  struct channel *ch;
  uint32_t header_ts;
};
static void h_start(void *o, const struct channel_feed_info *i) {
  struct header_sink *h = o;
  h->header_ts = channel_header_timestamp(h->ch);
  s_start(&h->s, i);
}
static void h_packet(void *o, const AVPacket *p, int64_t arrival) {
  s_packet(&((struct header_sink *)o)->s, p, arrival);
}
static const struct channel_sink_ops header_sink_ops = {h_start, h_packet, s_stop};

/* The output clock: a backup whose encoder clock is hours away from the
 * primary's continues the timestamps players and push targets see, wire
 * bytes included; headers sent from on_start are never after the packets
 * that follow; a late player's GOP is on the same clock. */
static void test_output_clock_across_switch(void **state) {
  struct env *e = *state;
  /* past 2^24 ms the wire needs the extended timestamp: retimed across it */
  const int64_t P = 0xffffff - 400;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct header_sink player = {.ch = ch};
  subscribe_player(ch, &header_sink_ops, &player);
  struct channel_feed *a = open_feed(e, "k-primary", "a"), *b = open_feed(e, "k-backup", "b");
  for (int i = 0; i < 25; i++) {
    fake_ms += 33;
    send_wired(a, i, 1, P);             /* primary: crosses 2^24 ms at frame 13 */
    send_wired(b, i, 1, 7200000 - 500); /* backup: two hours later */
  }
  assert_int_equal(player.s.first_dts, P); /* the first timeline keeps the encoder's clock */
  assert_int_equal(player.header_ts, 0);
  channel_feed_close(a);
  assert_int_equal(player.s.starts, 2);
  assert_int_equal(player.s.first_frame, 20);
  assert_int_equal(player.s.first_dts, P + 25 * 33);
  assert_true(player.header_ts <= P + 25 * 33);
  assert_true(player.header_ts >= P + 24 * 33);
  for (int i = 25; i < 30; i++) {
    fake_ms += 33;
    send_wired(b, i, 1, 7200000 - 500);
  }
  assert_false(player.s.dts_went_back);
  assert_int_equal(player.s.wired, 25 + 5 + 5);
  assert_false(player.s.wire_ts_wrong);
  /* a late player: the backup's GOP (20..29) on the output clock */
  struct header_sink late = {.ch = ch};
  subscribe_player(ch, &header_sink_ops, &late);
  assert_int_equal(late.s.first_frame, 20);
  assert_int_equal(late.s.first_dts, P + 25 * 33);
  assert_int_equal(late.header_ts, P + 25 * 33);
  assert_int_equal(late.s.packets, 10);
  assert_false(late.s.wire_ts_wrong);
  /* a returning primary with yet another clock */
  struct channel_feed *c = open_feed(e, "k-primary", "c");
  for (int i = 30; i < 45; i++) { /* keyframes at 30 and 40: it takes over at 40 */
    fake_ms += 33;
    send_wired(c, i, 1, 0);
    send_wired(b, i, 1, 7200000 - 500);
  }
  assert_int_equal(player.s.starts, 3);
  assert_false(player.s.backup);
  assert_int_equal(player.s.first_frame, 40);
  assert_false(player.s.dts_went_back);
  assert_false(player.s.wire_ts_wrong);
  channel_feed_close(b);
  channel_feed_close(c);
}

static void test_failover_on_disconnect(void **state) {
  struct env *e = *state;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct sink tc = {0}, player = {0};
  channel_subscribe(ch, &sink_ops, &tc);
  subscribe_player(ch, &sink_ops, &player);
  struct channel_feed *a = open_feed(e, "k-primary", "a"), *b = open_feed(e, "k-backup", "b");
  play(e, a, b, 0, 27); /* keyframes at 0, 10, 20 on both */
  assert_int_equal(tc.starts, 1);
  assert_false(tc.backup);
  assert_string_equal(api_feed(ch), "primary");
  uint64_t gen = tc.generation;
  channel_feed_close(a);
  /* at once: a new timeline from the backup's last keyframe (20..26) */
  assert_int_equal(tc.starts, 2);
  assert_true(tc.backup);
  assert_true(tc.generation > gen);
  assert_true(tc.first_is_key);
  assert_int_equal(tc.first_frame, 20);
  assert_int_equal(tc.first_dts, 27 * 33); /* one frame after the primary's last */
  assert_false(tc.dts_went_back);
  assert_int_equal(tc.packets_since_start, 7);
  assert_int_equal(player.starts, 2);
  assert_true(player.first_is_key);
  assert_int_equal(player.packets_since_start, 7);
  assert_string_equal(api_feed(ch), "backup");
  play(e, NULL, b, 27, 3);
  assert_int_equal(tc.packets_since_start, 10);
  assert_int_equal(failovers(e, "disconnect"), 1);
  assert_int_equal(failovers(e, "silence"), 0);
  struct buf m;
  buf_init(&m);
  channel_registry_metrics(e->reg, &m);
  assert_non_null(strstr(m.data, "galarelay_channel_backup_active{channel=\"gala\"} 1\n"));
  buf_free(&m);
  channel_feed_close(b);
  assert_int_equal(tc.stops, 1);
}

static void test_failover_to_stale_standby_waits_for_keyframe(void **state) {
  struct env *e = *state;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct sink tc = {0};
  channel_subscribe(ch, &sink_ops, &tc);
  struct channel_feed *a = open_feed(e, "k-primary", "a"), *b = open_feed(e, "k-backup", "b");
  play(e, a, b, 0, 25);
  play(e, a, NULL, 25, 100); /* the backup hangs; its GOP is 3.3 s old */
  channel_feed_close(a);
  assert_int_equal(tc.starts, 2);
  assert_true(tc.backup);
  assert_int_equal(tc.packets_since_start, 0); /* nothing old replayed */
  assert_int_equal(failovers(e, "disconnect"), 1);
  channel_feed_close(b);
}

static void test_failover_on_silence(void **state) {
  struct env *e = *state;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct sink tc = {0};
  channel_subscribe(ch, &sink_ops, &tc);
  struct channel_feed *a = open_feed(e, "k-primary", "a"), *b = open_feed(e, "k-backup", "b");
  play(e, a, b, 0, 30);
  uint64_t silent_since = fake_ms;
  /* the primary's connection stays open but nothing comes: no switch
   * before failover_after (2 s)... */
  int i = 30;
  while (fake_ms + 33 - silent_since < 2000)
    play(e, NULL, b, i++, 1);
  assert_int_equal(tc.starts, 1);
  assert_false(tc.backup);
  /* ...and at it, with the backup's last keyframe first */
  play(e, NULL, b, i++, 1);
  assert_int_equal(tc.starts, 2);
  assert_true(tc.backup);
  assert_true(fake_ms - silent_since >= 2000 && fake_ms - silent_since < 2000 + 33);
  assert_true(tc.first_is_key);
  assert_int_equal(tc.first_frame % 10, 0);
  assert_int_equal(failovers(e, "silence"), 1);
  assert_string_equal(api_feed(ch), "backup");
  /* the primary, still connected, sends again: it takes over at its next
   * keyframe (prefer_primary), not before */
  int next = (i / 10 + 1) * 10;
  play(e, a, b, i, next - i);
  assert_true(tc.backup);
  play(e, a, b, next, 1);
  assert_int_equal(tc.starts, 3);
  assert_false(tc.backup);
  assert_true(tc.first_is_key);
  assert_int_equal(tc.first_frame, next);
  assert_int_equal(tc.packets_since_start, 1);
  assert_int_equal(failovers(e, "primary_returned"), 1);
  channel_feed_close(a);
  channel_feed_close(b);
}

static void test_no_failover_when_both_silent(void **state) {
  struct env *e = *state;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct sink tc = {0};
  channel_subscribe(ch, &sink_ops, &tc);
  struct channel_feed *a = open_feed(e, "k-primary", "a"), *b = open_feed(e, "k-backup", "b");
  play(e, a, b, 0, 30);
  for (int t = 0; t < 100; t++) {
    fake_ms += 100;
    channel_registry_check_feeds(e->reg);
  }
  assert_int_equal(tc.starts, 1);
  assert_false(tc.backup);
  assert_int_equal(failovers(e, "silence"), 0);
  channel_feed_close(a);
  channel_feed_close(b);
}

static void test_primary_returns(void **state) {
  struct env *e = *state;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct sink tc = {0};
  channel_subscribe(ch, &sink_ops, &tc);
  struct channel_feed *a = open_feed(e, "k-primary", "a"), *b = open_feed(e, "k-backup", "b");
  play(e, a, b, 0, 25);
  channel_feed_close(a);
  assert_true(tc.backup);
  play(e, NULL, b, 25, 10);
  /* the primary reconnects mid-GOP: the backup stays on air until the
   * primary's second keyframe (its keyframe interval is known then, and is
   * passed on), which is the new timeline's first packet */
  a = open_feed(e, "k-primary", "a2");
  play(e, a, b, 35, 15); /* its first keyframe at 40 */
  assert_true(tc.backup);
  assert_int_equal(tc.starts, 2);
  play(e, a, b, 50, 1);
  assert_int_equal(tc.starts, 3);
  assert_false(tc.backup);
  assert_true(tc.first_is_key);
  assert_int_equal(tc.first_frame, 50);
  assert_int_equal(tc.key_interval_ms, 10 * 33);
  play(e, a, b, 51, 5);
  assert_int_equal(tc.packets_since_start, 6);
  assert_string_equal(api_feed(ch), "primary");
  assert_int_equal(failovers(e, "disconnect"), 1);
  assert_int_equal(failovers(e, "primary_returned"), 1);
  channel_feed_close(a);
  channel_feed_close(b);
}

static void test_primary_returns_without_prefer_primary(void **state) {
  struct env *e = *state;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct config next = e->cfg;
  next.channels[0].prefer_primary = false;
  channel_registry_reload(e->reg, &next.rtmp, next.channels,
                          next.channel_count); /* a live setting: kept channel, new value */
  struct sink tc = {0};
  channel_subscribe(ch, &sink_ops, &tc);
  struct channel_feed *a = open_feed(e, "k-primary", "a"), *b = open_feed(e, "k-backup", "b");
  play(e, a, b, 0, 25);
  channel_feed_close(a);
  a = open_feed(e, "k-primary", "a2");
  play(e, a, b, 25, 40); /* keyframes at 30, 40, 50, 60 */
  assert_int_equal(tc.starts, 2);
  assert_true(tc.backup);
  assert_int_equal(failovers(e, "primary_returned"), 0);
  /* the primary is the standby now: it takes over when the backup goes */
  channel_feed_close(b);
  assert_int_equal(tc.starts, 3);
  assert_false(tc.backup);
  assert_true(tc.first_is_key);
  assert_int_equal(tc.first_frame, 60);
  assert_int_equal(failovers(e, "disconnect"), 2);
  channel_feed_close(a);
}

/* The rule of publisher_takeover still holds with a backup on air: a
 * newcomer with the silent primary's key replaces it, and takes over at
 * its second keyframe. A primary that sends is not replaced. */
static void test_takeover_while_backup_active(void **state) {
  struct env *e = *state;
  e->cfg.rtmp.publisher_takeover = 2;
  struct channel *ch = channel_registry_find(e->reg, "gala");
  struct sink tc = {0};
  channel_subscribe(ch, &sink_ops, &tc);
  struct channel_feed *a = open_feed(e, "k-primary", "a"), *b = open_feed(e, "k-backup", "b"), *x = NULL;
  play(e, a, b, 0, 20);
  assert_int_equal(channel_feed_open(e->reg, "k-primary", "x", &feed_ops, NULL, &x), CHANNEL_OPEN_BUSY);
  play(e, NULL, b, 20, 70); /* 2.3 s: silence failover, then takeover allowed */
  assert_true(tc.backup);
  assert_int_equal(failovers(e, "silence"), 1);
  struct channel_feed *a2 = open_feed(e, "k-primary", "a2");
  assert_int_equal(kicked, 1); /* the silent primary */
  (void)a;
  assert_true(tc.backup);
  play(e, a2, b, 90, 10); /* its first keyframe */
  assert_true(tc.backup);
  play(e, a2, b, 100, 1); /* the second */
  assert_false(tc.backup);
  assert_int_equal(failovers(e, "primary_returned"), 1);
  assert_int_equal(failovers(e, "disconnect"), 0); /* the kicked one was standby */
  channel_feed_close(a2);
  channel_feed_close(b);
}

/* The registry's observers: told of the channels there when they
 * register, of each channel a reload adds or removes (removed: while it is
 * still whole), and of nothing once they unobserve. */
struct watch {
  int added, removed;
  bool removed_was_whole;
};
static void w_added(void *o, struct channel *ch) {
  (void)ch;
  ((struct watch *)o)->added++;
}
static void w_removed(void *o, struct channel *ch) {
  struct watch *w = o;
  w->removed++;
  w->removed_was_whole = strcmp(channel_name(ch), "gala") == 0;
}

static void test_observers(void **state) {
  struct env *e = *state;
  struct watch w = {0};
  struct channel_registry_observer obs = {w_added, w_removed, &w};
  assert_int_equal(channel_registry_observe(e->reg, &obs), 0);
  assert_int_equal(w.added, 1); /* gala, there already */
  struct config next = e->cfg;
  snprintf(next.channels[0].name, sizeof next.channels[0].name, "other");
  snprintf(next.channels[0].key, sizeof next.channels[0].key, "k-other");
  channel_registry_reload(e->reg, &next.rtmp, next.channels, next.channel_count);
  assert_int_equal(w.added, 2);
  assert_int_equal(w.removed, 1);
  assert_true(w.removed_was_whole);
  assert_int_equal(channel_registry_unobserve(e->reg, &obs), 0);
  assert_int_equal(channel_registry_unobserve(e->reg, &obs), -ENOENT);
  channel_registry_reload(e->reg, &e->cfg.rtmp, e->cfg.channels, e->cfg.channel_count);
  assert_int_equal(w.added, 2);
  assert_int_equal(w.removed, 1);
  /* a bounded table: the ninth is refused */
  struct watch many[9] = {0};
  for (int i = 0; i < 8; i++) {
    struct channel_registry_observer o = {w_added, NULL, &many[i]};
    assert_int_equal(channel_registry_observe(e->reg, &o), 0);
  }
  struct channel_registry_observer o = {w_added, NULL, &many[8]};
  assert_int_equal(channel_registry_observe(e->reg, &o), -ENOSPC);
  assert_int_equal(many[8].added, 0);
}

/* The channel's codes are errno values; a refusal reads as words. */
static void test_strerror(void **state) {
  struct env *e = *state;
  struct channel_feed *a = NULL;
  int rc = channel_feed_open(e->reg, "nope", "a", &feed_ops, NULL, &a);
  assert_int_equal(rc, -ENOENT);
  assert_string_equal(channel_strerror(rc), "unknown stream key");
  assert_string_equal(channel_strerror(CHANNEL_OPEN_BUSY), "stream key already live");
  assert_string_equal(channel_strerror(CHANNEL_SUBSCRIBE_NOMEM), strerror(ENOMEM));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_strerror, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
      cmocka_unit_test_setup_teardown(test_takeover_of_silent_publisher, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fanout_gop_and_standby, setup, teardown),
      cmocka_unit_test_setup_teardown(test_api_and_metrics, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload_removes_channel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_player_leaves_during_catch_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failover_on_disconnect, setup, teardown),
      cmocka_unit_test_setup_teardown(test_output_clock_across_switch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failover_to_stale_standby_waits_for_keyframe, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failover_on_silence, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_failover_when_both_silent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_primary_returns, setup, teardown),
      cmocka_unit_test_setup_teardown(test_primary_returns_without_prefer_primary, setup, teardown),
      cmocka_unit_test_setup_teardown(test_takeover_while_backup_active, setup, teardown),
      cmocka_unit_test_setup_teardown(test_observers, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
