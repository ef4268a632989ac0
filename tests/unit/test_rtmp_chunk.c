/* RTMP chunk stream: writer -> reader round trips fed one byte at a time,
 * all four header types with deltas, extended timestamps, Set Chunk Size,
 * Abort, and the bounds (message size, chunk streams). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"
#include <libavutil/buffer.h>

#include "core/buf.h"
#include "relay/rtmp_chunk.h"

#define MAXM 16
struct got {
  int n;
  struct rtmp_msg m[MAXM];
  uint8_t *copy[MAXM];
  struct rtmp_chunk_reader *rd;
  int set_chunk_on; /* apply Set Chunk Size messages */
};

static int on_msg(void *opaque, const struct rtmp_msg *msg) {
  struct got *g = opaque;
  assert_true(g->n < MAXM);
  g->m[g->n] = *msg;
  g->copy[g->n] = malloc(msg->len + 1);
  memcpy(g->copy[g->n], msg->data, msg->len);
  g->m[g->n].data = g->copy[g->n];
  g->n++;
  if (g->set_chunk_on && msg->type == RTMP_MSG_SET_CHUNK_SIZE) {
    uint32_t v = (uint32_t)msg->data[0] << 24 | msg->data[1] << 16 | msg->data[2] << 8 | msg->data[3];
    assert_int_equal(rtmp_chunk_reader_set_chunk_size(g->rd, v), 0);
  }
  return 0;
}

static void got_free(struct got *g) {
  for (int i = 0; i < g->n; i++)
    free(g->copy[i]);
}

static void feed_all(struct rtmp_chunk_reader *rd, const void *data, size_t len, struct got *g, size_t step) {
  const uint8_t *p = data;
  for (size_t i = 0; i < len; i += step) {
    size_t n = len - i < step ? len - i : step;
    assert_int_equal(rtmp_chunk_reader_feed(rd, p + i, n, on_msg, g), 0);
  }
}

static void test_roundtrip_bytewise(void **state) {
  (void)state;
  uint8_t payload[1000];
  for (size_t i = 0; i < sizeof payload; i++)
    payload[i] = (uint8_t)i;
  size_t steps[] = {1, 7, 128, 100000};
  for (size_t k = 0; k < 4; k++) {
    struct buf b;
    buf_init(&b);
    rtmp_chunk_write(&b, 6, RTMP_MSG_VIDEO, 1, 40, payload, sizeof payload, 128);
    rtmp_chunk_write(&b, 4, RTMP_MSG_AUDIO, 1, 0x1234567, payload, 3, 128);     /* extended ts */
    rtmp_chunk_write(&b, 400, RTMP_MSG_AUDIO, 1, 0x1234567, payload, 300, 128); /* 3-byte csid, ext */
    rtmp_chunk_write(&b, 70, RTMP_MSG_DATA_AMF0, 1, 5, payload, 0, 128);        /* 2-byte csid, empty */
    assert_int_equal(b.len, rtmp_chunk_size(6, 40, 1000, 128) + rtmp_chunk_size(4, 0x1234567, 3, 128) +
                                rtmp_chunk_size(400, 0x1234567, 300, 128) + rtmp_chunk_size(70, 5, 0, 128));
    struct rtmp_chunk_reader rd;
    rtmp_chunk_reader_init(&rd, 65536, 1 << 20);
    struct got g = {.rd = &rd};
    feed_all(&rd, b.data, b.len, &g, steps[k]);
    assert_int_equal(g.n, 4);
    assert_int_equal(g.m[0].csid, 6);
    assert_int_equal(g.m[0].type, RTMP_MSG_VIDEO);
    assert_int_equal(g.m[0].timestamp, 40);
    assert_int_equal(g.m[0].stream_id, 1);
    assert_int_equal(g.m[0].len, 1000);
    assert_memory_equal(g.m[0].data, payload, 1000);
    assert_int_equal(g.m[1].timestamp, 0x1234567);
    assert_int_equal(g.m[1].len, 3);
    assert_int_equal(g.m[2].csid, 400);
    assert_int_equal(g.m[2].len, 300);
    assert_memory_equal(g.m[2].data, payload, 300);
    assert_int_equal(g.m[3].csid, 70);
    assert_int_equal(g.m[3].len, 0);
    got_free(&g);
    rtmp_chunk_reader_free(&rd);
    buf_free(&b);
  }
}

/* Header types 1, 2 and 3 by hand: deltas accumulate, type 3 starting a
 * message repeats the last delta. */
