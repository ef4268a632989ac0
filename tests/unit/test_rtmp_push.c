/* rtmp_push: restream target URLs split into host, port, app and stream. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "relay/rtmp_push.h"

static void test_parse_url(void **state) {
  (void)state;
  char host[64], app[64], stream[64];
  uint16_t port;
  assert_int_equal(rtmp_push_parse_url("rtmp://live.example.com/app/KEY", host, sizeof host, &port, app, sizeof app,
                                       stream, sizeof stream),
                   0);
  assert_string_equal(host, "live.example.com");
  assert_int_equal(port, 1935);
  assert_string_equal(app, "app");
  assert_string_equal(stream, "KEY");
  assert_int_equal(rtmp_push_parse_url("rtmp://198.51.100.7:1936/live/sub/k?x=1", host, sizeof host, &port, app,
                                       sizeof app, stream, sizeof stream),
                   0);
  assert_string_equal(host, "198.51.100.7");
  assert_int_equal(port, 1936);
  assert_string_equal(app, "live/sub");
  assert_string_equal(stream, "k?x=1");
  assert_int_equal(
      rtmp_push_parse_url("rtmp://[::1]:2000/live/k", host, sizeof host, &port, app, sizeof app, stream, sizeof stream),
      0);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 2000);
  const char *bad[] = {"http://x/live/k",  "rtmp://host",    "rtmp://host/",       "rtmp://host/live/",
                       "rtmp://:1935/a/b", "rtmp://h:0/a/b", "rtmp://h:99999/a/b", "rtmp://[::1/a/b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(rtmp_push_parse_url(bad[i], host, sizeof host, &port, app, sizeof app, stream, sizeof stream),
                     -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse_url)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
