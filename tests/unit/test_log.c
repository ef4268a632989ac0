/* Unit tests for core/log: what a client puts into a logged string
 * (newline, CR, ESC, bytes that are not UTF-8) cannot forge or hide a
 * line; valid UTF-8 passes unchanged; a long line is cut whole. Each case
 * points stderr at a temporary file, logs, and reads back what was
 * written. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "core/log.h"

/* stderr goes to a fresh temporary file for the case; the saved fd
 * brings it back. */
struct capture {
  FILE *f;
  int saved;
  char text[8192];
  size_t len;
};

static void capture_begin(struct capture *c) {
  c->f = tmpfile();
  assert_non_null(c->f);
  c->saved = dup(STDERR_FILENO);
  assert_true(c->saved >= 0);
  assert_int_equal(dup2(fileno(c->f), STDERR_FILENO), STDERR_FILENO);
}

static const char *capture_end(struct capture *c) {
  assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
  close(c->saved);
  rewind(c->f);
  c->len = fread(c->text, 1, sizeof c->text - 1, c->f);
  c->text[c->len] = '\0';
  fclose(c->f);
  return c->text;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

/* The message logged with name as its %s argument, as written. */
static const char *log_name(struct capture *c, const char *name) {
  capture_begin(c);
  log_warn("rtmp", "play refused: no channel name=%s addr=1.2.3.4", name);
  return capture_end(c);
}

static void test_newline_cannot_forge_a_line(void **state) {
  (void)state;
  struct capture c;
  const char *out = log_name(&c, "x\nerror main: forged");
  assert_string_equal(out, "warn rtmp: play refused: no channel name=x\\nerror main: forged addr=1.2.3.4\n");
  assert_int_equal(count_lines(out), 1);
}

static void test_control_bytes_are_escaped(void **state) {
  (void)state;
  struct capture c;
  const char *out = log_name(&c, "a\rb\tc\x1b[2Kd\x01\x7f");
  assert_string_equal(out, "warn rtmp: play refused: no channel name=a\\rb\\tc\\x1b[2Kd\\x01\\x7f addr=1.2.3.4\n");
  /* C1 controls (U+009B is a one-byte CSI on some terminals) too */
  out = log_name(&c, "\xc2\x9b"
                     "1m\xc2\x85");
  assert_string_equal(out, "warn rtmp: play refused: no channel name=\\xc2\\x9b1m\\xc2\\x85 addr=1.2.3.4\n");
}

static void test_valid_utf8_is_kept(void **state) {
  (void)state;
  struct capture c;
  const char *name = "小张 Ünïcødé \xc2\xa0nbsp 🎉 \xf4\x8f\xbf\xbf";
  const char *out = log_name(&c, name);
  char want[256];
  snprintf(want, sizeof want, "warn rtmp: play refused: no channel name=%s addr=1.2.3.4\n", name);
  assert_string_equal(out, want);
}

static void test_invalid_utf8_is_escaped(void **state) {
  (void)state;
  struct capture c;
  /* a stray byte, an overlong '/', a surrogate, past U+10FFFF, a cut sequence */
  const char *out = log_name(&c, "\xff|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xe4\xb8");
  assert_string_equal(out, "warn rtmp: play refused: no channel name=\\xff|\\xc0\\xaf|\\xed\\xa0\\x80|"
                           "\\xf4\\x90\\x80\\x80|\\xe4\\xb8 addr=1.2.3.4\n");
}

/* A line longer than the limit ends in one '\n', holds no cut escape and
 * no cut character. */
static void test_long_line_is_cut_whole(void **state) {
  (void)state;
  static char name[6000];
  for (size_t i = 0; i + 4 < sizeof name; i += 4)
    memcpy(name + i, i % 8 ? "\n\xe4\xb8\xad" : "\x1b\xe4\xb8\xad", 4);
  name[sizeof name - 4] = '\0';
  struct capture c;
  const char *out = log_name(&c, name);
  assert_int_equal(count_lines(out), 1);
  assert_true(c.len <= 2048);
  assert_int_equal(out[c.len - 1], '\n');
  /* the cut fell on a unit boundary: the text before '\n' ends with a whole
   * 中 or a whole escape */
  const char *end = out + c.len - 1;
  assert_true(memcmp(end - 3, "\xe4\xb8\xad", 3) == 0 || memcmp(end - 2, "\\n", 2) == 0 ||
              memcmp(end - 4, "\\x1b", 4) == 0);
}

static void test_level_still_filters(void **state) {
  (void)state;
  struct capture c;
  log_set_level(LOG_LEVEL_ERROR);
  capture_begin(&c);
  log_info("main", "hidden %s", "x\ny");
  log_error("main", "shown %s", "x\ny");
  const char *out = capture_end(&c);
  log_set_level(LOG_LEVEL_INFO);
  assert_string_equal(out, "error main: shown x\\ny\n");
}

/* The error convention: 0, or a negative errno code. */
static void test_level_parse_returns_einval(void **state) {
  (void)state;
  enum log_level lvl = LOG_LEVEL_ERROR;
  assert_int_equal(log_level_parse("warn", &lvl), 0);
  assert_int_equal(lvl, LOG_LEVEL_WARN);
  assert_int_equal(log_level_parse("loud", &lvl), -EINVAL);
  assert_int_equal(lvl, LOG_LEVEL_WARN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_newline_cannot_forge_a_line), cmocka_unit_test(test_control_bytes_are_escaped),
      cmocka_unit_test(test_valid_utf8_is_kept),          cmocka_unit_test(test_invalid_utf8_is_escaped),
      cmocka_unit_test(test_long_line_is_cut_whole),      cmocka_unit_test(test_level_still_filters),
      cmocka_unit_test(test_level_parse_returns_einval),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
