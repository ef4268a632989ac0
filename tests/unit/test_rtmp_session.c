/* RTMP session state machine: a scripted client (our own chunk writer and
 * AMF encoder, the command sequence ffmpeg and OBS send) fed one byte at a
 * time; the server's answers are parsed back and checked. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "relay/amf.h"
#include "core/buf.h"
#include "relay/rtmp_chunk.h"
#include "relay/rtmp_handshake.h"
#include "relay/rtmp_session.h"
#include "tests/unit/rtmp_test_client.h"

struct peer {
  struct buf out; /* what the server sent */
  int verdict;
  char published[64];
  char played[64];
  int unpublished, play_stopped, media, metadata;
  uint32_t last_ts;
  size_t meta_len;
  char meta_first[16];
};

static void p_send(void *o, const uint8_t *d, size_t n) { buf_append(&((struct peer *)o)->out, d, n); }
static int p_publish(void *o, const char *app, const char *name) {
  struct peer *p = o;
  assert_string_equal(app, "live");
  snprintf(p->published, sizeof p->published, "%s", name);
  return p->verdict;
}
static void p_unpublish(void *o) { ((struct peer *)o)->unpublished++; }
static void p_meta(void *o, const uint8_t *b, size_t n) {
  struct peer *p = o;
  p->metadata++;
  p->meta_len = n;
  struct amf_reader r;
  amf_reader_init(&r, b, n);
  const char *s;
  size_t sl;
  assert_int_equal(amf_read_string(&r, &s, &sl), 0);
  snprintf(p->meta_first, sizeof p->meta_first, "%.*s", (int)sl, s);
}
static int p_media(void *o, const struct rtmp_msg *m) {
  struct peer *p = o;
  p->media++;
  p->last_ts = m->timestamp;
  return 0;
}
static int p_play(void *o, const char *app, const char *name) {
  (void)app;
  struct peer *p = o;
  snprintf(p->played, sizeof p->played, "%s", name);
  return p->verdict;
}
static void p_play_stop(void *o) { ((struct peer *)o)->play_stopped++; }

static const struct rtmp_session_ops ops = {
    .send = p_send,
    .on_publish = p_publish,
    .on_unpublish = p_unpublish,
    .on_metadata = p_meta,
    .on_media = p_media,
    .on_play = p_play,
    .on_play_stop = p_play_stop,
};

static const struct rtmp_session_limits lim = {65536, 1 << 20, 0};


/* Server answers: command names and onStatus codes, in order. */
struct answers {
  char words[32][64];
  int n;
  struct rtmp_chunk_reader rd;
};

static int ans_msg(void *o, const struct rtmp_msg *m) {
  struct answers *a = o;
  if (m->type == RTMP_MSG_SET_CHUNK_SIZE) {
    uint32_t v = (uint32_t)m->data[0] << 24 | m->data[1] << 16 | m->data[2] << 8 | m->data[3];
    rtmp_chunk_reader_set_chunk_size(&a->rd, v);
    return 0;
  }
  if (m->type != RTMP_MSG_COMMAND_AMF0 || a->n >= 32)
    return 0;
  struct amf_reader r;
  amf_reader_init(&r, m->data, m->len);
  const char *s;
  size_t sl;
  assert_int_equal(amf_read_string(&r, &s, &sl), 0);
  snprintf(a->words[a->n++], 64, "%.*s", (int)sl, s);
  if (sl == 8 && memcmp(s, "onStatus", 8) == 0) {
    char level[16] = "", code[64] = "";
    struct amf_field obj[] = {{AMF_STRING, "level", level, sizeof level}, {AMF_STRING, "code", code, sizeof code}};
    struct amf_field_table t = {obj, 2};
    struct amf_field f[] = {{AMF_NUMBER, NULL, NULL, 0}, {AMF_NULL, NULL, NULL, 0}, {AMF_OBJECT, NULL, &t, 0}};
    double txid;
    f[0].dest = &txid;
    assert_int_equal(amf_decode_seq(&r, f, 3), 0);
    snprintf(a->words[a->n - 1], 64, "%s", code);
  }
  return 0;
}

static void parse_answers(struct peer *p, struct answers *a) {
  memset(a, 0, sizeof *a);
  rtmp_chunk_reader_init(&a->rd, 65536, 1 << 20);
  assert_true(p->out.len >= 1 + 2 * RTMP_HANDSHAKE_SIZE);
  assert_int_equal(rtmp_chunk_reader_feed(&a->rd, (uint8_t *)p->out.data + 1 + 2 * RTMP_HANDSHAKE_SIZE,
                                          p->out.len - 1 - 2 * RTMP_HANDSHAKE_SIZE, ans_msg, a),
                   0);
  rtmp_chunk_reader_free(&a->rd);
}

