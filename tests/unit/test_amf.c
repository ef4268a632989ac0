/* AMF0: encode/decode round trips, table decoding, and refusal of
 * truncated, too deep or oversized input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "relay/amf.h"
#include "core/buf.h"

static void test_roundtrip_values(void **state) {
  (void)state;
  struct buf b;
  buf_init(&b);
  amf_put_string(&b, "connect");
  amf_put_number(&b, 1);
  amf_put_object_start(&b);
  amf_put_prop_string(&b, "app", "live");
  amf_put_prop_number(&b, "objectEncoding", 3);
  amf_put_prop_boolean(&b, "fpad", false);
  amf_put_object_end(&b);
  amf_put_null(&b);

  struct amf_reader r;
  amf_reader_init(&r, b.data, b.len);
  const char *s;
  size_t n;
  assert_int_equal(amf_read_string(&r, &s, &n), 0);
  assert_int_equal(n, 7);
  assert_memory_equal(s, "connect", 7);
  double d;
  assert_int_equal(amf_read_number(&r, &d), 0);
  assert_true(d == 1);
  char app[16] = "";
  double enc = -1;
  bool fpad = true;
  struct amf_field f[] = {
      {AMF_STRING, "app", app, sizeof app},
      {AMF_NUMBER, "objectEncoding", &enc, sizeof enc},
      {AMF_BOOLEAN, "fpad", &fpad, sizeof fpad},
  };
  assert_int_equal(amf_decode_object(&r, f, 3), 0);
  assert_string_equal(app, "live");
  assert_true(enc == 3);
  assert_false(fpad);
  assert_int_equal(amf_read_null(&r), 0);
  assert_true(amf_at_end(&r));
  buf_free(&b);
}

static void test_seq_table_and_defaults(void **state) {
  (void)state;
  struct buf b;
  buf_init(&b);
  amf_put_number(&b, 5);
  amf_put_null(&b);
  amf_put_string(&b, "stream-key");
  struct amf_reader r;
  amf_reader_init(&r, b.data, b.len);
  double txid = 0;
  char name[32] = "", type[8] = "dflt";
  struct amf_field f[] = {
      {AMF_NUMBER, NULL, &txid, sizeof txid},
      {AMF_NULL, NULL, NULL, 0},
      {AMF_STRING, NULL, name, sizeof name},
      {AMF_STRING, NULL, type, sizeof type}, /* absent: keeps default */
  };
  assert_int_equal(amf_decode_seq(&r, f, 4), 0);
  assert_true(txid == 5);
  assert_string_equal(name, "stream-key");
  assert_string_equal(type, "dflt");
  buf_free(&b);
}

static void test_string_too_long_for_dest(void **state) {
  (void)state;
  struct buf b;
  buf_init(&b);
  amf_put_string(&b, "0123456789");
  struct amf_reader r;
  amf_reader_init(&r, b.data, b.len);
  char small[10];
  struct amf_field f[] = {{AMF_STRING, NULL, small, sizeof small}};
  assert_int_equal(amf_decode_seq(&r, f, 1), -EINVAL);
  buf_free(&b);
}

static void test_truncated_everywhere(void **state) {
  (void)state;
  struct buf b;
  buf_init(&b);
  amf_put_ecma_start(&b, 2);
  amf_put_prop_number(&b, "width", 1280);
  amf_put_key(&b, "nested");
  amf_put_object_start(&b);
  amf_put_prop_string(&b, "x", "yz");
  amf_put_object_end(&b);
  amf_put_object_end(&b);
  for (size_t cut = 0; cut < b.len; cut++) {
    struct amf_reader r;
    amf_reader_init(&r, b.data, cut);
    assert_int_equal(amf_skip(&r), -EINVAL);
    assert_int_equal(r.pos, 0);
  }
  struct amf_reader r;
  amf_reader_init(&r, b.data, b.len);
  assert_int_equal(amf_skip(&r), 0);
  assert_true(amf_at_end(&r));
  buf_free(&b);
}

static void test_depth_and_counts_bounded(void **state) {
  (void)state;
  uint8_t deep[256];
  /* strict arrays of one element nested 40 deep */
  size_t n = 0;
  for (int i = 0; i < 40; i++) {
    const uint8_t hdr[5] = {AMF_STRICT_ARRAY, 0, 0, 0, 1};
    memcpy(deep + n, hdr, 5);
    n += 5;
  }
  deep[n++] = AMF_NULL;
  struct amf_reader r;
  amf_reader_init(&r, deep, n);
  assert_int_equal(amf_skip(&r), -EINVAL);
  const uint8_t huge[] = {AMF_STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff, AMF_NULL};
  amf_reader_init(&r, huge, sizeof huge);
  assert_int_equal(amf_skip(&r), -EINVAL);
  const uint8_t amf3[] = {AMF_AVMPLUS, 0x01};
  amf_reader_init(&r, amf3, sizeof amf3);
  assert_int_equal(amf_skip(&r), -EINVAL);
}

static void test_number_encoding_bytes(void **state) {
  (void)state;
  struct buf b;
  buf_init(&b);
  amf_put_number(&b, 1.0);
  const uint8_t want[] = {0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
  assert_int_equal(b.len, sizeof want);
  assert_memory_equal(b.data, want, sizeof want);
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_values),         cmocka_unit_test(test_seq_table_and_defaults),
      cmocka_unit_test(test_string_too_long_for_dest), cmocka_unit_test(test_truncated_everywhere),
      cmocka_unit_test(test_depth_and_counts_bounded), cmocka_unit_test(test_number_encoding_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
