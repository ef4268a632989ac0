/* room: members, state, admission checks, event application and the
 * per-tick fan-out of one channel (see room.h for the queue policy). */
#include "chat/room.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/filter.h"
#include "chat/ratelimit.h"
#include "config/config.h"

#define ROOM_PENDING_MAX 20000 /* events per tick; past it events are applied, not sent */
#define ROOM_TABLE_BUCKETS 4096
#define ROOM_USER_ADDRS 4 /* addresses remembered per user, newest first */
#define ROOM_SWEEP_TICKS 200

const char *room_role_name(enum room_role r) { return r == ROOM_MODERATOR ? "moderator" : "viewer"; }

const char *room_refusal_code(enum room_refusal r) {
  static const char *const codes[ROOM_REFUSAL_COUNT] = {
      "ok", "rate_limited", "slow_mode", "too_long", "empty", "banned", "timed_out", "bad_request", "forbidden", "held",
  };
  return r < ROOM_REFUSAL_COUNT ? codes[r] : "?";
}

void room_params_from_config(struct room_params *p, const struct config_chat *cfg, size_t headroom) {
  p->history = cfg->history;
  p->max_comment_length = cfg->max_comment_length;
  p->max_combining = cfg->max_combining;
  p->user_rate = cfg->user_rate;
  p->user_burst = cfg->user_burst;
  p->addr_rate = cfg->addr_rate;
  p->addr_burst = cfg->addr_burst;
  p->max_connections_per_addr = cfg->max_connections_per_addr;
  p->queue_soft_bytes = cfg->queue_soft_bytes;
  p->queue_hard_bytes = cfg->queue_hard_bytes;
  p->viewer_events_per_sec = cfg->viewer_events_per_sec;
  p->hello_rate = cfg->hello_rate;
  p->hello_burst = cfg->hello_burst;
  p->hello_addr_rate = cfg->hello_addr_rate;
  p->hello_addr_burst = cfg->hello_addr_burst;
  p->filter_hold = cfg->filter_hold;
  p->headroom = headroom;
}

/* ---- Keyed tables (users, addresses) */

struct entry {
  struct entry *next;
  char key[CHAT_ID_MAX + 1];
  struct ratelimit bucket;
  uint64_t last_comment_ms;        /* monotonic, for slow mode */
  int64_t until_ms;                /* ban/timeout end (wall); 0 = none */
  bool permanent;                  /* a ban, not a timeout */
  int connections;                 /* addresses: members connected from it */
  struct ratelimit hello;          /* addresses: hellos (room_admit_hello) */
  bool hello_used;                 /* hello was initialised */
  char addrs[ROOM_USER_ADDRS][64]; /* users: where they posted from */
};

struct table {
  struct entry *b[ROOM_TABLE_BUCKETS];
  size_t count;
};

static size_t hash(const char *s) {
  size_t h = 1469598103934665603u;
  while (*s)
    h = (h ^ (unsigned char)*s++) * 1099511628211u;
  return h % ROOM_TABLE_BUCKETS;
}

static struct entry *table_get(struct table *t, const char *key, bool create, double rate, int burst, uint64_t now_ms) {
  struct entry **head = &t->b[hash(key)];
  for (struct entry *e = *head; e; e = e->next)
    if (!strcmp(e->key, key))
      return e;
  if (!create || t->count >= ROOM_USERS_MAX || strlen(key) > CHAT_ID_MAX)
    return NULL;
  struct entry *e = calloc(1, sizeof(*e));
  if (!e)
    return NULL;
  memcpy(e->key, key, strlen(key) + 1);
  ratelimit_init(&e->bucket, rate, burst, now_ms);
  e->next = *head;
  *head = e;
  t->count++;
  return e;
}

/* Forget entries that hold nothing: a full bucket, no ban, no connection,
 * no comment within the slow mode window. */
static void table_sweep(struct table *t, uint64_t now_ms, int64_t wall_ms, uint64_t keep_ms) {
  for (size_t i = 0; i < ROOM_TABLE_BUCKETS; i++) {
    for (struct entry **p = &t->b[i]; *p;) {
      struct entry *e = *p;
      bool banned = e->permanent || e->until_ms > wall_ms;
      if (!banned && e->connections == 0 && ratelimit_is_full(&e->bucket, now_ms) &&
          (!e->hello_used || ratelimit_is_full(&e->hello, now_ms)) && now_ms - e->last_comment_ms > keep_ms) {
        *p = e->next;
        free(e);
        t->count--;
      } else {
        p = &e->next;
      }
    }
  }
}

static void table_free(struct table *t) {
  for (size_t i = 0; i < ROOM_TABLE_BUCKETS; i++) {
    while (t->b[i]) {
      struct entry *e = t->b[i];
      t->b[i] = e->next;
      free(e);
    }
  }
  t->count = 0;
}

/* ---- The room */

struct pending {
  json_t *ev;
  bool mod_only;
  bool comment;
};

struct room {
  char channel[64];
  struct room_params p;
  const struct room_ops *ops;
  void *opaque;
  struct filter *filter;

  struct room_member *members; /* doubly linked */
  size_t member_count;

  json_t **history; /* ring of comment events, capacity p.history */
  size_t hist_cap, hist_head, hist_count;
  /* the history serialised for welcomes, per role (viewers get lean
   * comments); NULL = stale */
  char *hist_json[2];
  size_t hist_json_len[2];
  json_t *held[ROOM_HELD_MAX]; /* oldest first */
  size_t held_count;

