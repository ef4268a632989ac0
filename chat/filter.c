/* filter: display sanitising, matching normalisation, the Aho-Corasick
 * automaton of banned words, and its rebuilds off the loop thread. */
#include "chat/filter.h"

#include <opencc/opencc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/log.h"

/* ---- Normalising */

struct filter_norm {
  opencc_t cc; /* (opencc_t)-1 when t2s.json could not be loaded */
};

struct filter_norm *filter_norm_new(void) {
  struct filter_norm *n = calloc(1, sizeof(*n));
  if (!n)
    return NULL;
  n->cc = opencc_open("t2s.json");
  if (n->cc == (opencc_t)-1)
    log_warn("chat", "OpenCC t2s.json not loaded, traditional Chinese is not folded: %s", opencc_error());
  return n;
}

void filter_norm_free(struct filter_norm *n) {
  if (!n)
    return;
  if (n->cc != (opencc_t)-1)
    opencc_close(n->cc);
  free(n);
}

bool filter_norm_has_t2s(const struct filter_norm *n) { return n->cc != (opencc_t)-1; }

static bool is_letter_or_digit(utf8proc_int32_t cp) {
  switch (utf8proc_category(cp)) {
  case UTF8PROC_CATEGORY_LU:
  case UTF8PROC_CATEGORY_LL:
  case UTF8PROC_CATEGORY_LT:
  case UTF8PROC_CATEGORY_LM:
  case UTF8PROC_CATEGORY_LO:
  case UTF8PROC_CATEGORY_ND:
  case UTF8PROC_CATEGORY_NL:
  case UTF8PROC_CATEGORY_NO: return true;
  default: return false;
  }
}

/* Keep only letters and digits, in place. */
static size_t keep_letters(char *s, size_t len) {
  size_t r = 0, w = 0;
  while (r < len) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + r, (utf8proc_ssize_t)(len - r), &cp);
    if (n <= 0)
      break;
    if (is_letter_or_digit(cp)) {
      memmove(s + w, s + r, (size_t)n);
      w += (size_t)n;
    }
    r += (size_t)n;
  }
  s[w] = '\0';
  return w;
}

char *filter_normalize(struct filter_norm *n, const char *text, size_t len, size_t *out_len) {
  utf8proc_uint8_t *folded = NULL;
  utf8proc_ssize_t flen = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &folded,
                                       UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD |
                                           UTF8PROC_IGNORE | UTF8PROC_STRIPMARK);
  if (flen < 0)
    return NULL;
  char *s = (char *)folded;
  if (n && n->cc != (opencc_t)-1 && flen > 0) {
    char *conv = opencc_convert_utf8(n->cc, s, (size_t)flen);
    if (conv) {
      char *copy = strdup(conv);
      opencc_convert_utf8_free(conv);
      if (copy) {
        free(s);
        s = copy;
        flen = (utf8proc_ssize_t)strlen(s);
      }
    }
  }
  size_t w = keep_letters(s, (size_t)flen);
  if (out_len)
    *out_len = w;
  return s;
}

/* ---- Display form */

static bool is_bidi_control(utf8proc_int32_t cp) {
  return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F ||
         cp == 0x061C;
}

static bool is_space(utf8proc_int32_t cp) {
  utf8proc_category_t c = utf8proc_category(cp);
  return cp == ' ' || c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

char *filter_sanitize(const char *text, size_t len, int max_combining, size_t *out_len) {
  char *out = malloc(len + 1);
  if (!out)
    return NULL;
  size_t r = 0, w = 0, end = 0; /* end: length without trailing space */
  int marks = 0;
  while (r < len) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)text + r, (utf8proc_ssize_t)(len - r), &cp);
    if (n <= 0) {
      free(out);
      return NULL;
    }
    r += (size_t)n;
    utf8proc_category_t cat = utf8proc_category(cp);
    if (cp == '\n' || cp == '\r' || cp == '\t')
      cp = ' '; /* one line per comment */
    else if (cat == UTF8PROC_CATEGORY_CC || is_bidi_control(cp))
      continue;
    if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_MC) {
      if (++marks > max_combining)
        continue;
    } else {
      marks = 0;
    }
    bool space = is_space(cp);
    if (space && w == 0)
      continue; /* leading */
    w += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out + w);
    if (!space)
      end = w;
  }
  out[end] = '\0';
  if (out_len)
    *out_len = end;
  return out;
}

