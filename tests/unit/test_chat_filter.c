/* Unit tests for chat/filter: display sanitising, matching normalisation
 * (full-width, case, traditional Chinese, spacing and zero-width tricks)
 * and the Aho-Corasick matcher. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat/filter.h"

static struct filter_norm *norm;

static char *N(const char *s) { return filter_normalize(norm, s, strlen(s), NULL); }

static void test_normalize(void **state) {
  (void)state;
  char *s;
  assert_string_equal(s = N("ＨＥＬＬＯ Ｗｏｒｌｄ"), "helloworld"), free(s);
  assert_string_equal(s = N("h.e.l.l.o"), "hello"), free(s);
  assert_string_equal(s = N("h\xe2\x80\x8b" "e\xe2\x80\x8d" "llo"), "hello"), free(s); /* ZWSP, ZWJ */
  assert_string_equal(s = N("héllo"), "hello"), free(s);
  assert_string_equal(s = N("新 年 快 乐"), "新年快乐"), free(s);
  if (filter_norm_has_t2s(norm)) {
    assert_string_equal(s = N("新年快樂"), "新年快乐"), free(s);
    assert_string_equal(s = N("臺灣"), "台湾"), free(s);
  }
}

static void test_sanitize(void **state) {
  (void)state;
  size_t len;
  char *s = filter_sanitize("  hi\xe2\x80\xae there\x01\n ", strlen("  hi\xe2\x80\xae there\x01\n "), 2, &len);
  assert_string_equal(s, "hi there");
  assert_int_equal(len, 8);
  free(s);
  /* zalgo: a + 5 combining acute accents -> a + 2 */
  const char *z = "a\xcc\x81\xcc\x81\xcc\x81\xcc\x81\xcc\x81" "b";
  s = filter_sanitize(z, strlen(z), 2, &len);
  assert_string_equal(s, "a\xcc\x81\xcc\x81" "b");
  free(s);
  s = filter_sanitize(" \t ", 3, 2, &len);
  assert_int_equal(len, 0);
  free(s);
  /* isolates too */
  const char *iso = "x\xe2\x81\xa6y\xe2\x81\xa9";
  s = filter_sanitize(iso, strlen(iso), 2, &len);
  assert_string_equal(s, "xy");
  free(s);
}

static bool hits(struct filter_words *w, const char *text) {
  size_t n;
  char *s = filter_normalize(norm, text, strlen(text), &n);
  long r = filter_words_match(w, s, n);
  free(s);
  return r >= 0;
}

static void test_match(void **state) {
  (void)state;
  const char *words[] = {"badword", "he", "she", "hers", "坏蛋", "", "ＳＰＡＭ"};
  struct filter_words *w = filter_words_build(norm, words, 7);
  assert_non_null(w);
  assert_int_equal(filter_words_count(w), 6);
  assert_true(hits(w, "this is a BADWORD!"));
  assert_true(hits(w, "ｂａｄｗｏｒｄ"));
  assert_true(hits(w, "b a d w o r d"));
  assert_true(hits(w, "b\xe2\x80\x8b" "adword"));
  assert_true(hits(w, "你是坏蛋"));
  assert_true(hits(w, "spam"));
  assert_true(hits(w, "ushers"));
  assert_false(hits(w, "good words only"));
  assert_false(hits(w, "好蛋"));
  if (filter_norm_has_t2s(norm))
    assert_true(hits(w, "你是壞蛋"));
  filter_words_free(w);
  /* an empty automaton matches nothing */
  w = filter_words_build(norm, NULL, 0);
  assert_false(hits(w, "anything"));
  filter_words_free(w);
}

/* many words sharing prefixes and suffixes: the automaton agrees with a
 * naive substring search */
static void test_match_many(void **state) {
  (void)state;
  char *words[200];
  for (int i = 0; i < 200; i++) {
    words[i] = malloc(16);
    snprintf(words[i], 16, "w%dx%d", i % 17, i);
  }
  struct filter_words *w = filter_words_build(norm, (const char *const *)words, 200);
  for (int i = 0; i < 200; i++) {
    char text[64];
    snprintf(text, sizeof(text), "zzw%dx%dzz", i % 17, i);
    assert_true(hits(w, text));
  }
  assert_false(hits(w, "w1x2 w3x4"));
  for (int i = 0; i < 200; i++)
    free(words[i]);
  filter_words_free(w);
}

static int setup(void **state) {
  (void)state;
  norm = filter_norm_new();
  return norm ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  filter_norm_free(norm);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normalize), cmocka_unit_test(test_sanitize),
      cmocka_unit_test(test_match), cmocka_unit_test(test_match_many),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