static void test_header_types(void **state) {
  (void)state;
  const uint8_t in[] = {
      /* fmt0 csid 4: ts 1000, len 2, audio, stream 1 */
      0x04,
      0x00,
      0x03,
      0xe8,
      0x00,
      0x00,
      0x02,
      0x08,
      0x01,
      0x00,
      0x00,
      0x00,
      0xaa,
      0xbb,
      /* fmt1: delta 23, len 3, audio */
      0x44,
      0x00,
      0x00,
      0x17,
      0x00,
      0x00,
      0x03,
      0x08,
      0x01,
      0x02,
      0x03,
      /* fmt2: delta 24 */
      0x84,
      0x00,
      0x00,
      0x18,
      0x04,
      0x05,
      0x06,
      /* fmt3: new message, delta 24 again */
      0xc4,
      0x07,
      0x08,
      0x09,
  };
  struct rtmp_chunk_reader rd;
  rtmp_chunk_reader_init(&rd, 65536, 1 << 20);
  struct got g = {.rd = &rd};
  feed_all(&rd, in, sizeof in, &g, 1);
  assert_int_equal(g.n, 4);
  assert_int_equal(g.m[0].timestamp, 1000);
  assert_int_equal(g.m[1].timestamp, 1023);
  assert_int_equal(g.m[2].timestamp, 1047);
  assert_int_equal(g.m[3].timestamp, 1071);
  assert_int_equal(g.m[3].len, 3);
  assert_int_equal(g.m[3].stream_id, 1);
  assert_int_equal(g.m[3].data[2], 9);
  got_free(&g);
  rtmp_chunk_reader_free(&rd);
}

static void test_set_chunk_size_midstream(void **state) {
  (void)state;
  uint8_t payload[5000];
  memset(payload, 0x42, sizeof payload);
  struct buf b;
  buf_init(&b);
  rtmp_chunk_write_set_chunk_size(&b, 4096, 128);
  rtmp_chunk_write(&b, 6, RTMP_MSG_VIDEO, 1, 0, payload, sizeof payload, 4096);
  struct rtmp_chunk_reader rd;
  rtmp_chunk_reader_init(&rd, 65536, 1 << 20);
  struct got g = {.rd = &rd, .set_chunk_on = 1};
  feed_all(&rd, b.data, b.len, &g, 1);
  assert_int_equal(g.n, 2);
  assert_int_equal(g.m[1].len, 5000);
  assert_int_equal(rtmp_chunk_reader_set_chunk_size(&rd, 0), -EINVAL);
  assert_int_equal(rtmp_chunk_reader_set_chunk_size(&rd, 65537), -EINVAL);
  got_free(&g);
  rtmp_chunk_reader_free(&rd);
  buf_free(&b);
}

static void test_abort(void **state) {
  (void)state;
  uint8_t payload[300] = {0};
  struct buf b;
  buf_init(&b);
  rtmp_chunk_write(&b, 6, RTMP_MSG_VIDEO, 1, 0, payload, sizeof payload, 128);
  struct rtmp_chunk_reader rd;
  rtmp_chunk_reader_init(&rd, 65536, 1 << 20);
  struct got g = {.rd = &rd};
  /* the first chunk only, then abort, then a fresh message on csid 6 */
  assert_int_equal(rtmp_chunk_reader_feed(&rd, (uint8_t *)b.data, 12 + 128, on_msg, &g), 0);
  assert_int_equal(g.n, 0);
  rtmp_chunk_reader_abort(&rd, 6);
  struct buf b2;
  buf_init(&b2);
  rtmp_chunk_write(&b2, 6, RTMP_MSG_VIDEO, 1, 7, payload, 10, 128);
  feed_all(&rd, b2.data, b2.len, &g, 1);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.m[0].len, 10);
  assert_int_equal(g.m[0].timestamp, 7);
  got_free(&g);
  rtmp_chunk_reader_free(&rd);
  buf_free(&b);
  buf_free(&b2);
}

