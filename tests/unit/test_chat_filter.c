/* Unit tests for chat/filter: display sanitising, matching normalisation
 * (full-width, case, traditional Chinese, spacing and zero-width tricks),
 * the Aho-Corasick matcher, and the daemon's word list as moderators see
 * it (file words and live words, once each, bounded). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "chat/filter.h"

static struct filter_norm *norm;

static char *N(const char *s) { return filter_normalize(norm, s, strlen(s), NULL); }

static void test_normalize(void **state) {
  (void)state;
  char *s;
  assert_string_equal(s = N("ＨＥＬＬＯ Ｗｏｒｌｄ"), "helloworld"), free(s);
  assert_string_equal(s = N("h.e.l.l.o"), "hello"), free(s);
  assert_string_equal(s = N("h\xe2\x80\x8b"
                            "e\xe2\x80\x8d"
                            "llo"),
                      "hello"),
      free(s); /* ZWSP, ZWJ */
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
  const char *z = "a\xcc\x81\xcc\x81\xcc\x81\xcc\x81\xcc\x81"
                  "b";
  s = filter_sanitize(z, strlen(z), 2, &len);
  assert_string_equal(s, "a\xcc\x81\xcc\x81"
                         "b");
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
  assert_true(hits(w, "b\xe2\x80\x8b"
                      "adword"));
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

/* ---- filter_list_words */

struct listed {
  char words[8][32];
  size_t n;
};

static void collect(void *opaque, const char *word) {
  struct listed *l = opaque;
  assert_true(l->n < 8);
  snprintf(l->words[l->n++], sizeof(l->words[0]), "%s", word);
}

static size_t list(struct filter *f, size_t max, struct listed *out) {
  memset(out, 0, sizeof(*out));
  return filter_list_words(f, max, collect, out);
}

/* The list moderators edit: live words first, then the file's (sorted,
 * repeats and words also added live listed once), cut at max with the
 * total still counted. */
static void test_list_words(void **state) {
  (void)state;
  char path[] = "/tmp/test_chat_filter_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char *text = "# comment\nzeta\n  alpha\nzeta\nshared\n\n";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);

  uv_loop_t loop;
  uv_loop_init(&loop);
  struct filter *f = filter_new(&loop);
  assert_non_null(f);
  filter_set_file(f, path);
  assert_int_equal(filter_add_word(f, "live1"), 1);
  assert_int_equal(filter_add_word(f, "shared"), 1);
  struct listed l;
  assert_int_equal(list(f, 100, &l), 2); /* the file is read by the build */
  uv_run(&loop, UV_RUN_DEFAULT);         /* until the builds are done */
  assert_true(filter_check(f, "an alpha", 8));

  assert_int_equal(list(f, 100, &l), 4);
  assert_int_equal(l.n, 4);
  assert_string_equal(l.words[0], "live1");
  assert_string_equal(l.words[1], "shared");
  assert_string_equal(l.words[2], "alpha");
  assert_string_equal(l.words[3], "zeta");

  assert_int_equal(list(f, 3, &l), 4); /* cut: the total still says 4 */
  assert_int_equal(l.n, 3);
  assert_string_equal(l.words[2], "alpha");
  assert_int_equal(list(f, 1, &l), 4);
  assert_int_equal(l.n, 1);
  assert_string_equal(l.words[0], "live1");

  /* removed live, still in the file: listed with the file's */
  assert_int_equal(filter_remove_word(f, "shared"), 1);
  assert_int_equal(list(f, 100, &l), 4);
  assert_string_equal(l.words[0], "live1");
  assert_string_equal(l.words[1], "alpha");
  assert_string_equal(l.words[2], "shared");
  assert_string_equal(l.words[3], "zeta");

  filter_stop(f, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  unlink(path);
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

static void count_stopped(void *arg) { ++*(int *)arg; }

/* filter_stop is asynchronous while a build is in flight: the callback
 * runs once, after the build ended and the filter was freed. */
static void test_stop_calls_back_once(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  int stopped = 0;
  struct filter *f = filter_new(&loop);
  assert_non_null(f);
  assert_int_equal(filter_add_word(f, "busy"), 1); /* schedules a build */
  filter_stop(f, count_stopped, &stopped);
  assert_int_equal(stopped, 0); /* the build still holds it */
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(stopped, 1);
  f = filter_new(&loop); /* nothing in flight: released at once */
  assert_non_null(f);
  filter_stop(f, count_stopped, &stopped);
  assert_int_equal(stopped, 2);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normalize),  cmocka_unit_test(test_sanitize),   cmocka_unit_test(test_match),
      cmocka_unit_test(test_match_many), cmocka_unit_test(test_list_words), cmocka_unit_test(test_stop_calls_back_once),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