  int slow;
  bool hold;
  json_t *pinned; /* comment event or NULL */

  struct table users, addrs;
  struct ratelimit sample; /* room-wide: comments viewers receive per second */
  uint64_t last_now_ms;
  int64_t last_wall_ms; /* the sample bucket's clock */
  unsigned ticks;

  struct pending *pending;
  size_t pending_count, pending_cap;
  struct room_stats stats;
};

struct room *room_new(const char *channel, const struct room_params *p, const struct room_ops *ops, void *opaque,
                      struct filter *filter) {
  struct room *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  snprintf(r->channel, sizeof(r->channel), "%s", channel);
  r->ops = ops;
  r->opaque = opaque;
  r->filter = filter;
  ratelimit_init(&r->sample, p->viewer_events_per_sec, p->viewer_events_per_sec, 0);
  room_configure(r, p);
  return r;
}

static json_t *hist_at(const struct room *r, size_t i) { return r->history[(r->hist_head + i) % r->hist_cap]; }

/* Every change of the history goes through here: the welcomes' shared
 * copy is rebuilt on the next welcome. */
static void hist_changed(struct room *r) {
  for (int i = 0; i < 2; i++) {
    free(r->hist_json[i]);
    r->hist_json[i] = NULL;
  }
}

static void hist_clear(struct room *r) {
  hist_changed(r);
  for (size_t i = 0; i < r->hist_count; i++)
    json_decref(hist_at(r, i));
  r->hist_head = r->hist_count = 0;
}

static void hist_push(struct room *r, json_t *ev /* stolen */) {
  hist_changed(r);
  if (r->hist_cap == 0) {
    json_decref(ev);
    return;
  }
  if (r->hist_count == r->hist_cap) { /* full: the oldest goes */
    json_decref(r->history[r->hist_head]);
    r->hist_head = (r->hist_head + 1) % r->hist_cap;
    r->hist_count--;
  }
  r->history[(r->hist_head + r->hist_count++) % r->hist_cap] = ev;
}

/* Remove entries matching pred from the history, keeping order. */
static void hist_remove_if(struct room *r, bool (*pred)(const json_t *ev, const char *arg), const char *arg,
                           void (*removed)(struct room *, const json_t *)) {
  size_t w = 0, before = r->hist_count;
  for (size_t i = 0; i < r->hist_count; i++) {
    json_t *ev = hist_at(r, i);
    if (pred(ev, arg)) {
      if (removed)
        removed(r, ev);
      json_decref(ev);
    } else {
      r->history[(r->hist_head + w++) % r->hist_cap] = ev;
    }
  }
  r->hist_count = w;
  if (w != before)
    hist_changed(r);
}

void room_configure(struct room *r, const struct room_params *p) {
  size_t cap = p->history > 0 ? (size_t)p->history : 0;
  if (cap != r->hist_cap) {
    json_t **h = cap ? calloc(cap, sizeof(*h)) : NULL;
    if (cap && !h)
      return; /* keep the old params and ring */
    size_t skip = r->hist_count > cap ? r->hist_count - cap : 0, n = 0;
    for (size_t i = 0; i < r->hist_count; i++) {
      if (i < skip)
        json_decref(hist_at(r, i));
      else
        h[n++] = hist_at(r, i);
    }
    free(r->history);
    hist_changed(r);
    r->history = h;
    r->hist_cap = cap;
    r->hist_head = 0;
    r->hist_count = n;
  }
  r->p = *p;
  double rate = p->viewer_events_per_sec;
  ratelimit_configure(&r->sample, rate, rate, (uint64_t)r->last_wall_ms);
  for (size_t i = 0; i < ROOM_TABLE_BUCKETS; i++) {
    for (struct entry *e = r->users.b[i]; e; e = e->next)
      ratelimit_configure(&e->bucket, p->user_rate, p->user_burst, r->last_now_ms);
    for (struct entry *e = r->addrs.b[i]; e; e = e->next) {
      ratelimit_configure(&e->bucket, p->addr_rate, p->addr_burst, r->last_now_ms);
      ratelimit_configure(&e->hello, p->hello_addr_rate, p->hello_addr_burst, r->last_now_ms);
    }
  }
  for (struct room_member *m = r->members; m; m = m->next)
    ratelimit_configure(&m->hello, p->hello_rate, p->hello_burst, r->last_now_ms);
}

void room_free(struct room *r) {
  if (!r)
    return;
  while (r->members)
    room_leave(r->members);
  hist_clear(r);
  free(r->history);
  for (size_t i = 0; i < r->held_count; i++)
    json_decref(r->held[i]);
  json_decref(r->pinned);
  for (size_t i = 0; i < r->pending_count; i++)
    json_decref(r->pending[i].ev);
  free(r->pending);
  table_free(&r->users);
  table_free(&r->addrs);
  free(r);
}

const char *room_channel(const struct room *r) { return r->channel; }
size_t room_member_count(const struct room *r) { return r->member_count; }

/* ---- Members and their queues */

int room_join(struct room *r, struct room_member *m) {
  struct entry *a = table_get(&r->addrs, m->addr, true, r->p.addr_rate, r->p.addr_burst, r->last_now_ms);
  if (!a || a->connections >= r->p.max_connections_per_addr)
    return -EAGAIN;
  a->connections++;
  ratelimit_init(&m->hello, r->p.hello_rate, r->p.hello_burst, r->last_now_ms);
  m->room = r;
  m->prev = NULL;
  m->next = r->members;
  if (r->members)
    r->members->prev = m;
  r->members = m;
  r->member_count++;
  return 0;
}