static void test_limits(void **state) {
  (void)state;
  struct rtmp_chunk_reader rd;
  rtmp_chunk_reader_init(&rd, 65536, 1000);
  /* a message announced larger than max_message_size */
  const uint8_t big[] = {0x06, 0, 0, 0, 0x00, 0x10, 0x00, 0x09, 1, 0, 0, 0};
  assert_int_equal(rtmp_chunk_reader_feed(&rd, big, sizeof big, NULL, NULL), RTMP_CHUNK_E_TOO_LARGE);
  /* and the reader stays failed */
  assert_int_equal(rtmp_chunk_reader_feed(&rd, big, 1, NULL, NULL), RTMP_CHUNK_E_TOO_LARGE);
  rtmp_chunk_reader_free(&rd);

  rtmp_chunk_reader_init(&rd, 65536, 1000);
  /* type 1 header on a never-seen chunk stream with a partial message each:
   * more chunk streams than we track */
  int rc = 0;
  for (uint32_t cs = 3; cs < 3 + RTMP_MAX_CHUNK_STREAMS + 2 && rc == 0; cs++) {
    uint8_t h[12] = {(uint8_t)cs, 0, 0, 0, 0, 0, 0, 8, 1, 0, 0, 0}; /* empty message */
    rc = rtmp_chunk_reader_feed(&rd, h, sizeof h, NULL, NULL);
  }
  assert_int_equal(rc, RTMP_CHUNK_E_TOO_MANY_STREAMS);
  rtmp_chunk_reader_free(&rd);

  rtmp_chunk_reader_init(&rd, 65536, 1000);
  const uint8_t orphan[] = {0xc9, 0x00};
  assert_int_equal(rtmp_chunk_reader_feed(&rd, orphan, 1, NULL, NULL), RTMP_CHUNK_E_NO_HEADER);
  rtmp_chunk_reader_free(&rd);
}

/* rtmp_chunk_reader_set_limits: a message that starts after it is held to
 * the new bounds, alone and together with the partial ones. */
static void test_set_limits(void **state) {
  (void)state;
  struct rtmp_chunk_reader rd;
  rtmp_chunk_reader_init(&rd, 65536, 1 << 20);
  rtmp_chunk_reader_set_limits(&rd, 1000, 1500);
  /* 1001 bytes announced: refused, and the reader says which length */
  const uint8_t big[] = {0x06, 0, 0, 0, 0x00, 0x03, 0xe9, 0x09, 1, 0, 0, 0};
  assert_int_equal(rtmp_chunk_reader_feed(&rd, big, sizeof big, NULL, NULL), RTMP_CHUNK_E_TOO_LARGE);
  assert_int_equal(rd.refused_len, 1001);
  rtmp_chunk_reader_free(&rd);

  /* two partial 800-byte messages on two chunk streams: 1600 > 1500 */
  rtmp_chunk_reader_init(&rd, 65536, 1 << 20);
  rtmp_chunk_reader_set_limits(&rd, 1000, 1500);
  uint8_t first[12 + 128] = {0x06, 0, 0, 0, 0x00, 0x03, 0x20, 0x09, 1, 0, 0, 0, 0x17}; /* one whole chunk */
  const uint8_t second[] = {0x07, 0, 0, 0, 0x00, 0x03, 0x20, 0x09, 1, 0, 0, 0};
  assert_int_equal(rtmp_chunk_reader_feed(&rd, first, sizeof first, NULL, NULL), 0);
  assert_int_equal(rtmp_chunk_reader_feed(&rd, second, sizeof second, NULL, NULL), RTMP_CHUNK_E_TOO_LARGE);
  assert_int_equal(rd.refused_len, 800);
  rtmp_chunk_reader_free(&rd);

  /* raised again: the same 1001 bytes pass */
  struct got g = {0};
  struct buf b;
  buf_init(&b);
  uint8_t payload[1001] = {0x17};
  rtmp_chunk_write(&b, 6, RTMP_MSG_VIDEO, 1, 0, payload, sizeof payload, 128);
  rtmp_chunk_reader_init(&rd, 65536, 1 << 20);
  rtmp_chunk_reader_set_limits(&rd, 1000, 1000);
  rtmp_chunk_reader_set_limits(&rd, 1 << 20, 2u << 20);
  feed_all(&rd, b.data, b.len, &g, 1);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.m[0].len, 1001);
  got_free(&g);
  rtmp_chunk_reader_free(&rd);
  buf_free(&b);
}

static void test_wire_shared_and_patch(void **state) {
  (void)state;
  uint8_t payload[9000];
  memset(payload, 1, sizeof payload);
  AVBufferRef *w = rtmp_chunk_wire(RTMP_CSID_VIDEO, RTMP_MSG_VIDEO, 33, payload, sizeof payload);
  assert_non_null(w);
  size_t hl = rtmp_chunk_first_header_len(w->data, (size_t)w->size);
  assert_int_equal(hl, 12);
  uint8_t hdr[16];
  memcpy(hdr, w->data, hl);
  rtmp_chunk_patch_stream_id(hdr, hl, 5);
  struct rtmp_chunk_reader rd;
  rtmp_chunk_reader_init(&rd, 65536, 1 << 20);
  assert_int_equal(rtmp_chunk_reader_set_chunk_size(&rd, RTMP_OUT_CHUNK_SIZE), 0);
  struct got g = {.rd = &rd};
  feed_all(&rd, hdr, hl, &g, 1);
  feed_all(&rd, w->data + hl, (size_t)w->size - hl, &g, 333);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.m[0].stream_id, 5);
  assert_int_equal(g.m[0].timestamp, 33);
  assert_int_equal(g.m[0].len, sizeof payload);
  got_free(&g);
  rtmp_chunk_reader_free(&rd);
  av_buffer_unref(&w);
}

