/* Unit tests for chat/protocol: parsing and validation of client frames,
 * server message building. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
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

static void test_comment(void **state) {
  (void)state;
  struct chat_msg m;
  struct chat_parse_error e;
  assert_int_equal(parse("{\"type\":\"comment\",\"text\":\"新年快乐\",\"nonce\":\"c1\"}", &m, &e),
                   CHAT_PARSE_OK);
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
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"timeout\",\"user\":\"u1\",\"seconds\":60,\"nonce\":\"m1\"}", &m, &e), CHAT_PARSE_OK);
  assert_int_equal(m.action, CHAT_MOD_TIMEOUT);
  assert_string_equal(m.user, "u1");
  assert_int_equal(m.seconds, 60);
  chat_msg_free(&m);
  assert_int_equal(parse("{\"type\":\"mod\",\"action\":\"timeout\",\"user\":\"u1\",\"seconds\":0}", &m, &e), CHAT_PARSE_BAD_REQUEST);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hello),  cmocka_unit_test(test_comment), cmocka_unit_test(test_mod),
      cmocka_unit_test(test_bad),    cmocka_unit_test(test_utf8),    cmocka_unit_test(test_serialize),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
