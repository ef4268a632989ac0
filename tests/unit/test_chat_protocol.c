/* Unit tests for chat/protocol: parsing and validation of client frames,
 * server message building, the viewers' lean events and the deflated
 * batch frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#include "tests/unit/test_main.h"

#include "chat/protocol.h"

static enum chat_parse_result parse(const char *s, struct chat_msg *m, struct chat_parse_error *e) {
  return chat_protocol_parse(s, strlen(s), m, e);
}

static void test_hello(void **state) {
  (void)state;
  struct chat_msg m;
  struct chat_parse_error e;
  assert_int_equal(parse("{\"type\":\"hello\",\"name\":\"小张\",\"token\":\"t\"}", &m, &e), CHAT_PARSE_OK);
  assert_int_equal(m.type, CHAT_MSG_HELLO);
  assert_string_equal(m.name, "小张");
  assert_string_equal(m.token, "t");
  assert_null(m.nonce);
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"hello\"}", &m, &e), CHAT_PARSE_OK);
  assert_null(m.name);
  chat_msg_free(&m);
}

static void test_hello_compress(void **state) {
  (void)state;
  struct chat_msg m;
  struct chat_parse_error e;
  assert_int_equal(parse("{\"type\":\"hello\",\"compress\":\"deflate-raw\"}", &m, &e), CHAT_PARSE_OK);
  assert_string_equal(m.compress, CHAT_COMPRESS_DEFLATE_RAW);
  assert_null(m.name);
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"hello\",\"name\":\"a\"}", &m, &e), CHAT_PARSE_OK);
  assert_null(m.compress); /* not given: the connection keeps what it had */
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"hello\",\"compress\":\"zstd\"}", &m, &e), CHAT_PARSE_OK);
  assert_string_equal(m.compress, "zstd"); /* unknown: text batches, not an error */
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"hello\",\"compress\":true}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_non_null(strstr(e.message, "compress"));
  char big[128];
  snprintf(big, sizeof(big), "{\"type\":\"hello\",\"compress\":\"%0*d\"}", CHAT_COMPRESS_MAX + 1, 0);
  assert_int_equal(parse(big, &m, &e), CHAT_PARSE_BAD_REQUEST);
}

static void test_comment(void **state) {
  (void)state;
  struct chat_msg m;
  struct chat_parse_error e;
  assert_int_equal(parse("{\"type\":\"comment\",\"text\":\"新年快乐\",\"nonce\":\"c1\"}", &m, &e), CHAT_PARSE_OK);
  assert_int_equal(m.type, CHAT_MSG_COMMENT);
  assert_string_equal(m.text, "新年快乐");
  assert_string_equal(m.nonce, "c1");
  chat_msg_free(&m);
  /* missing text: bad request, and the nonce is still known for the reply */
  assert_int_equal(parse("{\"type\":\"comment\",\"nonce\":\"c2\"}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_string_equal(e.nonce, "c2");
  assert_non_null(strstr(e.message, "text"));
  assert_int_equal(parse("{\"type\":\"comment\",\"text\":5}", &m, &e), CHAT_PARSE_BAD_REQUEST);
}

static void test_mod(void **state) {
  (void)state;
  struct chat_msg m;
  struct chat_parse_error e;
  assert_int_equal(
      parse("{\"type\":\"mod\",\"action\":\"timeout\",\"user\":\"u1\",\"seconds\":60,\"nonce\":\"m1\"}", &m, &e),
      CHAT_PARSE_OK);
  assert_int_equal(m.action, CHAT_MOD_TIMEOUT);
  assert_string_equal(m.user, "u1");
  assert_int_equal(m.seconds, 60);
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"timeout\",\"user\":\"u1\",\"seconds\":0}", &m, &e),
                   CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"slow\",\"seconds\":0}", &m, &e), CHAT_PARSE_OK);
  assert_int_equal(m.action, CHAT_MOD_SLOW);
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"hold\",\"on\":true}", &m, &e), CHAT_PARSE_OK);
  assert_true(m.on);
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"hold\",\"on\":1}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"pin\",\"id\":null}", &m, &e), CHAT_PARSE_OK);
  assert_null(m.id);
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"pin\",\"id\":\"abc\"}", &m, &e), CHAT_PARSE_OK);
  assert_string_equal(m.id, "abc");
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"words_add\",\"words\":[\"a\",\"b\"]}", &m, &e), CHAT_PARSE_OK);
  assert_int_equal(json_array_size(m.words), 2);
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"words_add\",\"words\":[]}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"words_add\",\"words\":[1]}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"clear\"}", &m, &e), CHAT_PARSE_OK);
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"explode\"}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("{\"type\":\"mod\"}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"delete\"}", &m, &e), CHAT_PARSE_BAD_REQUEST);
}