static void queue_clear(struct room_member *m) {
  while (m->count) {
    struct room_frame *f = m->ring[m->head];
    m->head = (m->head + 1) % ROOM_QUEUE_FRAMES;
    m->count--;
    if (m->room)
      m->room->stats.queue_bytes -= f->len;
    room_frame_unref(f);
  }
  m->queue_bytes = 0;
}

void room_leave(struct room_member *m) {
  struct room *r = m->room;
  if (!r)
    return;
  queue_clear(m);
  struct entry *a = table_get(&r->addrs, m->addr, false, 0, 0, 0);
  if (a && a->connections > 0)
    a->connections--;
  if (m->prev)
    m->prev->next = m->next;
  else
    r->members = m->next;
  if (m->next)
    m->next->prev = m->prev;
  r->member_count--;
  m->room = NULL;
  m->prev = m->next = NULL;
}

void room_for_each_member(struct room *r, void (*fn)(void *opaque, struct room_member *m), void *opaque) {
  for (struct room_member *m = r->members, *next; m; m = next) {
    next = m->next;
    fn(opaque, m);
  }
}

void room_close_all(struct room *r, int close_code, const char *reason) {
  for (struct room_member *m = r->members; m; m = m->next) {
    if (!m->kicked) {
      m->kicked = true;
      r->ops->kick(r->opaque, m, close_code, reason);
    }
  }
}

void room_frame_unref(struct room_frame *f) {
  if (f && --f->refs == 0) {
    free(f->base);
    free(f);
  }
}

#define WS_HEADER_MAX 10 /* RFC 6455 5.2: 2 bytes, + 2 or 8 of extended length */

/* The server-to-client header (FIN, the opcode, no mask) right before the
 * payload, written once per frame: every member's socket gets these same
 * bytes. */
static void frame_seal(struct room_frame *f, size_t headroom, uint8_t opcode) {
  unsigned char h[WS_HEADER_MAX];
  size_t n = 0;
  h[n++] = (unsigned char)(0x80 | opcode);
  if (f->len < 126) {
    h[n++] = (unsigned char)f->len;
  } else if (f->len <= 0xffff) {
    h[n++] = 126;
    h[n++] = (unsigned char)(f->len >> 8);
    h[n++] = (unsigned char)f->len;
  } else {
    h[n++] = 127;
    for (int shift = 56; shift >= 0; shift -= 8)
      h[n++] = (unsigned char)((uint64_t)f->len >> shift);
  }
  if (headroom < n)
    return; /* f->hdr stays 0: lws frames it */
  memcpy(f->base + headroom - n, h, n);
  f->hdr = (uint8_t)n;
}

const unsigned char *room_frame_wire(const struct room_frame *f, size_t headroom, size_t *len) {
  if (!f->hdr)
    return NULL;
  *len = f->hdr + f->len;
  return f->base + headroom - f->hdr;
}

static struct room_frame *frame_new(const struct room *r, const json_t *msg, bool reply) {
  struct room_frame *f = calloc(1, sizeof(*f));
  if (!f)
    return NULL;
  f->base = chat_json_frame(msg, r->p.headroom, &f->len);
  if (!f->base) {
    free(f);
    return NULL;
  }
  f->refs = 1;
  f->reply = reply;
  frame_seal(f, r->p.headroom, 0x1 /* text */);
  return f;
}

static struct room_frame *deflate_of(struct room *r, struct room_frame *text);

static void kick(struct room *r, struct room_member *m, const char *why) {
  if (m->kicked)
    return;
  m->kicked = true;
  r->stats.kicked_slow++;
  queue_clear(m);
  r->ops->kick(r->opaque, m, 1008, why);
}

/* Drop the oldest batch frame of m's queue; false if it holds only replies. */
static bool drop_oldest_batch(struct room *r, struct room_member *m) {
  for (unsigned i = 0; i < m->count; i++) {
    unsigned at = (m->head + i) % ROOM_QUEUE_FRAMES;
    struct room_frame *f = m->ring[at];
    if (f->reply)
      continue;
    for (unsigned k = i; k + 1 < m->count; k++) /* close the gap */
      m->ring[(m->head + k) % ROOM_QUEUE_FRAMES] = m->ring[(m->head + k + 1) % ROOM_QUEUE_FRAMES];
    m->count--;
    m->queue_bytes -= f->len;
    r->stats.queue_bytes -= f->len;
    m->debt += f->len;
    m->dropped_batches++;
    r->stats.dropped_batches++;
    room_frame_unref(f);
    return true;
  }
  return false;
}

static void enqueue(struct room *r, struct room_member *m, struct room_frame *f) {
  if (m->kicked)
    return;
  while (m->count > 0 && (m->count == ROOM_QUEUE_FRAMES || m->queue_bytes + f->len > r->p.queue_soft_bytes)) {
    if (!drop_oldest_batch(r, m))
      break;
  }
  /* what it owes before this frame: one frame bigger than the bound does
   * not close a member that is keeping up */
  if (m->count == ROOM_QUEUE_FRAMES || m->queue_bytes + m->debt > r->p.queue_hard_bytes) {
    kick(r, m, "too slow");
    return;
  }
  f->refs++;
  m->ring[(m->head + m->count++) % ROOM_QUEUE_FRAMES] = f;
  m->queue_bytes += f->len;
  r->stats.queue_bytes += f->len;
  r->ops->wake(r->opaque, m);
}

