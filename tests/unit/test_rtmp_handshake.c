/* RTMP handshake: plain and digest (complex) server answers, fed one byte
 * at a time; bad versions refused; the client side answers S1 with C2. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "relay/rtmp_handshake.h"

struct sink {
  uint8_t data[8192];
  size_t len;
};

static void sink_send(void *opaque, const uint8_t *d, size_t n) {
  struct sink *s = opaque;
  assert_true(s->len + n <= sizeof s->data);
  memcpy(s->data + s->len, d, n);
  s->len += n;
}

static void fill(uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t)(seed >> 16);
  }
}

static void feed_bytewise(struct rtmp_handshake *hs, const uint8_t *d, size_t n, struct sink *s) {
  for (size_t i = 0; i < n; i++)
    assert_int_equal(rtmp_handshake_feed(hs, d + i, 1, sink_send, s), 1);
}

static void test_plain(void **state) {
  (void)state;
  struct rtmp_handshake hs;
  struct sink out = {0};
  rtmp_handshake_server_init(&hs);
  uint8_t c0c1[1 + RTMP_HANDSHAKE_SIZE];
  c0c1[0] = 3;
  fill(c0c1 + 1, RTMP_HANDSHAKE_SIZE, 7);
  memset(c0c1 + 5, 0, 4); /* zero version: plain */
  feed_bytewise(&hs, c0c1, sizeof c0c1, &out);
  assert_int_equal(out.len, 1 + 2 * RTMP_HANDSHAKE_SIZE);
  assert_int_equal(out.data[0], 3);
  assert_false(hs.complex);
  /* S2 echoes C1 */
  assert_memory_equal(out.data + 1 + RTMP_HANDSHAKE_SIZE, c0c1 + 1, RTMP_HANDSHAKE_SIZE);
  assert_int_equal(hs.state, RTMP_HS_WAIT_C2);
  /* C2 plus the start of the chunk stream in the same read */
  uint8_t c2[RTMP_HANDSHAKE_SIZE + 10];
  fill(c2, sizeof c2, 9);
  assert_int_equal(rtmp_handshake_feed(&hs, c2, sizeof c2, sink_send, &out), RTMP_HANDSHAKE_SIZE);
  assert_int_equal(hs.state, RTMP_HS_DONE);
}

static void check_complex(int scheme) {
  struct rtmp_handshake hs;
  struct sink out = {0};
  rtmp_handshake_server_init(&hs);
  uint8_t c0c1[1 + RTMP_HANDSHAKE_SIZE];
  uint8_t *c1 = c0c1 + 1;
  c0c1[0] = 3;
  fill(c1, RTMP_HANDSHAKE_SIZE, 11 + (unsigned)scheme);
  c1[4] = 9, c1[5] = 0, c1[6] = 124, c1[7] = 2; /* Flash Player 9.0.124.2 */
  rtmp_handshake_put_digest(c1, scheme, false);
  assert_true(rtmp_handshake_check_digest(c1, scheme, false));
  feed_bytewise(&hs, c0c1, sizeof c0c1, &out);
  assert_true(hs.complex);
  assert_int_equal(hs.scheme, scheme);
  const uint8_t *s1 = out.data + 1, *s2 = out.data + 1 + RTMP_HANDSHAKE_SIZE;
  /* What a Flash client verifies: S1 signed with the server key at the
   * same scheme, S2 signed with a key derived from C1's digest. */
  assert_true(rtmp_handshake_check_digest(s1, scheme, true));
  assert_true(rtmp_handshake_check_s2(s2, c1, scheme));
  uint8_t bad[RTMP_HANDSHAKE_SIZE];
  memcpy(bad, s2, sizeof bad);
  bad[100] ^= 1;
  assert_false(rtmp_handshake_check_s2(bad, c1, scheme));
}

static void test_complex_scheme0(void **state) {
  (void)state;
  check_complex(0);
}

static void test_complex_scheme1(void **state) {
  (void)state;
  check_complex(1);
}

static void test_versioned_but_unsigned_is_plain(void **state) {
  (void)state;
  struct rtmp_handshake hs;
  struct sink out = {0};
  rtmp_handshake_server_init(&hs);
  uint8_t c0c1[1 + RTMP_HANDSHAKE_SIZE];
  c0c1[0] = 3;
  fill(c0c1 + 1, RTMP_HANDSHAKE_SIZE, 5);
  c0c1[5] = 10;
  assert_int_equal(rtmp_handshake_feed(&hs, c0c1, sizeof c0c1, sink_send, &out), (long)sizeof c0c1);
  assert_false(hs.complex);
  assert_memory_equal(out.data + 1 + RTMP_HANDSHAKE_SIZE, c0c1 + 1, RTMP_HANDSHAKE_SIZE);
}

static void test_bad_version(void **state) {
  (void)state;
  struct rtmp_handshake hs;
  struct sink out = {0};
  rtmp_handshake_server_init(&hs);
  const uint8_t garbage[] = "GET / HTTP/1.1\r\n";
  assert_int_equal(rtmp_handshake_feed(&hs, garbage, sizeof garbage, sink_send, &out), -EPROTO);
  assert_int_equal(hs.state, RTMP_HS_FAILED);
  assert_int_equal(out.len, 0);
}

static void test_client_side(void **state) {
  (void)state;
  struct rtmp_handshake cli, srv;
  struct sink c_out = {0}, s_out = {0};
  rtmp_handshake_client_init(&cli, sink_send, &c_out);
  assert_int_equal(c_out.len, 1 + RTMP_HANDSHAKE_SIZE);
  rtmp_handshake_server_init(&srv);
  assert_int_equal(rtmp_handshake_feed(&srv, c_out.data, c_out.len, sink_send, &s_out), (long)c_out.len);
  size_t before = c_out.len;
  feed_bytewise(&cli, s_out.data, s_out.len, &c_out);
  assert_int_equal(cli.state, RTMP_HS_DONE);
  assert_int_equal(c_out.len - before, RTMP_HANDSHAKE_SIZE);
  /* C2 echoes S1 */
  assert_memory_equal(c_out.data + before, s_out.data + 1, RTMP_HANDSHAKE_SIZE);
  assert_int_equal(rtmp_handshake_feed(&srv, c_out.data + before, RTMP_HANDSHAKE_SIZE, sink_send, &s_out),
                   RTMP_HANDSHAKE_SIZE);
  assert_int_equal(srv.state, RTMP_HS_DONE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain),           cmocka_unit_test(test_complex_scheme0),
      cmocka_unit_test(test_complex_scheme1), cmocka_unit_test(test_versioned_but_unsigned_is_plain),
      cmocka_unit_test(test_bad_version),     cmocka_unit_test(test_client_side),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
