/* filter: what a comment's text may contain, and whether it says a banned
 * word.
 *
 * Two forms of a text:
 * - the display form (filter_sanitize): what viewers see. Control
 *   characters and bidi overrides are removed (they reorder the text around
 *   them, mastodon#2166), combining marks are bounded per base character
 *   (zalgo), surrounding white space is trimmed.
 * - the matching form (filter_normalize): never shown, only matched. NFKC
 *   with case folding and marks stripped (utf8proc: full-width ＡＢＣ, ℌ and
 *   ａｂｃ all become abc), traditional to simplified Chinese (OpenCC
 *   t2s.json), then only letters and digits are kept, so that spaces,
 *   punctuation and zero-width characters put between the letters of a
 *   word do not hide it.
 *
 * Banned words are normalised the same way and compiled into one
 * Aho-Corasick automaton over the UTF-8 bytes of the matching form: one
 * pass over a comment finds any of them. A `struct filter_words` is
 * immutable once built, so the loop thread may match with one while the
 * next is built on a worker thread (struct filter does that).
 *
 * A `struct filter_norm` holds an OpenCC converter: use each from one
 * thread at a time. */
#ifndef GALARELAY_CHAT_FILTER_H
#define GALARELAY_CHAT_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct filter_norm;
struct filter_words;

/* ---- Pure parts */

/* Opens OpenCC's t2s.json; if OpenCC cannot load it, logs a warning and
 * normalises without the Chinese conversion. NULL only without memory. */
struct filter_norm *filter_norm_new(void);
void filter_norm_free(struct filter_norm *n);
bool filter_norm_has_t2s(const struct filter_norm *n);

/* Matching form of valid UTF-8: a new malloc'd NUL-terminated string, or
 * NULL (no memory / not UTF-8). */
char *filter_normalize(struct filter_norm *n, const char *text, size_t len, size_t *out_len);

/* Display form of valid UTF-8: a new malloc'd string, or NULL. */
char *filter_sanitize(const char *text, size_t len, int max_combining, size_t *out_len);

/* Compile banned words (raw; normalised here; empty ones skipped). NULL
 * only without memory. */
struct filter_words *filter_words_build(struct filter_norm *n, const char *const *words, size_t count);
void filter_words_free(struct filter_words *w);
size_t filter_words_count(const struct filter_words *w);
/* Index (into the build's list) of a banned word the matching form holds,
 * or -1. */
long filter_words_match(const struct filter_words *w, const char *norm, size_t len);

/* ---- The live word list of the daemon (loop thread) */

/* Banned words = the words file (one per line, '#' comments) plus live
 * words (moderators' words_add, persisted in the archive). Every change
 * schedules one rebuild on libuv's thread pool (file read, normalisation
 * and compilation happen there); changes during a build cause one more
 * build after it. Until the first build is done nothing is banned. */
struct filter;

struct filter *filter_new(uv_loop_t *loop);
/* Asynchronous: frees the filter now, or when the build in flight ends
 * (keep the loop running), then calls cb(arg) (cb may be NULL). */
void filter_stop(struct filter *f, void (*cb)(void *arg), void *arg);

void filter_set_file(struct filter *f, const char *path); /* "" = none; rereads it */
/* Live words (raw form). Return 1 when the list changed, 0 if not. */
int filter_add_word(struct filter *f, const char *word);
int filter_remove_word(struct filter *f, const char *word);
size_t filter_live_word_count(const struct filter *f);
/* The banned words in raw form, for moderators to see: the live words,
 * then the words file's (sorted, each once) as the current automaton has
 * them; a word in both is listed once. Calls fn for at most max of them
 * (the strings are valid until the next change on the loop thread) and
 * returns how many there are in all, so a caller can say the list was
 * cut. Before the first build is done the file's words are not known. */
size_t filter_list_words(const struct filter *f, size_t max, void (*fn)(void *opaque, const char *word), void *opaque);

/* Does text (valid UTF-8, display form) say a banned word? Uses the loop
 * thread's normaliser and the current automaton. */
bool filter_check(struct filter *f, const char *text, size_t len);

struct filter_stats {
  uint64_t builds;
  uint64_t words; /* in the current automaton */
  uint64_t matches;
};
void filter_get_stats(const struct filter *f, struct filter_stats *out);

#endif