/* ---- Aho-Corasick over bytes.
 *
 * Built as a trie with sorted child lists, then flattened: node i's
 * children are edges[first[i] .. first[i]+count[i]), sorted by byte, so a
 * step is a binary search. fail links by breadth-first order; `out` holds
 * a word index + 1 for the node or the nearest node on its fail chain. */

struct ac_node {
  uint32_t first; /* into edges */
  uint16_t count;
  uint32_t fail;
  int32_t out; /* word index + 1, 0 = none */
};

struct ac_edge {
  uint8_t byte;
  uint32_t to;
};

struct filter_words {
  struct ac_node *nodes;
  struct ac_edge *edges;
  size_t node_count;
  size_t word_count;
};

/* build-time trie: children as singly linked, sorted lists */
struct trie_node {
  uint32_t child, sibling; /* 0 = none (node 0 is the root, never a child) */
  uint8_t byte;
  int32_t out;
};

struct trie {
  struct trie_node *n;
  size_t len, cap;
};

static uint32_t trie_child(struct trie *t, uint32_t node, uint8_t byte, bool create) {
  uint32_t *link = &t->n[node].child;
  while (*link && t->n[*link].byte < byte)
    link = &t->n[*link].sibling;
  if (*link && t->n[*link].byte == byte)
    return *link;
  if (!create)
    return 0;
  if (t->len == t->cap) {
    size_t cap = t->cap * 2;
    struct trie_node *p = realloc(t->n, cap * sizeof(*p));
    if (!p)
      return 0;
    t->n = p;
    t->cap = cap;
    link = &t->n[node].child; /* realloc moved it: find the spot again */
    while (*link && t->n[*link].byte < byte)
      link = &t->n[*link].sibling;
  }
  uint32_t id = (uint32_t)t->len++;
  t->n[id] = (struct trie_node){.child = 0, .sibling = *link, .byte = byte, .out = 0};
  *link = id;
  return id;
}

