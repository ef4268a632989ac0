/* rtmp_server: a player's lifetime against the channel it plays, with the
 * real server on a loopback port and a scripted client on the same libuv
 * loop (no threads, no timing: every step waits for its event).
 *
 * The channel is made live directly through its feed API, with an
 * onMetaData large enough that the headers a new player is written in its
 * catch-up pass its output limit (twice rtmp.player_queue_bytes): the
 * server closes that connection from inside the channel's subscription.
 * The channel must then hold no sink for it: the player count goes back to
 * 0, and media that follows never reaches the freed connection (under
 * AddressSanitizer that would be a heap-use-after-free). A control case
 * with ordinary metadata shows the same client does end up playing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "config/config.h"
#include "relay/amf.h"
#include "core/buf.h"
#include "relay/channel.h"
#include "relay/rtmp_chunk.h"
#include "relay/rtmp_server.h"
#include "tests/unit/rtmp_test_client.h"

#define QUEUE_BYTES 65536
#define STEP_LIMIT_MS 5000 /* a step that waits longer has failed */

struct client {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  struct buf out; /* the whole client side, sent in one write */
  struct buf in;  /* everything the server sent */
  bool started, eof;
};

struct env {
  uv_loop_t loop;
  struct config cfg;
  struct {
    struct channel_registry *channels;
    struct rtmp_server *rtmp;
  } app;
  struct channel *ch;
  struct channel_feed *feed;
  int64_t dts;
  size_t meta_len; /* the onMetaData body */
  struct client cl;
};

static void no_kick(void *o, const char *why) { (void)o, (void)why; }
static const struct channel_feed_ops feed_ops = {no_kick};

/* A port that was free a moment ago (the kernel picks it). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  close(fd);
  return ntohs(sa.sin_port);
}

static int setup(void **state) {
  struct env *e = calloc(1, sizeof *e);
  if (!e || uv_loop_init(&e->loop) != 0)
    return -1;
  char text[256];
  snprintf(text, sizeof text,
           "[server]\nrtmp_listen = 127.0.0.1:%d\n[rtmp]\nplayer_queue_bytes = %d\n[channel gala]\nkey = k1\n",
           free_port(), QUEUE_BYTES);
  struct config_errors errs = {0};
  if (config_load_string(&e->cfg, "t.conf", text, &errs) < 0)
    return -1;
  e->app.channels = channel_registry_new(&e->loop, &e->cfg.rtmp, e->cfg.channels, e->cfg.channel_count);
  e->app.rtmp = e->app.channels ? rtmp_server_start(&e->loop, &e->cfg.server.rtmp_listen, &e->cfg.rtmp, e->cfg.channels,
                                                    e->cfg.channel_count, e->app.channels)
                                : NULL;
  if (!e->app.rtmp)
    return -1;
  e->ch = channel_registry_find(e->app.channels, "gala");
  buf_init(&e->cl.out);
  buf_init(&e->cl.in);
  *state = e;
  return e->ch ? 0 : -1;
}

static void run_until(struct env *e, bool (*done)(struct env *)) {
  uint64_t deadline = uv_now(&e->loop) + STEP_LIMIT_MS;
  while (!done(e) && uv_now(&e->loop) < deadline)
    uv_run(&e->loop, UV_RUN_ONCE);
  assert_true(done(e));
}

static bool loop_idle(struct env *e) { return !uv_loop_alive(&e->loop); }

static int teardown(void **state) {
  struct env *e = *state;
  if (e->cl.started)
    uv_close((uv_handle_t *)&e->cl.tcp, NULL);
  rtmp_server_stop(e->app.rtmp, NULL, NULL);
  if (e->feed)
    channel_feed_close(e->feed);
  channel_registry_stop(e->app.channels, NULL, NULL);
  run_until(e, loop_idle);
  assert_int_equal(uv_loop_close(&e->loop), 0);
  buf_free(&e->cl.out);
  buf_free(&e->cl.in);
  free(e);
  return 0;
}

/* --- the channel, live through its feed --- */

static void feed_video(struct env *e, bool key) {
  uint8_t body[64] = {key ? 0x17 : 0x27, 1, 0, 0, 0};
  AVPacket *pkt = av_packet_alloc();
  assert_non_null(pkt);
  assert_int_equal(av_new_packet(pkt, (int)sizeof body - 5), 0);
  pkt->pts = pkt->dts = e->dts;
  pkt->stream_index = CHANNEL_VIDEO;
  pkt->time_base = (AVRational){1, 1000};
  pkt->flags = key ? AV_PKT_FLAG_KEY : 0;
  pkt->opaque_ref = rtmp_chunk_wire(RTMP_CSID_VIDEO, RTMP_MSG_VIDEO, (uint32_t)e->dts, body, sizeof body);
  assert_non_null(pkt->opaque_ref);
  channel_feed_packet(e->feed, pkt, 0);
  av_packet_free(&pkt);
  e->dts += 33;
}