static void test_bad(void **state) {
  (void)state;
  struct chat_msg m;
  struct chat_parse_error e;
  assert_int_equal(parse("not json", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("[1,2]", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("{\"type\":\"dance\"}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("{}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("{\"type\":\"comment\",\"text\":\"a\",\"nonce\":7}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("{\"type\":\"comment\",\"text\":\"a\\u0000b\"}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  assert_int_equal(parse("{\"type\":\"comment\",\"text\":\"a\",\"text\":\"b\"}", &m, &e), CHAT_PARSE_BAD_REQUEST);
  char longnonce[200];
  snprintf(longnonce, sizeof(longnonce), "{\"type\":\"hello\",\"nonce\":\"%0100d\"}", 1);
  assert_int_equal(parse(longnonce, &m, &e), CHAT_PARSE_BAD_REQUEST);
}

static void test_utf8(void **state) {
  (void)state;
  struct chat_msg m;
  struct chat_parse_error e;
  const char overlong[] = "{\"type\":\"comment\",\"text\":\"\xc0\xaf\"}";
  assert_int_equal(parse(overlong, &m, &e), CHAT_PARSE_BAD_UTF8);
  const char surrogate[] = "{\"text\":\"\xed\xa0\x80\"}";
  assert_int_equal(parse(surrogate, &m, &e), CHAT_PARSE_BAD_UTF8);
  const char truncated[] = "{\"text\":\"\xe4\xbd\"}";
  assert_int_equal(parse(truncated, &m, &e), CHAT_PARSE_BAD_UTF8);
  assert_true(chat_utf8_valid("\xf0\x9f\x98\x80", 4));
  assert_false(chat_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
  assert_int_equal(chat_utf8_length("新年a", strlen("新年a")), 3);
}

static void test_serialize(void **state) {
  (void)state;
  json_t *ack = chat_ack_json("c1", "0001");
  size_t len;
  unsigned char *f = chat_json_frame(ack, 16, &len);
  assert_non_null(f);
  assert_string_equal((char *)f + 16, "{\"type\":\"ack\",\"nonce\":\"c1\",\"id\":\"0001\"}");
  assert_int_equal(len, strlen((char *)f + 16));
  free(f);
  json_decref(ack);
  json_t *err = chat_error_json("", "rate_limited", "slow down", 1500);
  assert_null(json_object_get(err, "nonce"));
  assert_int_equal(json_integer_value(json_object_get(err, "retry_after_ms")), 1500);
  json_decref(err);
  json_t *c = chat_comment_event("id1", chat_user_json("u", "n", "viewer"), "hi", 123);
  json_t *st = chat_state_json(5, true, c);
  assert_string_equal(json_string_value(json_object_get(json_object_get(st, "pinned"), "text")), "hi");
  assert_int_equal(json_integer_value(json_object_get(st, "slow")), 5);
  json_decref(st);
  json_decref(c);
}

static void test_event_for_viewers(void **state) {
  (void)state;
  json_t *c = chat_comment_event("id1", chat_user_json("g123", "小张", "viewer"), "新年快乐", 7);
  json_t *v = chat_event_for_viewers(c);
  char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
  assert_string_equal(text, "{\"type\":\"comment\",\"id\":\"id1\",\"user\":{\"name\":\"小张\"},"
                            "\"text\":\"新年快乐\",\"ts\":7}");
  free(text);
  /* the full form is untouched: moderators, the bus and the archive use it */
  assert_string_equal(json_string_value(json_object_get(json_object_get(c, "user"), "id")), "g123");
  json_decref(v);
  json_t *mc = chat_comment_event("id2", chat_user_json("m1", "主持", "moderator"), "hi", 8);
  v = chat_event_for_viewers(mc);
  json_t *u = json_object_get(v, "user");
  assert_null(json_object_get(u, "id"));
  assert_string_equal(json_string_value(json_object_get(u, "role")), "moderator"); /* the badge */
  json_decref(v);
  json_t *st = chat_state_json(0, false, mc);
  v = chat_event_for_viewers(st);
  assert_null(json_object_get(json_object_get(json_object_get(v, "pinned"), "user"), "id"));
  assert_non_null(json_object_get(json_object_get(json_object_get(st, "pinned"), "user"), "id"));
  json_decref(v);
  json_t *del = json_pack("{s:s, s:s}", "type", "delete", "id", "id1");
  v = chat_event_for_viewers(del);
  assert_ptr_equal(v, del); /* nothing to take out: the same object */
  json_decref(v);
  json_decref(del);
  json_decref(st);
  json_decref(mc);
  json_decref(c);
}

/* Raw inflate (windowBits -15), as a browser's DecompressionStream('deflate-raw'). */
static size_t inflate_raw(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
  z_stream z = {0};
  assert_int_equal(inflateInit2(&z, -15), Z_OK);
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END); /* complete on its own */
  size_t got = cap - z.avail_out;
  inflateEnd(&z);
  return got;
}

static void test_deflate_frame(void **state) {
  (void)state;
  json_t *events = json_array();
  for (int i = 0; i < 10; i++)
    json_array_append_new(events, chat_comment_event("0123456789abc", json_pack("{s:s}", "name", "小张"),
                                                     "祝大家新年快乐，万事如意", 1764800000000 + i));
  json_t *batch = json_pack("{s:s, s:o}", "type", "batch", "events", events);
  size_t tlen, zlen;
  unsigned char *text = chat_json_frame(batch, 16, &tlen);
  unsigned char *z = chat_deflate_frame(text + 16, tlen, 16, &zlen);
  assert_non_null(z);
  assert_true(zlen * 3 < tlen); /* repetitive on purpose: it must shrink */
  unsigned char out[8192];
  size_t n = inflate_raw(z + 16, zlen, out, sizeof(out));
  assert_int_equal(n, tlen);
  assert_memory_equal(out, text + 16, tlen); /* the text frame's JSON, byte for byte */
  free(z);
  free(text);
  json_decref(batch);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hello),
      cmocka_unit_test(test_comment),
      cmocka_unit_test(test_mod),
      cmocka_unit_test(test_bad),
      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_serialize),
      cmocka_unit_test(test_hello_compress),
      cmocka_unit_test(test_event_for_viewers),
      cmocka_unit_test(test_deflate_frame),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