int room_send(struct room_member *m, const json_t *msg) {
  struct room *r = m->room;
  if (!r)
    return -ENOTCONN;
  struct room_frame *f = frame_new(r, msg, true);
  if (!f)
    return -ENOMEM;
  enqueue(r, m, f);
  room_frame_unref(f);
  return 0;
}

struct room_frame *room_member_take(struct room_member *m) {
  struct room *r = m->room;
  if (!r || m->kicked)
    return NULL;
  m->debt = 0; /* it is reading */
  if (m->dropped_batches && (!m->count || !m->ring[m->head]->reply)) {
    json_t *msg = json_pack("{s:s, s:[{s:s, s:I}]}", "type", "batch", "events", "type", "dropped", "batches",
                            (json_int_t)m->dropped_batches);
    struct room_frame *f = msg ? frame_new(r, msg, true) : NULL;
    json_decref(msg);
    struct room_frame *z = f && m->deflate ? deflate_of(r, f) : NULL;
    if (z) { /* a batch, so compressed for those who asked */
      room_frame_unref(f);
      f = z;
    }
    if (f) {
      m->dropped_batches = 0;
      return f;
    }
  }
  if (!m->count)
    return NULL;
  struct room_frame *f = m->ring[m->head];
  m->head = (m->head + 1) % ROOM_QUEUE_FRAMES;
  m->count--;
  m->queue_bytes -= f->len;
  r->stats.queue_bytes -= f->len;
  return f;
}

struct room_frame *room_member_peek(const struct room_member *m, unsigned i) {
  if (!m->room || m->kicked || m->dropped_batches || i >= m->count)
    return NULL;
  return m->ring[(m->head + i) % ROOM_QUEUE_FRAMES];
}

bool room_member_reply_queued(const struct room_member *m) {
  return m->count > 0 && m->ring[(m->head + m->count - 1) % ROOM_QUEUE_FRAMES]->reply;
}

bool room_member_has_frames(const struct room_member *m) {
  return !m->kicked && (m->count > 0 || m->dropped_batches > 0);
}

/* The form of ev that members of role get (a new reference). */
static json_t *event_for(enum room_role role, json_t *ev) {
  return role == ROOM_MODERATOR ? json_incref(ev) : chat_event_for_viewers(ev);
}

static json_t *state_object(const struct room *r, enum room_role role) {
  json_t *full = chat_state_json(r->slow, r->hold, r->pinned);
  json_t *s = full ? event_for(role, full) : NULL;
  json_decref(full);
  if (s)
    json_object_del(s, "type");
  return s;
}

static void add_word(void *opaque, const char *word) { json_array_append_new(opaque, json_string(word)); }

/* The banned words for a moderator's console to edit. Bounded: a words
 * file may hold tens of thousands, and a welcome is one frame; the total
 * says how many were left out. */
static void welcome_words(const struct room *r, json_t *msg) {
  json_t *list = json_array();
  if (!list)
    return;
  size_t total = filter_list_words(r->filter, ROOM_WELCOME_WORDS_MAX, add_word, list);
  json_object_set_new(msg, "banned_words", list);
  json_object_set_new(msg, "banned_words_total", json_integer((json_int_t)total));
}

const char *room_history_json(struct room *r, enum room_role role, size_t *len) {
  int k = role == ROOM_MODERATOR;
  if (!r->hist_json[k]) {
    json_t *hist = json_array();
    for (size_t i = 0; hist && i < r->hist_count; i++)
      json_array_append_new(hist, event_for(role, hist_at(r, i)));
    r->hist_json[k] = hist ? json_dumps(hist, JSON_COMPACT) : NULL;
    r->hist_json_len[k] = r->hist_json[k] ? strlen(r->hist_json[k]) : 0;
    json_decref(hist);
    if (r->hist_json[k])
      r->stats.history_builds++;
  }
  *len = r->hist_json_len[k];
  return r->hist_json[k];
}

/* msg's text with ,"history":HISTORY spliced in before its closing brace,
 * as a reply frame: the shared history is copied, not serialised again. */
static struct room_frame *welcome_frame(struct room *r, enum room_role role, const json_t *msg) {
  static const char key[] = ",\"history\":";
  size_t hlen, head = r->p.headroom;
  const char *hist = room_history_json(r, role, &hlen);
  char *text = hist ? json_dumps(msg, JSON_COMPACT) : NULL;
  size_t tlen = text ? strlen(text) : 0;
  struct room_frame *f = tlen >= 2 ? calloc(1, sizeof(*f)) : NULL;
  if (f)
    f->len = tlen - 1 + sizeof(key) - 1 + hlen + 1;
  if (f && !(f->base = malloc(head + f->len + 1))) {
    free(f);
    f = NULL;
  }
  if (f) {
    unsigned char *p = f->base + head;
    memcpy(p, text, tlen - 1); /* without its '}' */
    p += tlen - 1;
    memcpy(p, key, sizeof(key) - 1);
    p += sizeof(key) - 1;
    memcpy(p, hist, hlen);
    p[hlen] = '}';
    p[hlen + 1] = '\0';
    f->refs = 1;
    f->reply = true;
    frame_seal(f, head, 0x1 /* text */);
  }
  free(text);
  return f;
}

