/* Unit tests for chat/ratelimit: the token bucket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "chat/ratelimit.h"

static void test_burst_then_rate(void **state) {
  (void)state;
  struct ratelimit rl;
  ratelimit_init(&rl, 1.0, 5, 1000);
  for (int i = 0; i < 5; i++)
    assert_int_equal(ratelimit_take(&rl, 1000), 0);
  int64_t wait = ratelimit_take(&rl, 1000);
  assert_true(wait > 990 && wait <= 1000);
  assert_true(ratelimit_take(&rl, 1500) > 0);
  assert_int_equal(ratelimit_take(&rl, 2000), 0);
  assert_true(ratelimit_take(&rl, 2000) > 0);
  assert_false(ratelimit_is_full(&rl, 2000));
  assert_true(ratelimit_is_full(&rl, 10000));
}

static void test_unlimited_and_reconfigure(void **state) {
  (void)state;
  struct ratelimit rl;
  ratelimit_init(&rl, 0, 1, 0);
  for (int i = 0; i < 100; i++)
    assert_int_equal(ratelimit_take(&rl, 0), 0);
  ratelimit_init(&rl, 10, 10, 0);
  ratelimit_configure(&rl, 1, 2, 0);
  assert_int_equal(ratelimit_take(&rl, 0), 0);
  assert_int_equal(ratelimit_take(&rl, 0), 0);
  assert_true(ratelimit_take(&rl, 0) > 0);
  /* time going back takes nothing and gives nothing */
  assert_true(ratelimit_take(&rl, 0) > 0);
}

/* A token given back makes the next take succeed, but never fills the
 * bucket past its burst, and an unlimited bucket stays unlimited. */
static void test_give_back(void **state) {
  (void)state;
  struct ratelimit rl;
  ratelimit_init(&rl, 1.0, 2, 0);
  assert_int_equal(ratelimit_take(&rl, 0), 0);
  assert_int_equal(ratelimit_take(&rl, 0), 0);
  assert_true(ratelimit_take(&rl, 0) > 0);
  ratelimit_give_back(&rl);
  assert_int_equal(ratelimit_take(&rl, 0), 0);
  ratelimit_give_back(&rl);
  ratelimit_give_back(&rl);
  ratelimit_give_back(&rl); /* one past the burst: dropped */
  assert_int_equal(ratelimit_take(&rl, 0), 0);
  assert_int_equal(ratelimit_take(&rl, 0), 0);
  assert_true(ratelimit_take(&rl, 0) > 0);
  ratelimit_init(&rl, 0, 1, 0);
  ratelimit_give_back(&rl);
  assert_true(ratelimit_is_full(&rl, 0));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_rate),
      cmocka_unit_test(test_unlimited_and_reconfigure),
      cmocka_unit_test(test_give_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