/* A property list of pad_bytes of padding, in string properties. */
static void put_padding(struct buf *b, size_t pad_bytes) {
  char *pad = malloc(60001);
  assert_non_null(pad);
  memset(pad, 'x', 60000);
  for (size_t i = 0; pad_bytes > 0; i++) {
    size_t n = pad_bytes < 60000 ? pad_bytes : 60000;
    char name[16];
    snprintf(name, sizeof name, "pad%zu", i);
    pad[n] = '\0';
    amf_put_prop_string(b, name, pad);
    pad_bytes -= n;
  }
  free(pad);
}

static void feed_config(struct env *e, int index, enum AVCodecID codec, const uint8_t *seq, size_t len) {
  AVCodecParameters *par = avcodec_parameters_alloc();
  assert_non_null(par);
  par->codec_type = index == CHANNEL_VIDEO ? AVMEDIA_TYPE_VIDEO : AVMEDIA_TYPE_AUDIO;
  par->codec_id = codec;
  channel_feed_config(e->feed, index, par, seq, len);
}

/* A feed with H.264 and AAC; meta_pad bytes of padding in its onMetaData,
 * video_pad after its AVC sequence header (the relay forwards the FLV body
 * as it came). */
static void go_live(struct env *e, size_t meta_pad, size_t video_pad) {
  assert_int_equal(channel_feed_open(e->app.channels, "k1", "198.51.100.9:4000", &feed_ops, NULL, &e->feed),
                   CHANNEL_OPEN_OK);
  e->dts = 5000; /* an encoder's clock that does not start at 0 */
  struct buf meta;
  buf_init(&meta);
  amf_put_string(&meta, "onMetaData");
  amf_put_object_start(&meta);
  amf_put_prop_number(&meta, "framerate", 30);
  put_padding(&meta, meta_pad);
  amf_put_object_end(&meta);
  assert_false(meta.failed);
  e->meta_len = meta.len;
  channel_feed_metadata(e->feed, (const uint8_t *)meta.data, meta.len);
  buf_free(&meta);
  static const uint8_t avc[] = {0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x0b, 0xff, 0xe1, 0, 0};
  uint8_t *video = calloc(1, sizeof avc + video_pad);
  assert_non_null(video);
  memcpy(video, avc, sizeof avc);
  feed_config(e, CHANNEL_VIDEO, AV_CODEC_ID_H264, video, sizeof avc + video_pad);
  free(video);
  static const uint8_t aac[] = {0xaf, 0, 0x12, 0x10};
  feed_config(e, CHANNEL_AUDIO, AV_CODEC_ID_AAC, aac, sizeof aac);
  feed_video(e, true);
  feed_video(e, false);
  assert_true(channel_is_live(e->ch));
}

/* --- the player: handshake, connect, createStream, play, in one write --- */

static void cl_alloc(uv_handle_t *h, size_t size, uv_buf_t *b) {
  (void)h;
  static char rbuf[65536];
  (void)size;
  *b = uv_buf_init(rbuf, sizeof rbuf);
}

static void cl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct client *cl = s->data;
  if (n < 0)
    cl->eof = true;
  else if (n > 0)
    buf_append(&cl->in, b->base, (size_t)n);
}

static void cl_written(uv_write_t *w, int status) {
  (void)w;
  assert_int_equal(status, 0);
}

static void cl_connected(uv_connect_t *req, int status) {
  struct client *cl = req->data;
  assert_int_equal(status, 0);
  uv_buf_t b = uv_buf_init(cl->out.data, (unsigned)cl->out.len);
  assert_int_equal(uv_write(&cl->write, (uv_stream_t *)&cl->tcp, &b, 1, cl_written), 0);
  uv_read_start((uv_stream_t *)&cl->tcp, cl_alloc, cl_read);
}

static void play(struct env *e) {
  struct client *cl = &e->cl;
  /* all before any answer */
  rtmp_test_client_handshake(&cl->out);
  rtmp_test_client_command(&cl->out, "connect", 1, NULL, 0);
  rtmp_test_client_command(&cl->out, "createStream", 2, NULL, 0);
  rtmp_test_client_command(&cl->out, "play", 3, "gala", 1);
  uv_tcp_init(&e->loop, &cl->tcp);
  cl->started = true;
  cl->tcp.data = cl;
  cl->connect.data = cl;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", e->cfg.server.rtmp_listen.port, &sa);
  assert_int_equal(uv_tcp_connect(&cl->connect, &cl->tcp, (struct sockaddr *)&sa, cl_connected), 0);
}

static bool got(const struct client *cl, const char *text) {
  return cl->in.len && memmem(cl->in.data, cl->in.len, text, strlen(text)) != NULL;
}