static int has(const struct answers *a, const char *w) {
  for (int i = 0; i < a->n; i++)
    if (strcmp(a->words[i], w) == 0)
      return 1;
  return 0;
}

static int feed_bytewise(struct rtmp_session *s, const struct buf *c) {
  int rc = 0;
  for (size_t i = 0; i < c->len && rc == 0; i++)
    rc = rtmp_session_feed(s, (const uint8_t *)c->data + i, 1);
  return rc;
}

static void publish_script(struct buf *c) {
  rtmp_test_client_handshake(c);
  rtmp_test_client_command(c, "connect", 1, NULL, 0);
  rtmp_test_client_command(c, "releaseStream", 2, "the-key?token=1", 0);
  rtmp_test_client_command(c, "FCPublish", 3, "the-key?token=1", 0);
  rtmp_test_client_command(c, "createStream", 4, NULL, 0);
  rtmp_test_client_command(c, "publish", 5, "the-key?token=1", 1);
}

static void test_publish_sequence(void **state) {
  (void)state;
  struct peer p = {.verdict = RTMP_ACCEPT};
  buf_init(&p.out);
  struct rtmp_session *s = rtmp_session_new(&lim, &ops, &p);
  struct buf c;
  buf_init(&c);
  publish_script(&c);
  /* metadata with @setDataFrame, one audio and one video message with an
   * extended timestamp after a client-side Set Chunk Size */
  struct buf m;
  buf_init(&m);
  amf_put_string(&m, "@setDataFrame");
  amf_put_string(&m, "onMetaData");
  amf_put_ecma_start(&m, 1);
  amf_put_prop_number(&m, "width", 640);
  amf_put_object_end(&m);
  rtmp_chunk_write(&c, 4, RTMP_MSG_DATA_AMF0, 1, 0, (uint8_t *)m.data, m.len, 128);
  rtmp_chunk_write_set_chunk_size(&c, 60000, 128);
  uint8_t big[70000] = {0x17, 0x01};
  rtmp_chunk_write(&c, 6, RTMP_MSG_VIDEO, 1, 0x1000000, big, sizeof big, 60000);
  rtmp_chunk_write(&c, 4, RTMP_MSG_AUDIO, 1, 0x1000001, big, 10, 60000);
  assert_int_equal(feed_bytewise(s, &c), 0);
  assert_int_equal(rtmp_session_state(s), RTMP_SESSION_PUBLISHING);
  assert_string_equal(p.published, "the-key");
  assert_int_equal(p.metadata, 1);
  assert_string_equal(p.meta_first, "onMetaData");
  assert_int_equal(p.media, 2);
  assert_int_equal(p.last_ts, 0x1000001);
  struct answers a;
  parse_answers(&p, &a);
  assert_string_equal(a.words[0], "_result"); /* connect */
  assert_true(has(&a, "onFCPublish"));
  assert_true(has(&a, "NetStream.Publish.Start"));
  /* FCUnpublish + deleteStream */
  buf_reset(&c);
  rtmp_test_client_command(&c, "FCUnpublish", 6, "the-key", 0);
  rtmp_test_client_command(&c, "deleteStream", 7, NULL, 0);
  assert_int_equal(feed_bytewise(s, &c), 0);
  assert_int_equal(p.unpublished, 1);
  rtmp_session_free(s);
  buf_free(&c);
  buf_free(&m);
  buf_free(&p.out);
}

static void test_publish_refused(void **state) {
  (void)state;
  struct peer p = {.verdict = RTMP_REFUSE_BADNAME};
  buf_init(&p.out);
  struct rtmp_session *s = rtmp_session_new(&lim, &ops, &p);
  struct buf c;
  buf_init(&c);
  publish_script(&c);
  assert_int_equal(rtmp_session_feed(s, (uint8_t *)c.data, c.len), 1);
  assert_int_equal(rtmp_session_state(s), RTMP_SESSION_CLOSING);
  struct answers a;
  parse_answers(&p, &a);
  assert_true(has(&a, "NetStream.Publish.BadName"));
  assert_false(has(&a, "NetStream.Publish.Start"));
  rtmp_session_free(s);
  buf_free(&c);
  buf_free(&p.out);
}