int room_send_welcome(struct room *r, struct room_member *m) {
  if (!m->room)
    return -ENOTCONN;
  json_t *msg =
      json_pack("{s:s, s:o, s:o}", "type", "welcome", "user",
                chat_user_json(m->user_id, m->name, room_role_name(m->role)), "state", state_object(r, m->role));
  if (msg && m->role == ROOM_MODERATOR) {
    json_t *held = json_array();
    for (size_t i = 0; held && i < r->held_count; i++)
      json_array_append(held, r->held[i]);
    json_object_set_new(msg, "held", held);
    if (r->filter) /* viewers never learn the list: it would say what to misspell */
      welcome_words(r, msg);
  }
  struct room_frame *f = msg ? welcome_frame(r, m->role, msg) : NULL;
  json_decref(msg);
  if (!f)
    return -ENOMEM;
  enqueue(r, m, f);
  room_frame_unref(f);
  return 0;
}

enum room_refusal room_admit_hello(struct room *r, struct room_member *m, uint64_t now_ms, int64_t *retry_after_ms) {
  *retry_after_ms = -1;
  if (now_ms > r->last_now_ms)
    r->last_now_ms = now_ms;
  /* the member's address has an entry while it is connected (room_join) */
  struct entry *a = table_get(&r->addrs, m->addr, false, 0, 0, 0);
  if (a && !a->hello_used) {
    ratelimit_init(&a->hello, r->p.hello_addr_rate, r->p.hello_addr_burst, now_ms);
    a->hello_used = true;
  }
  int64_t wc = ratelimit_take(&m->hello, now_ms);
  int64_t wa = wc || !a ? 0 : ratelimit_take(&a->hello, now_ms);
  if (!wc && !wa)
    return ROOM_OK;
  if (wa) /* give the connection's token back: the address refused */
    ratelimit_give_back(&m->hello);
  r->stats.hello_refused++;
  *retry_after_ms = wc ? wc : wa;
  return ROOM_RATE_LIMITED;
}

/* ---- Posting */

enum room_refusal room_admit_comment(struct room *r, struct room_member *m, const char *text, char **display,
                                     int64_t *retry_after_ms, uint64_t now_ms, int64_t wall_ms) {
  *display = NULL;
  *retry_after_ms = -1;
  r->last_now_ms = now_ms;
  enum room_refusal why = ROOM_OK;
  /* Looked up, not created: a refusal leaves no entry behind (ROOM_USERS_MAX).
   * A user without one has a full bucket, no ban and no slow mode past. */
  static const struct entry none;
  struct entry *u = table_get(&r->users, m->user_id, false, 0, 0, 0);
  struct entry *a =
      table_get(&r->addrs, m->addr, true, r->p.addr_rate, r->p.addr_burst, now_ms); /* there since room_join */
  const struct entry *uu = u ? u : &none;
  size_t len = 0;
  char *d = NULL;
  bool is_mod = m->role == ROOM_MODERATOR;
  if (!a) {
    why = ROOM_RATE_LIMITED; /* tables full: behave like a busy server */
    *retry_after_ms = 1000;
  } else if (uu->permanent || a->permanent) {
    why = ROOM_BANNED;
  } else if (uu->until_ms > wall_ms || a->until_ms > wall_ms) {
    why = ROOM_TIMED_OUT;
    *retry_after_ms = (uu->until_ms > a->until_ms ? uu->until_ms : a->until_ms) - wall_ms;
  } else if (!(d = filter_sanitize(text, strlen(text), r->p.max_combining, &len))) {
    why = ROOM_BAD_REQUEST;
  } else if (len == 0) {
    why = ROOM_EMPTY;
  } else if (chat_utf8_length(d, len) > (size_t)r->p.max_comment_length) {
    why = ROOM_TOO_LONG;
  } else if (!is_mod && r->slow > 0 && uu->last_comment_ms && now_ms - uu->last_comment_ms < (uint64_t)r->slow * 1000) {
    why = ROOM_SLOW_MODE;
    *retry_after_ms = (int64_t)((uint64_t)r->slow * 1000 - (now_ms - uu->last_comment_ms));
  } else {
    /* a user without an entry has a full bucket: at least one token */
    int64_t wu = u ? ratelimit_take(&u->bucket, now_ms) : 0;
    int64_t wa = wu ? 0 : ratelimit_take(&a->bucket, now_ms);
    if (wa && u) /* give the user's token back: the address refused */
      ratelimit_give_back(&u->bucket);
    if (wu || wa) {
      why = ROOM_RATE_LIMITED;
      *retry_after_ms = wu ? wu : wa;
    }
  }
  bool passed = why == ROOM_OK; /* every check before the filter */
  if (passed) {
    if (r->filter && filter_check(r->filter, d, len))
      why = r->p.filter_hold ? ROOM_HELD : ROOM_FORBIDDEN;
    else if (r->hold && !is_mod)
      why = ROOM_HELD;
  }
  /* A forbidden comment cost the address a token (above) and the user one
   * if they have an entry; only a comment kept (accepted or held) makes
   * one, for its bucket and the slow mode clock. */
  if ((why == ROOM_OK || why == ROOM_HELD) && !u) {
    u = table_get(&r->users, m->user_id, true, r->p.user_rate, r->p.user_burst, now_ms);
    if (u)
      ratelimit_take(&u->bucket, now_ms);
    else {
      ratelimit_give_back(&a->bucket); /* not kept after all: the address's token back */
      why = ROOM_RATE_LIMITED;
      *retry_after_ms = 1000;
    }
  }
  if (u && passed && why != ROOM_RATE_LIMITED)
    u->last_comment_ms = now_ms;
  if (why == ROOM_OK || why == ROOM_HELD) {
    *display = d;
    if (why == ROOM_OK)
      r->stats.accepted++;
  } else {
    free(d);
  }
  if (why != ROOM_OK)
    r->stats.refused[why]++;
  return why;
}