static long ac_step(const struct filter_words *w, uint32_t node, uint8_t byte) {
  const struct ac_node *a = &w->nodes[node];
  size_t lo = a->first, hi = a->first + a->count;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (w->edges[mid].byte == byte)
      return w->edges[mid].to;
    if (w->edges[mid].byte < byte)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

static int flatten(struct filter_words *w, const struct trie *t) {
  w->node_count = t->len;
  w->nodes = calloc(t->len, sizeof(*w->nodes));
  w->edges = calloc(t->len, sizeof(*w->edges)); /* every node but the root is one edge */
  if (!w->nodes || !w->edges)
    return -1;
  uint32_t e = 0;
  for (size_t i = 0; i < t->len; i++) {
    w->nodes[i].first = e;
    w->nodes[i].out = t->n[i].out;
    for (uint32_t c = t->n[i].child; c; c = t->n[c].sibling) {
      w->edges[e++] = (struct ac_edge){.byte = t->n[c].byte, .to = c};
      w->nodes[i].count++;
    }
  }
  /* fail links, breadth first */
  uint32_t *queue = malloc(t->len * sizeof(*queue));
  if (!queue)
    return -1;
  size_t head = 0, tail = 0;
  for (uint32_t k = 0; k < w->nodes[0].count; k++) {
    uint32_t c = w->edges[w->nodes[0].first + k].to;
    w->nodes[c].fail = 0;
    queue[tail++] = c;
  }
  while (head < tail) {
    uint32_t u = queue[head++];
    for (uint32_t k = 0; k < w->nodes[u].count; k++) {
      const struct ac_edge *edge = &w->edges[w->nodes[u].first + k];
      uint32_t f = w->nodes[u].fail;
      long next;
      while ((next = ac_step(w, f, edge->byte)) < 0 && f != 0)
        f = w->nodes[f].fail;
      uint32_t v = edge->to;
      w->nodes[v].fail = next >= 0 && (uint32_t)next != v ? (uint32_t)next : 0;
      if (!w->nodes[v].out)
        w->nodes[v].out = w->nodes[w->nodes[v].fail].out;
      queue[tail++] = v;
    }
  }
  free(queue);
  return 0;
}

struct filter_words *filter_words_build(struct filter_norm *n, const char *const *words, size_t count) {
  struct filter_words *w = calloc(1, sizeof(*w));
  struct trie t = {.n = malloc(64 * sizeof(struct trie_node)), .len = 1, .cap = 64};
  if (!w || !t.n)
    goto fail;
  t.n[0] = (struct trie_node){0};
  for (size_t i = 0; i < count; i++) {
    size_t len;
    char *norm = filter_normalize(n, words[i], strlen(words[i]), &len);
    if (!norm)
      continue; /* not UTF-8: cannot match anything */
    uint32_t node = 0;
    for (size_t k = 0; k < len && node != UINT32_MAX; k++) {
      uint32_t next = trie_child(&t, node, (uint8_t)norm[k], true);
      node = next ? next : UINT32_MAX;
    }
    free(norm);
    if (node == UINT32_MAX)
      goto fail;
    if (node != 0 && !t.n[node].out)
      t.n[node].out = (int32_t)i + 1;
    if (node != 0)
      w->word_count++;
  }
  if (flatten(w, &t))
    goto fail;
  free(t.n);
  return w;
fail:
  free(t.n);
  filter_words_free(w);
  return NULL;
}

void filter_words_free(struct filter_words *w) {
  if (!w)
    return;
  free(w->nodes);
  free(w->edges);
  free(w);
}

size_t filter_words_count(const struct filter_words *w) { return w ? w->word_count : 0; }

long filter_words_match(const struct filter_words *w, const char *norm, size_t len) {
  if (!w || w->word_count == 0)
    return -1;
  uint32_t s = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t b = (uint8_t)norm[i];
    long next;
    while ((next = ac_step(w, s, b)) < 0 && s != 0)
      s = w->nodes[s].fail;
    s = next >= 0 ? (uint32_t)next : 0;
    if (w->nodes[s].out)
      return w->nodes[s].out - 1;
  }
  return -1;
}

/* ---- The daemon's word list, rebuilt on the thread pool */

#define FILTER_LIVE_MAX 10000      /* live words kept; words_add past it is refused */
#define FILTER_FILE_MAX (4u << 20) /* bytes of a words file we read */

struct filter_job {
  uv_work_t req;
  struct filter *f;
  char path[512];
  char **words; /* snapshot of the live words (owned) */
  size_t word_count;
  struct filter_words *result;
  size_t file_words;
  char **file_list; /* the file's words, sorted, each once (owned until job_done takes it) */
  size_t file_list_count;
};

struct filter {
  uv_loop_t *loop;
  struct filter_norm *loop_norm;   /* loop thread only */
  struct filter_norm *worker_norm; /* the one build in flight only */
  struct filter_words *current;
  char path[512];
  char **live;
  size_t live_count;
  /* The words file as the current automaton has it, kept raw (sorted, each
   * once) so that filter_list_words can show moderators what is banned;
   * the automaton itself keeps only normalised bytes. */
  char **file_list;
  size_t file_list_count;
  struct filter_job *job; /* in flight, or NULL */
  bool dirty;             /* changed while the job ran: build again */
  bool closing;
  void (*stopped)(void *arg); /* filter_stop's callback, after the free */
  void *stopped_arg;
  struct filter_stats stats;
};

static void filter_schedule(struct filter *f);