static void test_play(void **state) {
  (void)state;
  struct peer p = {.verdict = RTMP_ACCEPT};
  buf_init(&p.out);
  struct rtmp_session *s = rtmp_session_new(&lim, &ops, &p);
  struct buf c;
  buf_init(&c);
  rtmp_test_client_handshake(&c);
  rtmp_test_client_command(&c, "connect", 1, NULL, 0);
  rtmp_test_client_command(&c, "createStream", 2, NULL, 0);
  rtmp_test_client_command(&c, "play", 0, "gala", 1);
  /* a ping from the client is answered */
  rtmp_chunk_write_user_control(&c, RTMP_UC_PING_REQUEST, 77, 128);
  assert_int_equal(feed_bytewise(s, &c), 0);
  assert_string_equal(p.played, "gala");
  assert_int_equal(rtmp_session_state(s), RTMP_SESSION_PLAYING);
  struct answers a;
  parse_answers(&p, &a);
  assert_true(has(&a, "NetStream.Play.Reset"));
  assert_true(has(&a, "NetStream.Play.Start"));
  assert_string_equal(a.words[1], "_result"); /* createStream */
  /* the ping response: last bytes are type 4 event 7 value 77 */
  const uint8_t *end = (uint8_t *)p.out.data + p.out.len - 6;
  assert_int_equal(end[1], RTMP_UC_PING_RESPONSE);
  assert_int_equal(end[5], 77);
  rtmp_session_free(s);
  buf_free(&c);
  buf_free(&p.out);
}

static void test_protocol_errors(void **state) {
  (void)state;
  struct peer p = {.verdict = RTMP_ACCEPT};
  buf_init(&p.out);
  struct rtmp_session *s = rtmp_session_new(&lim, &ops, &p);
  struct buf c;
  buf_init(&c);
  rtmp_test_client_handshake(&c);
  rtmp_chunk_write_set_chunk_size(&c, 0, 128); /* invalid */
  assert_int_equal(rtmp_session_feed(s, (uint8_t *)c.data, c.len), -EPROTO);
  assert_string_equal(rtmp_session_error(s), "bad chunk size");
  rtmp_session_free(s);
  buf_reset(&p.out);
  s = rtmp_session_new(&lim, &ops, &p);
  const uint8_t http[] = "GET / HTTP/1.0\r\n\r\n";
  assert_int_equal(rtmp_session_feed(s, http, sizeof http), -EPROTO);
  rtmp_session_free(s);
  buf_free(&c);
  buf_free(&p.out);
}

/* AMF3 command messages (type 17: a 0 byte, then AMF0), an Aggregate
 * message of two FLV tags, and an Abort of a half-sent message. */
static void test_amf3_aggregate_abort(void **state) {
  (void)state;
  struct peer p = {.verdict = RTMP_ACCEPT};
  buf_init(&p.out);
  struct rtmp_session *s = rtmp_session_new(&lim, &ops, &p);
  struct buf c, b;
  buf_init(&c);
  buf_init(&b);
  rtmp_test_client_handshake(&c);
  rtmp_test_client_command(&c, "connect", 1, NULL, 0);
  buf_append(&b, "", 1); /* AMF3 format selector */
  amf_put_string(&b, "publish");
  amf_put_number(&b, 2);
  amf_put_null(&b);
  amf_put_string(&b, "k3");
  rtmp_chunk_write(&c, 3, RTMP_MSG_COMMAND_AMF3, 1, 0, (uint8_t *)b.data, b.len, 128);
  /* aggregate: two video tags at 1000 and 1040, message timestamp 5000 */
  uint8_t agg[2 * (11 + 3 + 4)] = {0};
  for (int i = 0; i < 2; i++) {
    uint8_t *t = agg + i * 18;
    uint32_t ts = 1000 + 40 * (uint32_t)i;
    t[0] = RTMP_MSG_VIDEO, t[3] = 3, t[4] = (uint8_t)(ts >> 16), t[5] = (uint8_t)(ts >> 8), t[6] = (uint8_t)ts;
    t[11] = 0x27, t[12] = 1;
    t[17] = 14; /* previous tag size */
  }
  rtmp_chunk_write(&c, 6, RTMP_MSG_AGGREGATE, 1, 5000, agg, sizeof agg, 128);
  /* the first chunk of a 300-byte message, then Abort, then a whole one */
  uint8_t big[300] = {0x27, 1};
  struct buf half;
  buf_init(&half);
  rtmp_chunk_write(&half, 7, RTMP_MSG_VIDEO, 1, 6000, big, sizeof big, 128);
  buf_append(&c, half.data, 12 + 128);
  uint8_t abort_body[4] = {0, 0, 0, 7};
  rtmp_chunk_write(&c, 2, RTMP_MSG_ABORT, 0, 0, abort_body, 4, 128);
  rtmp_chunk_write(&c, 7, RTMP_MSG_VIDEO, 1, 7000, big, 10, 128);
  assert_int_equal(feed_bytewise(s, &c), 0);
  assert_string_equal(p.published, "k3");
  assert_int_equal(p.media, 3);
  assert_int_equal(p.last_ts, 7000);
  rtmp_session_free(s);
  buf_free(&c);
  buf_free(&b);
  buf_free(&half);
  buf_free(&p.out);
}

