/* fuzz_chat_filter: the banned-word filter's pure parts on arbitrary
 * text: filter_sanitize (display form), filter_normalize (matching form)
 * and the Aho-Corasick automaton (filter_words_build / _match).
 *
 * Input: lines. The first line is the comment, the next ones (at most 16)
 * the banned words. Only valid UTF-8 is filtered (the protocol refuses the
 * rest before the filter sees it, chat_utf8_valid). Checked: both forms
 * are valid UTF-8; the automaton finds a word exactly when the word's
 * matching form occurs in the comment's (a naive substring search is the
 * oracle). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/filter.h"
#include "chat/protocol.h"

#define MAX_WORDS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct filter_norm *norm_once(void) {
  static struct filter_norm *n;
  if (!n)
    n = filter_norm_new(); /* OpenCC's tables: loaded once per process */
  return n;
}

/* Index of a word whose matching form occurs in norm, or -1. */
static long naive_match(struct filter_norm *n, char **words, size_t count, const char *norm, size_t len) {
  long found = -1;
  for (size_t i = 0; i < count && found < 0; i++) {
    size_t wlen;
    char *w = filter_normalize(n, words[i], strlen(words[i]), &wlen);
    if (w && wlen && memmem(norm, len, w, wlen))
      found = (long)i;
    free(w);
  }
  return found;
}

static void check_words(struct filter_norm *n, char **words, size_t count, const char *norm, size_t len) {
  struct filter_words *fw = filter_words_build(n, (const char *const *)words, count);
  if (!fw)
    return;
  long got = filter_words_match(fw, norm, len);
  long want = naive_match(n, words, count, norm, len);
  if ((got < 0) != (want < 0) || got >= (long)count)
    abort(); /* the automaton and the substring search disagree */
  filter_words_free(fw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct filter_norm *n = norm_once();
  if (!n || !chat_utf8_valid(data, size) || memchr(data, '\0', size))
    return 0;
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char *words[MAX_WORDS];
  size_t count = 0;
  for (char *nl = strchr(text, '\n'); nl && count < MAX_WORDS; nl = strchr(nl + 1, '\n')) {
    *nl = '\0';
    words[count++] = nl + 1;
  }
  size_t tlen = strlen(text), dlen, nlen;
  char *display = filter_sanitize(text, tlen, 1 + (int)(tlen % 4), &dlen);
  if (display && !chat_utf8_valid(display, dlen))
    abort();
  char *norm = filter_normalize(n, text, tlen, &nlen);
  if (norm && !chat_utf8_valid(norm, nlen))
    abort();
  if (norm)
    check_words(n, words, count, norm, nlen);
  free(norm);
  free(display);
  free(text);
  return 0;
}