/* Read the words file: one word per line, '#' starts a comment line. */
static void job_read_file(struct filter_job *job, char ***words, size_t *count, size_t *cap) {
  FILE *fp = job->path[0] ? fopen(job->path, "r") : NULL;
  if (!fp) {
    if (job->path[0])
      log_warn("chat", "banned words file not readable path=%s", job->path);
    return;
  }
  char line[512];
  size_t total = 0;
  while (fgets(line, sizeof(line), fp) && total < FILTER_FILE_MAX) {
    total += strlen(line);
    line[strcspn(line, "\r\n")] = '\0';
    char *s = line;
    while (*s == ' ' || *s == '\t')
      s++;
    if (!*s || *s == '#')
      continue;
    if (*count == *cap) {
      size_t ncap = *cap ? *cap * 2 : 256;
      char **p = realloc(*words, ncap * sizeof(*p));
      if (!p)
        break;
      *words = p;
      *cap = ncap;
    }
    char *copy = strdup(s);
    if (!copy)
      break;
    (*words)[(*count)++] = copy;
    job->file_words++;
  }
  fclose(fp);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static void free_words(char **words, size_t count) {
  for (size_t i = 0; i < count; i++)
    free(words[i]);
  free(words);
}

/* Sort the file's words and drop repeats, here on the worker, so the loop
 * thread can list them and look a live word up with bsearch. */
static void job_keep_file_list(struct filter_job *job, char **file, size_t count) {
  if (count > 1) /* qsort's array may not be NULL, even empty */
    qsort(file, count, sizeof(*file), cmp_str);
  size_t w = 0;
  for (size_t i = 0; i < count; i++) {
    if (w && !strcmp(file[w - 1], file[i]))
      free(file[i]);
    else
      file[w++] = file[i];
  }
  job->file_list = file;
  job->file_list_count = w;
}

static void job_work(uv_work_t *req) {
  struct filter_job *job = req->data;
  char **file = NULL; /* the file's words (owned here) */
  size_t file_count = 0, cap = 0;
  job_read_file(job, &file, &file_count, &cap);
  /* the build's list: the file's words, then the live ones (both borrowed) */
  char **all = malloc((file_count + job->word_count + 1) * sizeof(*all));
  size_t count = 0;
  if (all) {
    for (size_t i = 0; i < file_count; i++)
      all[count++] = file[i];
    for (size_t i = 0; i < job->word_count; i++)
      all[count++] = job->words[i];
    job->result = filter_words_build(job->f->worker_norm, (const char *const *)all, count);
  }
  free(all);
  if (job->result)
    job_keep_file_list(job, file, file_count);
  else
    free_words(file, file_count);
}

static void job_free(struct filter_job *job) {
  free_words(job->words, job->word_count);
  free_words(job->file_list, job->file_list_count);
  free(job);
}

static void filter_free_now(struct filter *f) {
  void (*cb)(void *) = f->stopped;
  void *cb_arg = f->stopped_arg;
  filter_words_free(f->current);
  filter_norm_free(f->loop_norm);
  filter_norm_free(f->worker_norm);
  free_words(f->live, f->live_count);
  free_words(f->file_list, f->file_list_count);
  free(f);
  if (cb)
    cb(cb_arg);
}

static void job_done(uv_work_t *req, int status) {
  struct filter_job *job = req->data;
  struct filter *f = job->f;
  f->job = NULL;
  if (f->closing) {
    filter_words_free(job->result);
    job_free(job);
    filter_free_now(f);
    return;
  }
  if (status == 0 && job->result) {
    filter_words_free(f->current);
    f->current = job->result;
    free_words(f->file_list, f->file_list_count);
    f->file_list = job->file_list; /* the list goes with the automaton it was built into */
    f->file_list_count = job->file_list_count;
    job->file_list = NULL;
    job->file_list_count = 0;
    f->stats.builds++;
    f->stats.words = filter_words_count(f->current);
    log_info("chat", "banned words compiled words=%zu from_file=%zu", filter_words_count(f->current), job->file_words);
  } else {
    filter_words_free(job->result);
    log_warn("chat", "banned words build failed; keeping the previous list");
  }
  job_free(job);
  if (f->dirty)
    filter_schedule(f);
}

static void filter_schedule(struct filter *f) {
  if (f->job) {
    f->dirty = true;
    return;
  }
  f->dirty = false;
  struct filter_job *job = calloc(1, sizeof(*job));
  if (!job)
    return;
  job->f = f;
  job->req.data = job;
  snprintf(job->path, sizeof(job->path), "%s", f->path);
  job->words = calloc(f->live_count + 1, sizeof(char *));
  for (size_t i = 0; job->words && i < f->live_count; i++) {
    job->words[i] = strdup(f->live[i]);
    if (job->words[i])
      job->word_count++;
  }
  if (!job->words || uv_queue_work(f->loop, &job->req, job_work, job_done) != 0) {
    job_free(job);
    log_warn("chat", "banned words build could not start");
    return;
  }
  f->job = job;
}

struct filter *filter_new(uv_loop_t *loop) {
  struct filter *f = calloc(1, sizeof(*f));
  if (!f)
    return NULL;
  f->loop = loop;
  f->loop_norm = filter_norm_new();
  f->worker_norm = filter_norm_new();
  if (!f->loop_norm || !f->worker_norm) {
    filter_free_now(f);
    return NULL;
  }
  return f;
}

void filter_stop(struct filter *f, void (*cb)(void *arg), void *arg) {
  if (!f)
    return;
  f->stopped = cb;
  f->stopped_arg = arg;
  if (f->job) {
    f->closing = true;
    return;
  }
  filter_free_now(f);
}

void filter_set_file(struct filter *f, const char *path) {
  snprintf(f->path, sizeof(f->path), "%s", path ? path : "");
  filter_schedule(f);
}

static long live_find(const struct filter *f, const char *word) {
  for (size_t i = 0; i < f->live_count; i++)
    if (!strcmp(f->live[i], word))
      return (long)i;
  return -1;
}

int filter_add_word(struct filter *f, const char *word) {
  if (!*word || live_find(f, word) >= 0 || f->live_count >= FILTER_LIVE_MAX)
    return 0;
  char **p = realloc(f->live, (f->live_count + 1) * sizeof(*p));
  if (!p)
    return 0;
  f->live = p;
  if (!(f->live[f->live_count] = strdup(word)))
    return 0;
  f->live_count++;
  filter_schedule(f);
  return 1;
}

int filter_remove_word(struct filter *f, const char *word) {
  long i = live_find(f, word);
  if (i < 0)
    return 0;
  free(f->live[i]);
  f->live[i] = f->live[--f->live_count];
  filter_schedule(f);
  return 1;
}

size_t filter_live_word_count(const struct filter *f) { return f->live_count; }

/* Index of word in the file list, or -1. */
static long file_list_find(const struct filter *f, const char *word) {
  if (!f->file_list_count)
    return -1;
  char **at = bsearch(&word, f->file_list, f->file_list_count, sizeof(*f->file_list), cmp_str);
  return at ? (long)(at - f->file_list) : -1;
}

size_t filter_list_words(const struct filter *f, size_t max, void (*fn)(void *opaque, const char *word), void *opaque) {
  /* Live words first: they are the ones a moderator can remove, so a cut
   * list still shows them. A live word that the file has too is listed
   * once, with the live ones: mark those file entries (a bitmap, not a
   * search of the live list per file word, which could cost 10^8 compares
   * of the loop thread's time). */
  size_t total = 0, dup = 0;
  unsigned char *live_too = NULL;
  for (size_t i = 0; i < f->live_count; i++) {
    if (total++ < max)
      fn(opaque, f->live[i]);
    long k = file_list_find(f, f->live[i]);
    if (k < 0)
      continue;
    if (!dup++)
      live_too = calloc(f->file_list_count, 1);
    if (live_too)
      live_too[k] = 1;
  }
  for (size_t i = 0; i < f->file_list_count && total < max; i++) {
    if (dup && (live_too ? live_too[i] : live_find(f, f->file_list[i]) >= 0))
      continue;
    fn(opaque, f->file_list[i]);
    total++;
  }
  free(live_too);
  return f->live_count + f->file_list_count - dup;
}

bool filter_check(struct filter *f, const char *text, size_t len) {
  if (!f->current || filter_words_count(f->current) == 0)
    return false;
  size_t nlen;
  char *norm = filter_normalize(f->loop_norm, text, len, &nlen);
  if (!norm)
    return false;
  bool hit = filter_words_match(f->current, norm, nlen) >= 0;
  free(norm);
  if (hit)
    f->stats.matches++;
  return hit;
}

void filter_get_stats(const struct filter *f, struct filter_stats *out) { *out = f->stats; }