/* Before a publish is accepted a connection holds at most
 * RTMP_PREAUTH_BUDGET of message assembly, whatever max_message_size
 * says (here 1 MiB): a 1 MiB message announced right after connect is
 * refused with an error that says why. */
static void test_preauth_budget(void **state) {
  (void)state;
  struct peer p = {.verdict = RTMP_ACCEPT};
  buf_init(&p.out);
  const struct rtmp_session_limits big_lim = {65536, 2u << 20, 0};
  struct rtmp_session *s = rtmp_session_new(&big_lim, &ops, &p);
  struct buf c;
  buf_init(&c);
  rtmp_test_client_handshake(&c);
  rtmp_test_client_command(&c, "connect", 1, NULL, 0);
  /* only the first chunk of a 1 MiB data message: its header is enough */
  uint8_t hdr[12] = {0x05, 0, 0, 0, 0x10, 0x00, 0x00, RTMP_MSG_DATA_AMF0, 1, 0, 0, 0};
  buf_append(&c, hdr, sizeof hdr);
  buf_append(&c, "\x02\x00\x0aonMetaData", 13);
  assert_int_equal(rtmp_session_feed(s, (uint8_t *)c.data, c.len), -EPROTO);
  assert_string_equal(rtmp_session_error(s),
                      "message of 1048576 bytes before publish: over the 65536-byte pre-publish budget");
  rtmp_session_free(s);

  /* a player stays on the budget: it sends commands, never media */
  buf_reset(&c);
  buf_reset(&p.out);
  s = rtmp_session_new(&big_lim, &ops, &p);
  rtmp_test_client_handshake(&c);
  rtmp_test_client_command(&c, "connect", 1, NULL, 0);
  rtmp_test_client_command(&c, "play", 0, "gala", 1);
  hdr[4] = 0x01; /* 64 KiB + 1 */
  hdr[6] = 0x01;
  buf_append(&c, hdr, sizeof hdr);
  assert_int_equal(rtmp_session_feed(s, (uint8_t *)c.data, c.len), -EPROTO);
  assert_int_equal(rtmp_session_state(s), RTMP_SESSION_PLAYING);
  assert_non_null(strstr(rtmp_session_error(s), "65537 bytes before publish"));
  rtmp_session_free(s);

  /* once publishing, max_message_size applies: 1 MiB passes */
  buf_reset(&c);
  buf_reset(&p.out);
  s = rtmp_session_new(&big_lim, &ops, &p);
  publish_script(&c);
  uint8_t *video = calloc(1, 1 << 20);
  video[0] = 0x17;
  rtmp_chunk_write(&c, 6, RTMP_MSG_VIDEO, 1, 0, video, 1 << 20, 128);
  assert_int_equal(rtmp_session_feed(s, (uint8_t *)c.data, c.len), 0);
  assert_int_equal(p.media, 1);
  /* and after the publish ends the budget is back */
  buf_reset(&c);
  rtmp_test_client_command(&c, "FCUnpublish", 6, "the-key", 0);
  rtmp_chunk_write(&c, 6, RTMP_MSG_VIDEO, 1, 40, video, 1 << 20, 128);
  assert_int_equal(rtmp_session_feed(s, (uint8_t *)c.data, c.len), -EPROTO);
  assert_non_null(strstr(rtmp_session_error(s), "before publish"));
  free(video);
  rtmp_session_free(s);
  buf_free(&c);
  buf_free(&p.out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_publish_sequence),
      cmocka_unit_test(test_publish_refused),
      cmocka_unit_test(test_play),
      cmocka_unit_test(test_protocol_errors),
      cmocka_unit_test(test_amf3_aggregate_abort),
      cmocka_unit_test(test_preauth_budget),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