static bool play_started(struct env *e) { return got(&e->cl, "NetStream.Play.Start"); }
static bool server_closed(struct env *e) { return e->cl.eof && rtmp_server_connections(e->app.rtmp) == 0; }
static bool player_subscribed(struct env *e) { return channel_player_count(e->ch) == 1; }

/* The onMetaData message as a type-0 chunk header at timestamp ts starts it. */
static bool got_metadata_at(const struct env *e, uint32_t ts) {
  const uint8_t h[] = {RTMP_CSID_DATA,
                       ts >> 16 & 0xff,
                       ts >> 8 & 0xff,
                       ts & 0xff,
                       e->meta_len >> 16 & 0xff,
                       e->meta_len >> 8 & 0xff,
                       e->meta_len & 0xff,
                       RTMP_MSG_DATA_AMF0,
                       1,
                       0,
                       0,
                       0,
                       2,
                       0,
                       10};
  return memmem(e->cl.in.data, e->cl.in.len, h, sizeof h) != NULL;
}
static bool metadata_arrived(struct env *e) { return got_metadata_at(e, 0) || got(&e->cl, "onMetaData"); }

/* The control: ordinary headers, the player plays and stays. Its metadata
 * comes at timestamp 0 (FFmpeg's FLV reader makes a subtitle stream of it
 * at any other), its headers and media on the channel's clock. */
static void test_player_plays(void **state) {
  struct env *e = *state;
  go_live(e, 0, 0);
  play(e);
  run_until(e, play_started);
  run_until(e, player_subscribed);
  run_until(e, metadata_arrived);
  assert_true(got_metadata_at(e, 0));
  feed_video(e, false);
  uv_run(&e->loop, UV_RUN_NOWAIT);
  assert_false(e->cl.eof);
  assert_int_equal(rtmp_server_connections(e->app.rtmp), 1);
  assert_int_equal(channel_player_count(e->ch), 1);
}

/* Headers past the output limit: the server closes the player while the
 * channel is still subscribing it (its catch-up: on_start's headers). */
static void closed_during_subscription(struct env *e) {
  play(e);
  run_until(e, server_closed);
  assert_true(play_started(e)); /* it was closed playing, not refused */
  /* media after the close: the channel must not call into the freed
   * connection (ASan: heap-use-after-free in player_on_packet) */
  feed_video(e, true);
  feed_video(e, false);
  assert_int_equal(channel_player_count(e->ch), 0);
  struct buf m;
  buf_init(&m);
  rtmp_server_metrics(e->app.rtmp, &m);
  assert_non_null(strstr(m.data, "\ngalarelay_rtmp_output_limit_closes_total 1\n"));
  buf_free(&m);
}

/* The limit trips at the last header (the AAC one, after a huge AVC one). */
static void test_player_closed_by_headers(void **state) {
  struct env *e = *state;
  go_live(e, 0, 3 * QUEUE_BYTES);
  closed_during_subscription(e);
}

/* It trips at the first header after a huge onMetaData: the rest of the
 * catch-up runs on a connection already closed. */
static void test_player_closed_by_metadata(void **state) {
  struct env *e = *state;
  go_live(e, 3 * QUEUE_BYTES, 0);
  closed_during_subscription(e);
}

static bool metric_has(struct env *e, const char *line) {
  struct buf m;
  buf_init(&m);
  rtmp_server_metrics(e->app.rtmp, &m);
  bool found = strstr(m.data, line) != NULL;
  buf_free(&m);
  return found;
}

/* A reload's [rtmp] and channel list (stream keys count for the player
 * limit) apply at once, and the previous config may go right after. */
static void test_reload_limits(void **state) {
  struct env *e = *state;
  char want[96];
  snprintf(want, sizeof want, "\ngalarelay_rtmp_player_limit %d\n",
           e->cfg.rtmp.max_connections - e->cfg.rtmp.publisher_reserve - 1);
  assert_true(metric_has(e, want));
  struct config *next = malloc(sizeof *next);
  assert_non_null(next);
  *next = e->cfg;
  next->rtmp.max_connections = 50;
  next->rtmp.publisher_reserve = 3;
  snprintf(next->channels[0].backup_key, sizeof next->channels[0].backup_key, "k2");
  rtmp_server_reload(e->app.rtmp, &next->rtmp, next->channels, next->channel_count);
  assert_true(metric_has(e, "\ngalarelay_rtmp_player_limit 45\n")); /* 50 - 3 - two keys */
  rtmp_server_reload(e->app.rtmp, &e->cfg.rtmp, e->cfg.channels, e->cfg.channel_count);
  free(next);
  assert_true(metric_has(e, want));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_player_plays, setup, teardown),
      cmocka_unit_test_setup_teardown(test_player_closed_by_headers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_player_closed_by_metadata, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload_limits, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