void room_count_refusal(struct room *r, enum room_refusal why) {
  if (why < ROOM_REFUSAL_COUNT)
    r->stats.refused[why]++;
}

void room_note_author(struct room *r, const char *user_id, const char *addr) {
  struct entry *u = table_get(&r->users, user_id, true, r->p.user_rate, r->p.user_burst, r->last_now_ms);
  if (!u || !strcmp(u->addrs[0], addr))
    return;
  memmove(u->addrs[1], u->addrs[0], sizeof(u->addrs[0]) * (ROOM_USER_ADDRS - 1));
  snprintf(u->addrs[0], sizeof(u->addrs[0]), "%s", addr);
}

void room_user_addrs(struct room *r, const char *user_id, void (*fn)(void *opaque, const char *addr), void *opaque) {
  struct entry *u = table_get(&r->users, user_id, false, 0, 0, 0);
  for (int i = 0; u && i < ROOM_USER_ADDRS; i++)
    if (u->addrs[i][0])
      fn(opaque, u->addrs[i]);
  for (struct room_member *m = r->members; m; m = m->next)
    if (!strcmp(m->user_id, user_id))
      fn(opaque, m->addr);
}


/* ---- Events */

static void pending_add(struct room *r, json_t *ev /* stolen */, bool mod_only, bool comment) {
  if (r->pending_count == r->pending_cap) {
    size_t cap = r->pending_cap ? r->pending_cap * 2 : 64;
    struct pending *p = cap <= ROOM_PENDING_MAX ? realloc(r->pending, cap * sizeof(*p)) : NULL;
    if (!p) { /* bound reached: applied to the state, not sent this tick */
      json_decref(ev);
      return;
    }
    r->pending = p;
    r->pending_cap = cap;
  }
  r->pending[r->pending_count++] = (struct pending){ev, mod_only, comment};
}

static const char *ev_str(const json_t *ev, const char *key) { return json_string_value(json_object_get(ev, key)); }

static bool same_id(const json_t *ev, const char *id) {
  const char *e = ev_str(ev, "id");
  return e && !strcmp(e, id);
}

static bool by_user(const json_t *ev, const char *user) {
  const char *u = json_string_value(json_object_get(json_object_get(ev, "user"), "id"));
  return u && !strcmp(u, user);
}

static bool held_remove(struct room *r, const char *id) {
  for (size_t i = 0; i < r->held_count; i++) {
    if (same_id(r->held[i], id)) {
      json_decref(r->held[i]);
      memmove(&r->held[i], &r->held[i + 1], (r->held_count - i - 1) * sizeof(r->held[0]));
      r->held_count--;
      return true;
    }
  }
  return false;
}

static void held_add(struct room *r, json_t *comment /* stolen */) {
  if (r->held_count == ROOM_HELD_MAX) { /* full: the oldest is forgotten (stays held in the archive) */
    json_decref(r->held[0]);
    memmove(&r->held[0], &r->held[1], (ROOM_HELD_MAX - 1) * sizeof(r->held[0]));
    r->held_count--;
  }
  r->held[r->held_count++] = comment;
}

static void unpin_if(struct room *r, const char *id) {
  if (r->pinned && (!id || same_id(r->pinned, id))) {
    json_decref(r->pinned);
    r->pinned = NULL;
    pending_add(r, chat_state_json(r->slow, r->hold, NULL), false, false);
  }
}

/* A ban or timeout removes the user's comments everywhere (as Twitch does):
 * each removal is a delete event, generated identically on every node. */
static void removed_comment(struct room *r, const json_t *ev) {
  pending_add(r, json_pack("{s:s, s:s}", "type", "delete", "id", ev_str(ev, "id")), false, false);
  unpin_if(r, ev_str(ev, "id"));
}

struct ban_ctx {
  struct room *r;
  int64_t until_ms;
  bool permanent;
};

static void ban_addr(void *opaque, const char *addr) {
  struct ban_ctx *b = opaque;
  struct entry *a = table_get(&b->r->addrs, addr, true, b->r->p.addr_rate, b->r->p.addr_burst, b->r->last_now_ms);
  if (a) {
    a->permanent = b->permanent;
    a->until_ms = b->until_ms;
  }
}

static int apply_ban(struct room *r, const json_t *ev, bool timeout, bool lift) {
  const char *user = ev_str(ev, "user");
  if (!user)
    return -EINVAL;
  struct ban_ctx b = {r, 0, false};
  if (!lift) {
    b.permanent = !timeout;
    b.until_ms = timeout ? (int64_t)json_integer_value(json_object_get(ev, "until")) : 0;
  }
  struct entry *u = table_get(&r->users, user, true, r->p.user_rate, r->p.user_burst, r->last_now_ms);
  if (u) {
    u->permanent = b.permanent;
    u->until_ms = b.until_ms;
  }
  room_user_addrs(r, user, ban_addr, &b);
  if (!lift)
    hist_remove_if(r, by_user, user, removed_comment);
  return 0;
}

static int apply_state(struct room *r, const json_t *ev) {
  json_t *slow = json_object_get(ev, "slow"), *hold = json_object_get(ev, "hold");
  json_t *pinned = json_object_get(ev, "pinned");
  if (!json_is_integer(slow) || !json_is_boolean(hold))
    return -EINVAL;
  r->slow = (int)json_integer_value(slow);
  r->hold = json_is_true(hold);
  json_decref(r->pinned);
  r->pinned = json_is_object(pinned) ? json_deep_copy(pinned) : NULL;
  return 0;
}

