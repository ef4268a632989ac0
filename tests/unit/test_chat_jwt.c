/* Unit tests for chat/jwt: HS256 accepted, expired, forged, alg confusion,
 * duplicate claims. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "chat/jwt.h"

#define NOW 1800000000

static void test_valid(void **state) {
  (void)state;
  char *tok = jwt_sign_hs256("{\"sub\":\"u42\",\"name\":\"小张\",\"role\":\"moderator\",\"exp\":1800000100}", "s3cret");
  assert_non_null(tok);
  struct jwt_claims c;
  assert_int_equal(jwt_verify_hs256(tok, "s3cret", NOW, 0, &c), JWT_OK);
  assert_string_equal(c.sub, "u42");
  assert_string_equal(c.name, "小张");
  assert_string_equal(c.role, "moderator");
  assert_int_equal(c.exp, 1800000100);
  assert_int_equal(jwt_verify_hs256(tok, "other", NOW, 0, &c), JWT_BAD_SIGNATURE);
  free(tok);
}

/* A known token from RFC-style tooling (jwt.io's HS256 sample, secret
 * "your-256-bit-secret") with an exp added would need a new signature: we
 * check our signer against OpenSSL-independent structure instead. */
static void test_structure(void **state) {
  (void)state;
  char *tok = jwt_sign_hs256("{\"sub\":\"1\",\"exp\":1}", "k");
  assert_non_null(tok);
  assert_string_equal(strtok(tok, "."), "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
  free(tok);
}

/* A claim given twice is refused, whichever copy a parser would keep; a
 * non-numeric nbf is malformed. */
static void test_duplicate_claims(void **state) {
  (void)state;
  struct jwt_claims c;
  char *tok = jwt_sign_hs256("{\"sub\":\"u1\",\"role\":\"viewer\",\"role\":\"moderator\",\"exp\":1800000100}", "k");
  assert_non_null(tok);
  assert_int_equal(jwt_verify_hs256(tok, "k", NOW, 0, &c), JWT_MALFORMED);
  assert_string_equal(c.role, "");
  free(tok);
  tok = jwt_sign_hs256("{\"sub\":\"u1\",\"nbf\":\"soon\",\"exp\":1800000100}", "k");
  assert_int_equal(jwt_verify_hs256(tok, "k", NOW, 0, &c), JWT_MALFORMED);
  free(tok);
}

static void test_expired(void **state) {
  (void)state;
  char *tok = jwt_sign_hs256("{\"sub\":\"u\",\"exp\":1799999990}", "k");
  struct jwt_claims c;
  assert_int_equal(jwt_verify_hs256(tok, "k", NOW, 0, &c), JWT_EXPIRED);
  assert_int_equal(jwt_verify_hs256(tok, "k", NOW, 30, &c), JWT_OK);
  free(tok);
  tok = jwt_sign_hs256("{\"sub\":\"u\",\"exp\":1800000100,\"nbf\":1800000050}", "k");
  assert_int_equal(jwt_verify_hs256(tok, "k", NOW, 0, &c), JWT_EXPIRED);
  free(tok);
  tok = jwt_sign_hs256("{\"sub\":\"u\"}", "k"); /* exp is required */
  assert_int_equal(jwt_verify_hs256(tok, "k", NOW, 0, &c), JWT_MALFORMED);
  free(tok);
}

/* exp/nbf at the edges of int64_t or of double: refused, no overflow (UBSan) */
static void test_huge_times(void **state) {
  (void)state;
  struct jwt_claims c;
  const char *claims[] = {
      "{\"sub\":\"u\",\"exp\":9223372036854775807}",
      "{\"sub\":\"u\",\"exp\":1e300}",
      "{\"sub\":\"u\",\"exp\":-1e300}",
  };
  for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
    char *tok = jwt_sign_hs256(claims[i], "k");
    assert_non_null(tok);
    assert_int_equal(jwt_verify_hs256(tok, "k", 1800000000, 30, &c), JWT_MALFORMED);
    free(tok);
  }
  char *tok = jwt_sign_hs256("{\"sub\":\"u\",\"exp\":1800000100,\"nbf\":1e300}", "k");
  assert_int_equal(jwt_verify_hs256(tok, "k", 1800000000, 30, &c), JWT_EXPIRED);
  free(tok);
}

static void test_forged(void **state) {
  (void)state;
  char *tok = jwt_sign_hs256("{\"sub\":\"u\",\"exp\":1800000100}", "k");
  struct jwt_claims c;
  /* flip one character of the payload: signature no longer matches */
  char *dot = strchr(tok, '.');
  dot[3] = dot[3] == 'A' ? 'B' : 'A';
  assert_int_equal(jwt_verify_hs256(tok, "k", NOW, 0, &c), JWT_BAD_SIGNATURE);
  free(tok);
  /* alg none */
  assert_int_equal(jwt_verify_hs256("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1IiwiZXhwIjo5OTk5OTk5OTk5fQ.", "k", NOW, 0, &c),
                   JWT_BAD_ALG);
  assert_int_equal(jwt_verify_hs256("abc", "k", NOW, 0, &c), JWT_MALFORMED);
  assert_int_equal(jwt_verify_hs256("a.b.c.d", "k", NOW, 0, &c), JWT_MALFORMED);
  assert_int_equal(jwt_verify_hs256("!!.??.**", "k", NOW, 0, &c), JWT_MALFORMED);
  assert_int_equal(jwt_verify_hs256("eyJhbGciOiJIUzI1NiJ9.e30.", "", NOW, 0, &c), JWT_MALFORMED);
}

/* Its own codes by name, anything else as errno says: they share an int. */
static void test_strerror(void **state) {
  (void)state;
  assert_string_equal(jwt_strerror(JWT_EXPIRED), "expired");
  assert_string_equal(jwt_strerror(JWT_BAD_SIGNATURE), "bad_signature");
  assert_string_equal(jwt_strerror(-ENOMEM), strerror(ENOMEM));
  assert_true(JWT_MALFORMED < -1000); /* below every errno value */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid),      cmocka_unit_test(test_structure), cmocka_unit_test(test_duplicate_claims),
      cmocka_unit_test(test_strerror),   cmocka_unit_test(test_expired),   cmocka_unit_test(test_forged),
      cmocka_unit_test(test_huge_times),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