/* Retiming a shared wire: the same message with another timestamp, into
 * and out of the extended form, read back by our own reader; anything
 * that is not one whole message of ours is refused. */
static void test_wire_retimed(void **state) {
  (void)state;
  uint8_t payload[9000];
  for (size_t i = 0; i < sizeof payload; i++)
    payload[i] = (uint8_t)(i * 7);
  const uint32_t from[] = {33, 0xfffffe, 0x1000000, 0x1000000, 0};
  const uint32_t to[] = {0x12345678, 0xffffff, 5, 0x2000000, 0};
  const uint32_t csids[] = {RTMP_CSID_VIDEO, 70, 400, RTMP_CSID_AUDIO, RTMP_CSID_VIDEO};
  const size_t lens[] = {sizeof payload, 4096, 4097, 1, 0};
  for (int k = 0; k < 5; k++) {
    AVBufferRef *w = rtmp_chunk_wire(csids[k], RTMP_MSG_VIDEO, from[k], payload, lens[k]);
    AVBufferRef *r = rtmp_chunk_wire_retimed(w->data, (size_t)w->size, to[k]);
    assert_non_null(r);
    AVBufferRef *want = rtmp_chunk_wire(csids[k], RTMP_MSG_VIDEO, to[k], payload, lens[k]);
    assert_int_equal(r->size, want->size);
    assert_memory_equal(r->data, want->data, (size_t)want->size);
    struct rtmp_chunk_reader rd;
    rtmp_chunk_reader_init(&rd, 65536, 1 << 20);
    assert_int_equal(rtmp_chunk_reader_set_chunk_size(&rd, RTMP_OUT_CHUNK_SIZE), 0);
    struct got g = {.rd = &rd};
    feed_all(&rd, r->data, (size_t)r->size, &g, 100);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.m[0].timestamp, to[k]);
    assert_int_equal(g.m[0].len, lens[k]);
    if (lens[k])
      assert_memory_equal(g.m[0].data, payload, lens[k]);
    got_free(&g);
    rtmp_chunk_reader_free(&rd);
    /* cut short, or a byte too many: not a whole message */
    assert_null(rtmp_chunk_wire_retimed(w->data, (size_t)w->size - 1, 1));
    uint8_t *longer = malloc((size_t)w->size + 1);
    memcpy(longer, w->data, (size_t)w->size);
    longer[w->size] = 0;
    assert_null(rtmp_chunk_wire_retimed(longer, (size_t)w->size + 1, 1));
    free(longer);
    av_buffer_unref(&w);
    av_buffer_unref(&r);
    av_buffer_unref(&want);
  }
  uint8_t fmt1[] = {0x46, 0, 0, 1, 0, 0, 1, 9, 0x17};
  assert_null(rtmp_chunk_wire_retimed(fmt1, sizeof fmt1, 1));
  assert_null(rtmp_chunk_wire_retimed(fmt1, 0, 1));
}

/* The reader's codes are errno values with words of their own. */
static void test_strerror(void **state) {
  (void)state;
  assert_int_equal(RTMP_CHUNK_E_NOMEM, -ENOMEM);
  assert_string_equal(rtmp_chunk_strerror(RTMP_CHUNK_E_TOO_LARGE), "message too large");
  assert_string_equal(rtmp_chunk_strerror(RTMP_CHUNK_E_NO_HEADER), "chunk continues a stream never opened");
  assert_string_equal(rtmp_chunk_strerror(-EINVAL), strerror(EINVAL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror),     cmocka_unit_test(test_roundtrip_bytewise),
      cmocka_unit_test(test_header_types), cmocka_unit_test(test_set_chunk_size_midstream),
      cmocka_unit_test(test_abort),        cmocka_unit_test(test_limits),
      cmocka_unit_test(test_set_limits),   cmocka_unit_test(test_wire_shared_and_patch),
      cmocka_unit_test(test_wire_retimed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
