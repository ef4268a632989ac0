/* Unit tests for core/netaddr: the client key every per-address rule uses
 * (an IPv6 client by its /64, an IPv4-mapped address as its IPv4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "core/netaddr.h"

static void test_client_key(void **state) {
  (void)state;
  char out[NETADDR_KEY_MAX];
  const char *cases[][2] = {
      {"203.0.113.7", "203.0.113.7"},
      {"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
      {"2001:db8:1:2::1", "2001:db8:1:2::/64"},
      {"2001:db8:1:3::1", "2001:db8:1:3::/64"}, /* another line */
      {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff::/64"},
      {"::1", "::/64"},
      {"::ffff:203.0.113.7", "203.0.113.7"}, /* IPv4-mapped: the IPv4 client */
      {"unknown", "unknown"},
      {"2001:db8::zz", "2001:db8::zz"},
      {"", ""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    netaddr_client_key(cases[i][0], out, sizeof(out));
    assert_string_equal(out, cases[i][1]);
  }
}

/* A key that does not fit is cut, never overrun. */
static void test_client_key_truncates(void **state) {
  (void)state;
  char out[8];
  netaddr_client_key("2001:db8:1:2::1", out, sizeof out);
  assert_string_equal(out, "2001:db");
  netaddr_client_key("a-name-longer-than-eight", out, sizeof out);
  assert_string_equal(out, "a-name-");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_client_key),
      cmocka_unit_test(test_client_key_truncates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
