/* Running one cmocka case by name, the same way in every unit test:
 *
 *     GALARELAY_TEST=test_join_and_welcome build/chat/test_chat_room
 *
 * runs only the cases whose name matches the pattern (cmocka's wildcards:
 * '*' for any run of characters, '?' for one). A test file adopts it with
 * one line, #include "tests/unit/test_main.h", anywhere among its includes:
 * its cmocka_run_group_tests() / cmocka_run_group_tests_name() then read
 * the variable first. A pattern that matches none of the file's cases fails
 * the run and lists them, so that a typo never passes as zero tests run. */
#ifndef GALARELAY_TEST_MAIN_H
#define GALARELAY_TEST_MAIN_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>

/* 0: run the group (filtered when GALARELAY_TEST is set); -1: the pattern
 * matches none of its n cases. */
static inline int galarelay_test_filter(const struct CMUnitTest *tests, size_t n) {
  const char *want = getenv("GALARELAY_TEST");
  if (!want || !*want)
    return 0;
  for (size_t i = 0; i < n; i++) {
    if (fnmatch(want, tests[i].name, FNM_NOESCAPE) == 0) {
      cmocka_set_test_filter(want);
      return 0;
    }
  }
  fprintf(stderr, "GALARELAY_TEST=%s matches none of this test's cases:\n", want);
  for (size_t i = 0; i < n; i++)
    fprintf(stderr, "  %s\n", tests[i].name);
  return -1;
}

#define GALARELAY_RUN_GROUP(name, group_tests, group_setup, group_teardown)                                            \
  (galarelay_test_filter(group_tests, sizeof(group_tests) / sizeof((group_tests)[0])) != 0                             \
       ? 1                                                                                                             \
       : _cmocka_run_group_tests(name, group_tests, sizeof(group_tests) / sizeof((group_tests)[0]), group_setup,       \
                                 group_teardown))

#undef cmocka_run_group_tests
#define cmocka_run_group_tests(group_tests, group_setup, group_teardown)                                               \
  GALARELAY_RUN_GROUP(#group_tests, group_tests, group_setup, group_teardown)
#undef cmocka_run_group_tests_name
#define cmocka_run_group_tests_name(group_name, group_tests, group_setup, group_teardown)                              \
  GALARELAY_RUN_GROUP(group_name, group_tests, group_setup, group_teardown)

#endif
