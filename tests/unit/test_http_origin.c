/* Unit tests for core/http's websocket Origin rule (http_origin_allowed):
 * same origin against Host with default ports left out, the allowed list,
 * "*", no Origin, and what must not pass for the same origin. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "core/http.h"

static void test_same_origin(void **state) {
  (void)state;
  assert_true(http_origin_allowed("http://relay.example:8080", "relay.example:8080", ""));
  assert_true(http_origin_allowed("HTTP://Relay.Example:8080", "relay.example:8080", ""));
  assert_true(http_origin_allowed("https://relay.example", "relay.example", ""));
  assert_true(http_origin_allowed("http://relay.example", "relay.example:80", ""));
  assert_true(http_origin_allowed("https://relay.example:443", "relay.example", ""));
  assert_true(http_origin_allowed("http://[::1]:8080", "[::1]:8080", ""));
  assert_false(http_origin_allowed("http://relay.example:8081", "relay.example:8080", ""));
  assert_false(http_origin_allowed("http://evil.example", "relay.example", ""));
  assert_false(http_origin_allowed("http://relay.example.evil.example", "relay.example", ""));
  assert_false(http_origin_allowed("https://relay.example", "relay.example:80", "")); /* 443 is not 80 */
  assert_false(http_origin_allowed("null", "relay.example", ""));
  assert_false(http_origin_allowed("file://relay.example", "relay.example", ""));
  assert_false(http_origin_allowed("http://relay.example/x", "relay.example", ""));
  assert_false(http_origin_allowed("http://relay.example", "", ""));
  assert_false(http_origin_allowed("http://relay.example", NULL, NULL));
}

static void test_no_origin(void **state) {
  (void)state;
  assert_true(http_origin_allowed(NULL, "relay.example", ""));
  assert_true(http_origin_allowed("", "relay.example", ""));
}

static void test_allowed_list(void **state) {
  (void)state;
  const char *list = "https://site.example, http://other.example:8080/ ,HTTPS://Third.Example";
  assert_true(http_origin_allowed("https://site.example", "relay.example", list));
  assert_true(http_origin_allowed("http://other.example:8080", "relay.example", list));
  assert_true(http_origin_allowed("https://third.example", "relay.example", list));
  assert_false(http_origin_allowed("http://site.example", "relay.example", list));
  assert_false(http_origin_allowed("https://site.example.evil", "relay.example", list));
  assert_false(http_origin_allowed("https://site", "relay.example", list));
  assert_false(http_origin_allowed("http://other.example", "relay.example", list));
  assert_true(http_origin_allowed("http://relay.example", "relay.example", list)); /* same origin still */
  assert_true(http_origin_allowed("http://evil.example", "relay.example", "*"));
  assert_true(http_origin_allowed("null", "relay.example", "https://a.example, *"));
  assert_false(http_origin_allowed("http://evil.example", "relay.example", "**"));
  assert_false(http_origin_allowed("http://evil.example", "relay.example", " , ,"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_origin),
      cmocka_unit_test(test_no_origin),
      cmocka_unit_test(test_allowed_list),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