int room_deliver(struct room *r, const json_t *event, int64_t wall_ms) {
  (void)wall_ms;
  const char *type = ev_str(event, "type");
  const char *id = ev_str(event, "id");
  if (!type)
    return -EINVAL;
  bool mod_only = false, comment = false;
  if (!strcmp(type, "comment")) {
    if (!id || !json_is_object(json_object_get(event, "user")) || !ev_str(event, "text"))
      return -EINVAL;
    hist_push(r, json_deep_copy(event));
    comment = true;
  } else if (!strcmp(type, "delete")) {
    if (!id)
      return -EINVAL;
    hist_remove_if(r, same_id, id, NULL);
    held_remove(r, id);
    pending_add(r, json_deep_copy(event), false, false);
    unpin_if(r, id);
    return 0;
  } else if (!strcmp(type, "clear")) {
    hist_clear(r);
    pending_add(r, json_deep_copy(event), false, false);
    unpin_if(r, NULL); /* the pinned comment was cleared with the rest */
    return 0;
  } else if (!strcmp(type, "state")) {
    if (apply_state(r, event))
      return -EINVAL;
  } else if (!strcmp(type, "held")) {
    json_t *c = json_object_get(event, "comment");
    if (!json_is_object(c) || !ev_str(c, "id"))
      return -EINVAL;
    held_add(r, json_deep_copy(c));
    mod_only = true;
  } else if (!strcmp(type, "resolved")) {
    if (!id)
      return -EINVAL;
    held_remove(r, id);
    mod_only = true;
  } else if (!strcmp(type, "ban") || !strcmp(type, "timeout") || !strcmp(type, "unban")) {
    /* the event goes out before the deletes it causes */
    pending_add(r, json_deep_copy(event), true, false);
    return apply_ban(r, event, !strcmp(type, "timeout"), !strcmp(type, "unban"));
  } else if (!strcmp(type, "words")) {
    if (r->ops->words)
      r->ops->words(r->opaque, r, event);
    mod_only = true;
  } else {
    return -EINVAL;
  }
  pending_add(r, json_deep_copy(event), mod_only, comment);
  return 0;
}

/* ---- The tick: serialise once, queue references */

/* One form of the tick's batch, shared by every member of its audience:
 * the text frame, and its deflated copy, made the first time a member
 * that asked for compressed batches needs it (so once per room and tick,
 * and never in a room where nobody asked). */
struct variant {
  struct room_frame *text, *z;
  size_t events;
};

static struct room_frame *deflate_of(struct room *r, struct room_frame *text) {
  struct room_frame *f = calloc(1, sizeof(*f));
  if (!f)
    return NULL;
  f->base = chat_deflate_frame(room_frame_payload(text, r->p.headroom), text->len, r->p.headroom, &f->len);
  if (!f->base) {
    free(f);
    return NULL;
  }
  f->refs = 1;
  f->reply = text->reply;
  f->binary = true;
  frame_seal(f, r->p.headroom, 0x2 /* binary */);
  r->stats.deflated_frames++;
  return f;
}

static struct room_frame *variant_frame(struct room *r, struct variant *v, bool deflate) {
  if (!deflate || !v->text)
    return v->text;
  if (!v->z)
    v->z = deflate_of(r, v->text);
  return v->z ? v->z : v->text; /* no memory: the text form, which every client reads */
}

/* Whether the member got a frame. */
static bool variant_deliver(struct room *r, struct room_member *m, struct variant *v) {
  struct room_frame *f = variant_frame(r, v, m->deflate);
  if (!f)
    return false;
  enqueue(r, m, f);
  r->stats.delivered_events += v->events;
  if (f->binary)
    r->stats.delivered_deflate_bytes += f->len;
  else
    r->stats.delivered_text_bytes += f->len;
  return true;
}

static void variant_release(struct variant *v) {
  room_frame_unref(v->text);
  room_frame_unref(v->z);
}

/* Senders of one tick's sampled-out comments, each to get their own back
 * ("the sender always sees their own comment"): a hash table sized for the
 * tick's events (every sender fits, at midnight too), so each member finds
 * theirs in O(1). */
struct own {
  const char *user; /* NULL = free slot */
  json_t *events;   /* in the viewers' form */
  struct variant v;
};

struct own_table {
  struct own *slot;
  size_t cap, count; /* cap: a power of two, at least twice the tick's events */
};

static uint64_t user_hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

/* The sender's entry; with add, created if missing. NULL if absent (or no
 * table: it could not be allocated, and nobody gets an echo this tick). */
static struct own *own_find(struct own_table *t, const char *user, bool add) {
  if (!t->slot)
    return NULL;
  for (size_t i = user_hash(user) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    struct own *o = &t->slot[i];
    if (!o->user) {
      if (!add)
        return NULL;
      *o = (struct own){user, json_array(), {NULL, NULL, 0}};
      t->count++;
      return o;
    }
    if (!strcmp(o->user, user))
      return o;
  }
}

static struct room_frame *batch_frame(struct room *r, json_t *events /* stolen */) {
  json_t *msg = json_pack("{s:s, s:o}", "type", "batch", "events", events);
  struct room_frame *f = msg ? frame_new(r, msg, false) : NULL;
  json_decref(msg);
  if (f)
    r->stats.frames++;
  return f;
}

/* Split the tick's events: every one for moderators (full form), those
 * viewers get (lean form, maybe sampled), and the sampled-out comments
 * each sender still gets back. */
static void tick_sort(struct room *r, json_t *all, json_t *viewers, struct own_table *own) {
  for (size_t i = 0; i < r->pending_count; i++) {
    struct pending *p = &r->pending[i];
    json_array_append(all, p->ev);
    if (p->mod_only)
      continue;
    if (!p->comment || r->p.viewer_events_per_sec <= 0 || ratelimit_take(&r->sample, (uint64_t)r->last_wall_ms) == 0) {
      json_array_append_new(viewers, chat_event_for_viewers(p->ev));
      continue;
    }
    /* sampled out: its sender still sees it */
    const char *user = json_string_value(json_object_get(json_object_get(p->ev, "user"), "id"));
    if (user && !own->slot) {
      for (own->cap = 16; own->cap < 2 * r->pending_count; own->cap *= 2)
        ;
      own->slot = calloc(own->cap, sizeof(*own->slot));
    }
    struct own *o = user ? own_find(own, user, true) : NULL;
    if (o && o->events)
      json_array_append_new(o->events, chat_event_for_viewers(p->ev));
  }
}

void room_tick(struct room *r, int64_t wall_ms) {
  if (wall_ms > r->last_wall_ms)
    r->last_wall_ms = wall_ms;
  if (++r->ticks % ROOM_SWEEP_TICKS == 0) {
    uint64_t keep = (uint64_t)r->slow * 1000;
    table_sweep(&r->users, r->last_now_ms, wall_ms, keep);
    table_sweep(&r->addrs, r->last_now_ms, wall_ms, keep);
  }
  if (r->pending_count == 0)
    return;
  json_t *all = json_array(), *viewers = json_array();
  struct own_table own = {0};
  tick_sort(r, all, viewers, &own);
  /* one shared frame per form (moderators' full, viewers' lean) and tick */
  struct variant vall = {NULL, NULL, json_array_size(all)};
  struct variant vview = {NULL, NULL, json_array_size(viewers)};
  if (vall.events)
    vall.text = batch_frame(r, json_incref(all));
  if (vview.events)
    vview.text = batch_frame(r, json_incref(viewers));
  json_decref(all);
  json_decref(viewers);
  for (size_t i = 0; own.count && i < own.cap; i++) {
    struct own *o = &own.slot[i];
    if (o->user && o->events && (o->v.events = json_array_size(o->events)))
      o->v.text = batch_frame(r, json_incref(o->events));
  }
  for (struct room_member *m = r->members; m; m = m->next) {
    if (m->role == ROOM_MODERATOR) {
      if (variant_deliver(r, m, &vall))
        r->stats.member_ticks++;
      continue;
    }
    struct own *o = own.count ? own_find(&own, m->user_id, false) : NULL;
    bool got = variant_deliver(r, m, &vview);
    if (o && variant_deliver(r, m, &o->v))
      got = true;
    if (got)
      r->stats.member_ticks++;
  }
  for (size_t i = 0; own.count && i < own.cap; i++) {
    variant_release(&own.slot[i].v);
    json_decref(own.slot[i].events);
  }
  free(own.slot);
  variant_release(&vview);
  variant_release(&vall);
  for (size_t i = 0; i < r->pending_count; i++)
    json_decref(r->pending[i].ev);
  r->pending_count = 0;
}

/* ---- Addresses */

/* ---- Loading and lookups */

void room_load_comment(struct room *r, json_t *comment) { hist_push(r, comment); }
void room_load_held(struct room *r, json_t *comment) { held_add(r, comment); }

void room_load_ban(struct room *r, const char *user_id, const char *addr, int64_t until_ms) {
  struct table *t = user_id && *user_id ? &r->users : &r->addrs;
  const char *key = user_id && *user_id ? user_id : addr;
  if (!key || !*key)
    return;
  struct entry *e = table_get(t, key, true, t == &r->users ? r->p.user_rate : r->p.addr_rate,
                              t == &r->users ? r->p.user_burst : r->p.addr_burst, r->last_now_ms);
  if (e) {
    e->permanent = until_ms == 0;
    e->until_ms = until_ms;
  }
}

void room_load_state(struct room *r, int slow_seconds, bool hold, const char *pinned_id) {
  r->slow = slow_seconds;
  r->hold = hold;
  json_decref(r->pinned);
  const json_t *c = pinned_id && *pinned_id ? room_find_comment(r, pinned_id) : NULL;
  r->pinned = c ? json_deep_copy(c) : NULL;
}

const json_t *room_find_comment(const struct room *r, const char *id) {
  for (size_t i = r->hist_count; i-- > 0;)
    if (same_id(hist_at(r, i), id))
      return hist_at(r, i);
  return NULL;
}

const json_t *room_find_held(const struct room *r, const char *id) {
  for (size_t i = 0; i < r->held_count; i++)
    if (same_id(r->held[i], id))
      return r->held[i];
  return NULL;
}

int room_slow_seconds(const struct room *r) { return r->slow; }
bool room_hold(const struct room *r) { return r->hold; }
const json_t *room_pinned(const struct room *r) { return r->pinned; }

void room_get_stats(const struct room *r, struct room_stats *out) {
  *out = r->stats;
  out->held = r->held_count;
  out->users = r->users.count;
  out->addrs = r->addrs.count;
}
