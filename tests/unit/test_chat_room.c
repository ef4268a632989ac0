/* Unit tests for chat/room without sockets: admission checks, events
 * applied in order, the per-tick fan-out with shared frames, the bounded
 * member queues (drop oldest, then close) and viewer sampling; the
 * hello limits, the welcome's shared history, refusals that leave no
 * entry in the user table, the viewers' lean events and the compressed
 * batches (one deflate per form and tick, shared). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#include "tests/unit/test_main.h"

#include "chat/filter.h"
#include "chat/room.h"

#define HEAD 16

static int wakes, kicks, last_kick_code;

static void fake_wake(void *o, struct room_member *m) { (void)o, (void)m, wakes++; }
static void fake_kick(void *o, struct room_member *m, int code, const char *why) {
  (void)o, (void)m, (void)why;
  kicks++;
  last_kick_code = code;
}
static const struct room_ops ops = {fake_wake, fake_kick, NULL};

static struct room_params params(void) {
  struct room_params p = {.history = 3,
                          .max_comment_length = 10,
                          .max_combining = 2,
                          .user_rate = 1,
                          .user_burst = 2,
                          .addr_rate = 100,
                          .addr_burst = 100,
                          .max_connections_per_addr = 2,
                          .queue_soft_bytes = 4096,
                          .queue_hard_bytes = 16384,
                          .viewer_events_per_sec = 0,
                          .filter_hold = false,
                          .headroom = HEAD,
                          .hello_rate = 1,
                          .hello_burst = 3,
                          .hello_addr_rate = 1,
                          .hello_addr_burst = 5};
  return p;
}

static void member(struct room_member *m, const char *user, const char *addr, enum room_role role) {
  memset(m, 0, sizeof(*m));
  snprintf(m->user_id, sizeof(m->user_id), "%s", user);
  snprintf(m->addr, sizeof(m->addr), "%s", addr);
  snprintf(m->name, sizeof(m->name), "%s", user);
  m->role = role;
  m->named = true;
}

/* Next frame as JSON (NULL if none). */
static json_t *take(struct room_member *m) {
  struct room_frame *f = room_member_take(m);
  if (!f)
    return NULL;
  json_t *j = json_loadb((const char *)room_frame_payload(f, HEAD), f->len, 0, NULL);
  room_frame_unref(f);
  return j;
}

static const char *type_of(json_t *j) { return json_string_value(json_object_get(j, "type")); }

static json_t *comment(const char *id, const char *user, const char *text) {
  return chat_comment_event(id, chat_user_json(user, user, "viewer"), text, 1);
}

static void deliver(struct room *r, json_t *ev) {
  assert_int_equal(room_deliver(r, ev, 1000), 0);
  json_decref(ev);
}

static void test_join_and_welcome(void **state) {
  (void)state;
  struct room_params p = params();
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member a, b, c;
  member(&a, "a", "10.0.0.1", ROOM_VIEWER);
  member(&b, "b", "10.0.0.1", ROOM_VIEWER);
  member(&c, "c", "10.0.0.1", ROOM_VIEWER);
  assert_int_equal(room_join(r, &a), 0);
  assert_int_equal(room_join(r, &b), 0);
  assert_int_equal(room_join(r, &c), -EAGAIN); /* two per address */
  for (int i = 0; i < 5; i++) {
    char id[8];
    snprintf(id, sizeof(id), "id%d", i);
    deliver(r, comment(id, "x", "hello"));
  }
  room_send_welcome(r, &a);
  room_tick(r, 0);
  json_t *w = take(&a);
  assert_string_equal(type_of(w), "welcome");
  json_t *hist = json_object_get(w, "history");
  assert_int_equal(json_array_size(hist), 3); /* the ring keeps the last three */
  assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 0), "id")), "id2");
  assert_false(json_is_true(json_object_get(json_object_get(w, "state"), "hold")));
  json_decref(w);
  json_t *batch = take(&a);
  assert_string_equal(type_of(batch), "batch");
  assert_int_equal(json_array_size(json_object_get(batch, "events")), 5);
  json_decref(batch);
  assert_null(take(&a));
  room_leave(&a);
  assert_int_equal(room_join(r, &c), 0); /* a's slot is free again */
  room_free(r);
}

/* A moderator's welcome lists the banned words, bounded, with the total;
 * a viewer's does not: it would tell them what to misspell. */
static void test_welcome_words(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct filter *f = filter_new(&loop);
  assert_non_null(f);
  for (int i = 0; i < ROOM_WELCOME_WORDS_MAX + 5; i++) {
    char w[16];
    snprintf(w, sizeof(w), "word%d", i);
    assert_int_equal(filter_add_word(f, w), 1);
  }
  struct room_params p = params();
  p.queue_hard_bytes = p.queue_soft_bytes = 1 << 20;
  struct room *r = room_new("gala", &p, &ops, NULL, f);
  struct room_member v, m;
  member(&v, "v", "10.0.0.1", ROOM_VIEWER);
  member(&m, "m", "10.0.0.2", ROOM_MODERATOR);
  assert_int_equal(room_join(r, &v), 0);
  assert_int_equal(room_join(r, &m), 0);
  room_send_welcome(r, &v);
  room_send_welcome(r, &m);
  json_t *w = take(&v);
  assert_string_equal(type_of(w), "welcome");
  assert_null(json_object_get(w, "banned_words"));
  assert_null(json_object_get(w, "banned_words_total"));
  json_decref(w);
  w = take(&m);
  assert_string_equal(type_of(w), "welcome");
  json_t *words = json_object_get(w, "banned_words");
  assert_int_equal(json_array_size(words), ROOM_WELCOME_WORDS_MAX);
  assert_string_equal(json_string_value(json_array_get(words, 0)), "word0");
  assert_int_equal(json_integer_value(json_object_get(w, "banned_words_total")), ROOM_WELCOME_WORDS_MAX + 5);
  json_decref(w);
  room_free(r);
  filter_stop(f, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_admission(void **state) {
  (void)state;
  struct room_params p = params();
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member a, mod;
  member(&a, "a", "10.0.0.1", ROOM_VIEWER);
  member(&mod, "m", "10.0.0.2", ROOM_MODERATOR);
  room_join(r, &a);
  room_join(r, &mod);
  char *d;
  int64_t retry;
  assert_int_equal(room_admit_comment(r, &a, "   ", &d, &retry, 1000, 1000), ROOM_EMPTY);
  assert_int_equal(room_admit_comment(r, &a, "12345678901", &d, &retry, 1000, 1000), ROOM_TOO_LONG);
  assert_int_equal(room_admit_comment(r, &a, "新年快乐新年快乐新年", &d, &retry, 1000, 1000), ROOM_OK);
  assert_string_equal(d, "新年快乐新年快乐新年"); /* 10 code points is fine */
  free(d);
  assert_int_equal(room_admit_comment(r, &a, "two", &d, &retry, 1000, 1000), ROOM_OK);
  free(d);
  assert_int_equal(room_admit_comment(r, &a, "three", &d, &retry, 1000, 1000), ROOM_RATE_LIMITED);
  assert_true(retry > 0 && retry <= 1000);
  assert_int_equal(room_admit_comment(r, &a, "later", &d, &retry, 2100, 2100), ROOM_OK);
  free(d);
  /* slow mode: moderators are exempt */
  json_t *st = chat_state_json(30, false, NULL);
  deliver(r, st);
  assert_int_equal(room_slow_seconds(r), 30);
  assert_int_equal(room_admit_comment(r, &a, "slow", &d, &retry, 5100, 5100), ROOM_SLOW_MODE);
  assert_true(retry > 25000 && retry <= 27000);
  assert_int_equal(room_admit_comment(r, &mod, "ok", &d, &retry, 5100, 5100), ROOM_OK);
  free(d);
  /* hold mode: viewers' comments are held, moderators' are not */
  deliver(r, chat_state_json(0, true, NULL));
  assert_int_equal(room_admit_comment(r, &a, "held", &d, &retry, 40000, 40000), ROOM_HELD);
  free(d);
  assert_int_equal(room_admit_comment(r, &mod, "mine", &d, &retry, 40000, 40000), ROOM_OK);
  free(d);
  deliver(r, chat_state_json(0, false, NULL));
  /* timeout, then ban (by user id and by address) */
  room_note_author(r, "a", "10.0.0.1");
  deliver(r, json_pack("{s:s, s:s, s:I}", "type", "timeout", "user", "a", "until", (json_int_t)100000));
  assert_int_equal(room_admit_comment(r, &a, "x", &d, &retry, 60000, 60000), ROOM_TIMED_OUT);
  assert_int_equal(retry, 40000);
  struct room_member same_addr;
  member(&same_addr, "other", "10.0.0.1", ROOM_VIEWER);
  room_join(r, &same_addr);
  assert_int_equal(room_admit_comment(r, &same_addr, "x", &d, &retry, 60000, 60000), ROOM_TIMED_OUT);
  assert_int_equal(room_admit_comment(r, &a, "x", &d, &retry, 100001, 100001), ROOM_OK);
  free(d);
  deliver(r, json_pack("{s:s, s:s}", "type", "ban", "user", "a"));
  assert_int_equal(room_admit_comment(r, &a, "x", &d, &retry, 200000, 200000), ROOM_BANNED);
  deliver(r, json_pack("{s:s, s:s}", "type", "unban", "user", "a"));
  assert_int_equal(room_admit_comment(r, &a, "x", &d, &retry, 300000, 300000), ROOM_OK);
  free(d);
  struct room_stats s;
  room_get_stats(r, &s);
  assert_int_equal(s.refused[ROOM_RATE_LIMITED], 1);
  assert_int_equal(s.refused[ROOM_BANNED], 1);
  room_free(r);
}

static void test_moderation_events(void **state) {
  (void)state;
  struct room_params p = params();
  p.history = 10;
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member v, mod;
  member(&v, "v", "1.1.1.1", ROOM_VIEWER);
  member(&mod, "m", "2.2.2.2", ROOM_MODERATOR);
  room_join(r, &v);
  room_join(r, &mod);
  deliver(r, comment("c1", "x", "one"));
  deliver(r, comment("c2", "y", "two"));
  deliver(r, comment("c3", "x", "three"));
  deliver(r, chat_state_json(0, false, room_find_comment(r, "c2")));
  assert_non_null(room_pinned(r));
  deliver(r, json_pack("{s:s, s:s}", "type", "delete", "id", "c2"));
  assert_null(room_find_comment(r, "c2"));
  assert_null(room_pinned(r)); /* deleting the pinned comment unpins it */
  deliver(r, json_pack("{s:s, s:o}", "type", "held", "comment", comment("h1", "z", "hmm")));
  assert_non_null(room_find_held(r, "h1"));
  deliver(r, json_pack("{s:s, s:s}", "type", "ban", "user", "x")); /* removes c1, c3 */
  assert_null(room_find_comment(r, "c1"));
  assert_null(room_find_comment(r, "c3"));
  room_tick(r, 0);
  json_t *bv = take(&v), *bm = take(&mod);
  json_t *ev = json_object_get(bv, "events"), *em = json_object_get(bm, "events");
  /* viewers: 3 comments, state(pin), delete, state(unpin), delete c1, delete c3 */
  assert_int_equal(json_array_size(ev), 8);
  /* moderators also see held and ban */
  assert_int_equal(json_array_size(em), 10);
  for (size_t i = 0; i < json_array_size(ev); i++) {
    const char *t = type_of(json_array_get(ev, i));
    assert_true(strcmp(t, "held") && strcmp(t, "ban"));
  }
  json_decref(bv);
  json_decref(bm);
  deliver(r, comment("c4", "y", "four"));
  deliver(r, chat_state_json(0, false, room_find_comment(r, "c4")));
  assert_non_null(room_pinned(r));
  room_tick(r, 0);
  json_decref(take(&v));
  json_decref(take(&mod));
  deliver(r, json_pack("{s:s}", "type", "clear"));
  assert_null(room_find_comment(r, "c4"));
  assert_null(room_pinned(r)); /* cleared with the rest */
  room_tick(r, 0);
  bv = take(&v);
  ev = json_object_get(bv, "events");
  assert_int_equal(json_array_size(ev), 2); /* clear, then state (unpinned) */
  assert_string_equal(type_of(json_array_get(ev, 0)), "clear");
  assert_string_equal(type_of(json_array_get(ev, 1)), "state");
  assert_true(json_is_null(json_object_get(json_array_get(ev, 1), "pinned")));
  json_decref(bv);
  deliver(r, json_pack("{s:s, s:s, s:s}", "type", "resolved", "id", "h1", "action", "reject"));
  assert_null(room_find_held(r, "h1"));
  json_t *junk = json_pack("{s:s}", "type", "nonsense");
  assert_int_equal(room_deliver(r, junk, 0), -EINVAL);
  json_decref(junk);
  room_free(r);
}

/* A member that never reads: its oldest batches go, it is told how many,
 * replies are kept, and past the hard bound it is closed; the others get
 * everything. */
static void test_slow_member(void **state) {
  (void)state;
  struct room_params p = params();
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member slow, fast;
  member(&slow, "s", "1.1.1.1", ROOM_VIEWER);
  member(&fast, "f", "2.2.2.2", ROOM_VIEWER);
  room_join(r, &slow);
  room_join(r, &fast);
  json_t *ack = chat_ack_json("n1", "x");
  room_send(&slow, ack);
  json_decref(ack);
  char text[400];
  memset(text, 'a', sizeof(text) - 1);
  text[sizeof(text) - 1] = '\0';
  kicks = 0;
  int ticks = 0;
  for (int i = 0; i < 30; i++) {
    char id[16];
    snprintf(id, sizeof(id), "id%02d", i);
    deliver(r, comment(id, "x", text));
    room_tick(r, 0);
    ticks++;
    json_t *b = take(&fast);
    assert_non_null(b);
    json_decref(b);
    assert_true(slow.queue_bytes <= p.queue_soft_bytes);
  }
  assert_int_equal(kicks, 0);
  /* the reply survived; then the drop notice; then the newest batches */
  json_t *j = take(&slow);
  assert_string_equal(type_of(j), "ack");
  json_decref(j);
  j = take(&slow);
  json_t *e0 = json_array_get(json_object_get(j, "events"), 0);
  assert_string_equal(type_of(e0), "dropped");
  assert_true(json_integer_value(json_object_get(e0, "batches")) > 10);
  json_decref(j);
  while ((j = take(&slow)))
    json_decref(j);
  /* never reading again: closed once dropped + queued bytes pass the hard bound */
  for (int i = 0; i < 60 && !kicks; i++) {
    deliver(r, comment("z", "x", text));
    room_tick(r, 0);
    json_decref(take(&fast));
  }
  assert_int_equal(kicks, 1);
  assert_int_equal(last_kick_code, 1008);
  struct room_stats s;
  room_get_stats(r, &s);
  assert_true(s.dropped_batches > 10);
  room_free(r);
}

/* A frame is built once with its websocket header before the payload
 * (RFC 6455 5.2: 7-bit, 16-bit and 64-bit lengths), so the transport can
 * send the same bytes to every member; without room for a header there is
 * none (lws frames the payload then). */
static void test_frame_header(void **state) {
  (void)state;
  static const struct {
    size_t text;
    size_t hdr;
  } cases[] = {{1, 2}, {300, 4}, {70000, 10}};
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    struct room_params p = params();
    p.queue_soft_bytes = p.queue_hard_bytes = 1 << 20;
    struct room *r = room_new("gala", &p, &ops, NULL, NULL);
    struct room_member a;
    member(&a, "a", "1.1.1.1", ROOM_VIEWER);
    room_join(r, &a);
    json_t *msg = json_pack("{s:s}", "type", "ack");
    char *text = calloc(1, cases[c].text + 1);
    memset(text, 'n', cases[c].text);
    json_object_set_new(msg, "nonce", json_string(text));
    free(text);
    room_send(&a, msg);
    json_decref(msg);
    struct room_frame *f = room_member_take(&a);
    size_t len = 0;
    const unsigned char *w = room_frame_wire(f, HEAD, &len);
    assert_non_null(w);
    assert_int_equal(len, f->len + cases[c].hdr);
    assert_int_equal(w + cases[c].hdr, room_frame_payload(f, HEAD));
    assert_int_equal(w[0], 0x81); /* FIN, text */
    size_t plen = w[1];           /* unmasked: the high bit clear */
    if (plen == 126) {
      plen = (size_t)w[2] << 8 | w[3];
    } else if (plen == 127) {
      plen = 0;
      for (int i = 0; i < 8; i++)
        plen = plen << 8 | w[2 + i];
    }
    assert_int_equal(plen, f->len);
    room_frame_unref(f);
    room_leave(&a);
    room_free(r);
  }
  struct room_params p = params();
  p.headroom = 4; /* too small for a 10-byte header: no wire form */
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member a;
  member(&a, "a", "1.1.1.1", ROOM_VIEWER);
  room_join(r, &a);
  json_t *msg = json_pack("{s:s}", "type", "ack");
  room_send(&a, msg);
  json_decref(msg);
  struct room_frame *f = room_member_take(&a);
  size_t len = 0;
  assert_non_null(room_frame_wire(f, 4, &len)); /* 2 bytes fit */
  room_frame_unref(f);
  room_leave(&a);
  room_free(r);
}

/* Peek shows what take would return, in order, without taking it; while a
 * dropped notice is due it shows nothing (take builds the notice first).
 * member_ticks counts the members a tick queued frames to. */
static void test_peek_and_member_ticks(void **state) {
  (void)state;
  struct room_params p = params();
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member a, b;
  member(&a, "a", "1.1.1.1", ROOM_VIEWER);
  member(&b, "b", "2.2.2.2", ROOM_VIEWER);
  room_join(r, &a);
  room_join(r, &b);
  assert_null(room_member_peek(&a, 0));
  deliver(r, comment("id1", "x", "one"));
  room_tick(r, 0);
  assert_false(room_member_reply_queued(&a)); /* a batch: the fan-out's turn */
  json_t *ack = chat_ack_json("n1", "x");
  room_send(&a, ack);
  json_decref(ack);
  assert_true(room_member_reply_queued(&a)); /* an ack: written at once */
  struct room_frame *f0 = room_member_peek(&a, 0), *f1 = room_member_peek(&a, 1);
  assert_non_null(f0);
  assert_non_null(f1);
  assert_null(room_member_peek(&a, 2));
  assert_false(f0->reply);
  assert_true(f1->reply);
  assert_ptr_equal(room_member_peek(&b, 0), f0); /* the same shared frame */
  struct room_stats s;
  room_get_stats(r, &s);
  assert_int_equal(s.member_ticks, 2);
  struct room_frame *t = room_member_take(&a);
  assert_ptr_equal(t, f0);
  room_frame_unref(t);
  assert_ptr_equal(room_member_peek(&a, 0), f1);
  room_tick(r, 0); /* nothing pending: no member tick */
  room_get_stats(r, &s);
  assert_int_equal(s.member_ticks, 2);
  /* b never reads: its batches overflow and a notice is due */
  char text[400];
  memset(text, 'a', sizeof(text) - 1);
  text[sizeof(text) - 1] = '\0';
  for (int i = 0; i < 20; i++) {
    deliver(r, comment("z", "x", text));
    room_tick(r, 0);
  }
  assert_true(room_member_has_frames(&b));
  assert_null(room_member_peek(&b, 0));
  t = room_member_take(&b);
  json_t *j = json_loadb((const char *)room_frame_payload(t, HEAD), t->len, 0, NULL);
  assert_string_equal(type_of(json_array_get(json_object_get(j, "events"), 0)), "dropped");
  json_decref(j);
  room_frame_unref(t);
  assert_non_null(room_member_peek(&b, 0));
  room_leave(&a);
  room_leave(&b);
  room_free(r);
}

/* Sampling: viewers get at most viewer_events_per_sec comments, the sender
 * sees their own, moderators see all. */
static void test_sampling(void **state) {
  (void)state;
  struct room_params p = params();
  p.viewer_events_per_sec = 5;
  p.queue_soft_bytes = 1 << 20;
  p.queue_hard_bytes = 1 << 21;
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member v, sender, mod;
  member(&v, "v", "1.1.1.1", ROOM_VIEWER);
  member(&sender, "s", "2.2.2.2", ROOM_VIEWER);
  member(&mod, "m", "3.3.3.3", ROOM_MODERATOR);
  room_join(r, &v);
  room_join(r, &sender);
  room_join(r, &mod);
  for (int i = 0; i < 20; i++) {
    char id[16];
    snprintf(id, sizeof(id), "id%02d", i);
    deliver(r, comment(id, i == 19 ? "s" : "x", "hi"));
  }
  room_tick(r, 0);
  json_t *bv = take(&v), *bm = take(&mod);
  assert_int_equal(json_array_size(json_object_get(bv, "events")), 5);
  assert_int_equal(json_array_size(json_object_get(bm, "events")), 20);
  json_decref(bv);
  json_decref(bm);
  json_t *s1 = take(&sender), *s2 = take(&sender);
  assert_int_equal(json_array_size(json_object_get(s1, "events")), 5);
  json_t *own = json_array_get(json_object_get(s2, "events"), 0);
  assert_string_equal(json_string_value(json_object_get(own, "id")), "id19");
  json_decref(s1);
  json_decref(s2);
  room_free(r);
}

/* The midnight storm: 300 senders in one tick, sampled down to 5 per second
 * for viewers; every sender still gets their own comment (it used to be
 * the first 64 senders only). */
static void test_sampling_many_senders(void **state) {
  (void)state;
  enum { N = 300 };
  struct room_params p = params();
  p.viewer_events_per_sec = 5;
  p.max_connections_per_addr = N;
  p.queue_soft_bytes = 1 << 20;
  p.queue_hard_bytes = 1 << 21;
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  static struct room_member senders[N];
  for (int i = 0; i < N; i++) {
    char user[16];
    snprintf(user, sizeof(user), "u%03d", i);
    member(&senders[i], user, "2.2.2.2", ROOM_VIEWER);
    room_join(r, &senders[i]);
  }
  for (int i = 0; i < N; i++) {
    char id[16], user[16];
    snprintf(id, sizeof(id), "id%03d", i);
    snprintf(user, sizeof(user), "u%03d", i);
    deliver(r, comment(id, user, "hi"));
  }
  room_tick(r, 0);
  for (int i = 0; i < N; i++) {
    char id[16];
    snprintf(id, sizeof(id), "id%03d", i);
    bool seen = false;
    for (json_t *b; (b = take(&senders[i]));) {
      json_t *ev;
      size_t k;
      json_array_foreach(json_object_get(b, "events"), k, ev) seen =
          seen || !strcmp(json_string_value(json_object_get(ev, "id")), id);
      json_decref(b);
    }
    assert_true(seen);
  }
  room_free(r);
}

/* Two welcomes with no change of the history between them share one
 * serialisation of it (built once); a new comment makes a new one. */
static void test_welcome_shares_history(void **state) {
  (void)state;
  struct room_params p = params();
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member a, b;
  member(&a, "a", "10.0.0.1", ROOM_VIEWER);
  member(&b, "b", "10.0.0.2", ROOM_VIEWER);
  assert_int_equal(room_join(r, &a), 0);
  assert_int_equal(room_join(r, &b), 0);
  deliver(r, comment("id1", "x", "one"));
  deliver(r, comment("id2", "x", "two"));
  size_t len1, len2;
  const char *h1 = room_history_json(r, ROOM_VIEWER, &len1);
  assert_non_null(h1);
  assert_int_equal(room_send_welcome(r, &a), 0);
  assert_int_equal(room_send_welcome(r, &b), 0);
  assert_int_equal(room_send_welcome(r, &a), 0);
  const char *h2 = room_history_json(r, ROOM_VIEWER, &len2);
  assert_ptr_equal(h1, h2); /* one buffer, shared */
  struct room_stats s;
  room_get_stats(r, &s);
  assert_int_equal(s.history_builds, 1);
  for (struct room_member *m = &a; m; m = m == &a ? &b : NULL) {
    json_t *w = take(m);
    assert_string_equal(type_of(w), "welcome");
    json_t *hist = json_object_get(w, "history");
    assert_int_equal(json_array_size(hist), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 1), "id")), "id2");
    assert_string_equal(json_string_value(json_object_get(json_object_get(w, "user"), "id")), m->user_id);
    json_decref(w);
  }
  deliver(r, comment("id3", "x", "three"));
  assert_int_equal(room_send_welcome(r, &b), 0);
  room_get_stats(r, &s);
  assert_int_equal(s.history_builds, 2);
  json_t *w = take(&b);
  assert_int_equal(json_array_size(json_object_get(w, "history")), 3);
  json_decref(w);
  /* a ban removes comments from the history: the next welcome has not them */
  deliver(r, json_pack("{s:s, s:s}", "type", "ban", "user", "x"));
  room_tick(r, 2000);
  while ((w = take(&b)))
    json_decref(w);
  assert_int_equal(room_send_welcome(r, &b), 0);
  w = take(&b);
  assert_string_equal(type_of(w), "welcome");
  assert_int_equal(json_array_size(json_object_get(w, "history")), 0);
  json_decref(w);
  room_free(r);
}

/* hello_burst hellos per connection, then rate_limited until the bucket
 * refills; the address has its own bucket across its connections. */
static void test_hello_rate_limit(void **state) {
  (void)state;
  struct room_params p = params();
  p.hello_addr_burst = 4;
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member a, b;
  member(&a, "a", "10.0.0.1", ROOM_VIEWER);
  member(&b, "b", "10.0.0.1", ROOM_VIEWER);
  assert_int_equal(room_join(r, &a), 0);
  assert_int_equal(room_join(r, &b), 0);
  int64_t retry;
  for (int i = 0; i < p.hello_burst; i++)
    assert_int_equal(room_admit_hello(r, &a, 1000, &retry), ROOM_OK);
  assert_int_equal(room_admit_hello(r, &a, 1000, &retry), ROOM_RATE_LIMITED); /* N+1-th */
  assert_true(retry > 0 && retry <= 1000);
  assert_int_equal(room_admit_hello(r, &a, 2000, &retry), ROOM_OK); /* refilled */
  /* the address holds 4 (one more each second): a took 3, then 1 after a
   * refill; b gets the last one, then the address says no */
  assert_int_equal(room_admit_hello(r, &b, 2000, &retry), ROOM_OK);
  assert_int_equal(room_admit_hello(r, &b, 2000, &retry), ROOM_RATE_LIMITED);
  assert_true(retry > 0);
  struct room_stats s;
  room_get_stats(r, &s);
  assert_int_equal(s.hello_refused, 2);
  room_leave(&a);
  room_leave(&b);
  room_free(r);
}

/* A stream of refused comments from fresh identities leaves the user
 * table as it was; an accepted comment makes one entry. */
static void test_refusals_make_no_entries(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct filter *f = filter_new(&loop);
  assert_non_null(f);
  assert_int_equal(filter_add_word(f, "spam"), 1);
  uv_run(&loop, UV_RUN_DEFAULT); /* the automaton is built off the loop */
  struct room_params p = params();
  p.max_connections_per_addr = 100000;
  p.addr_burst = 100000;
  struct room *r = room_new("gala", &p, &ops, NULL, f);
  static const char *const texts[] = {"   ", "12345678901", "spam"};
  struct room_member m;
  char *d;
  int64_t retry;
  for (int i = 0; i < 2000; i++) {
    char user[16];
    snprintf(user, sizeof(user), "fresh%d", i);
    member(&m, user, "10.9.0.1", ROOM_VIEWER);
    assert_int_equal(room_join(r, &m), 0);
    enum room_refusal why = room_admit_comment(r, &m, texts[i % 3], &d, &retry, 1000, 1000);
    assert_true(why == ROOM_EMPTY || why == ROOM_TOO_LONG || why == ROOM_FORBIDDEN || why == ROOM_BAD_REQUEST);
    room_leave(&m);
  }
  struct room_stats s;
  room_get_stats(r, &s);
  assert_int_equal(s.users, 0);
  assert_int_equal(s.addrs, 1);
  member(&m, "kept", "10.9.0.1", ROOM_VIEWER);
  assert_int_equal(room_join(r, &m), 0);
  assert_int_equal(room_admit_comment(r, &m, "hello", &d, &retry, 1000, 1000), ROOM_OK);
  free(d);
  room_get_stats(r, &s);
  assert_int_equal(s.users, 1);
  /* the user bucket still limits: burst 2, then rate_limited */
  assert_int_equal(room_admit_comment(r, &m, "again", &d, &retry, 1000, 1000), ROOM_OK);
  free(d);
  assert_int_equal(room_admit_comment(r, &m, "third", &d, &retry, 1000, 1000), ROOM_RATE_LIMITED);
  room_leave(&m);
  room_free(r);
  filter_stop(f, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Raw inflate (windowBits -15), as a browser's DecompressionStream('deflate-raw'). */
static char *inflate_raw(const unsigned char *in, size_t n, size_t *out_len) {
  static char out[65536];
  z_stream z = {0};
  assert_int_equal(inflateInit2(&z, -15), Z_OK);
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = (Bytef *)out;
  z.avail_out = sizeof(out);
  assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
  *out_len = sizeof(out) - z.avail_out;
  inflateEnd(&z);
  return out;
}

/* Members that asked for compressed batches get one binary frame per form
 * and tick, the same frame for all of them, which inflates to exactly the
 * text frame the others get; replies stay text. */
static void test_compressed_batches(void **state) {
  (void)state;
  struct room_params p = params();
  p.queue_hard_bytes = p.queue_soft_bytes = 1 << 20;
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member z1, z2, t, zm, tm;
  member(&z1, "z1", "10.0.0.1", ROOM_VIEWER);
  member(&z2, "z2", "10.0.0.1", ROOM_VIEWER);
  member(&t, "t", "10.0.0.2", ROOM_VIEWER);
  member(&zm, "zm", "10.0.0.3", ROOM_MODERATOR);
  member(&tm, "tm", "10.0.0.3", ROOM_MODERATOR);
  z1.deflate = z2.deflate = zm.deflate = true;
  struct room_member *all[] = {&z1, &z2, &t, &zm, &tm};
  for (int i = 0; i < 5; i++)
    assert_int_equal(room_join(r, all[i]), 0);
  json_t *ack = json_pack("{s:s}", "type", "ack");
  assert_int_equal(room_send(&z1, ack), 0); /* a reply */
  json_decref(ack);
  for (int i = 0; i < 8; i++) {
    char id[8];
    snprintf(id, sizeof(id), "id%d", i);
    deliver(r, comment(id, "x", "新年快乐"));
  }
  room_tick(r, 0);
  struct room_frame *reply = room_member_take(&z1);
  assert_false(reply->binary);
  room_frame_unref(reply);
  struct room_frame *f1 = room_member_take(&z1), *f2 = room_member_take(&z2);
  struct room_frame *ft = room_member_take(&t), *fzm = room_member_take(&zm);
  struct room_frame *ftm = room_member_take(&tm);
  assert_ptr_equal(f1, f2); /* deflated once, shared */
  assert_true(f1->binary);
  assert_false(ft->binary);
  assert_true(fzm->binary);
  assert_ptr_not_equal(fzm, f1); /* moderators' form differs */
  assert_true(f1->len < ft->len);
  size_t n;
  char *text = inflate_raw(room_frame_payload(f1, HEAD), f1->len, &n);
  assert_int_equal(n, ft->len);
  assert_memory_equal(text, room_frame_payload(ft, HEAD), n);
  text = inflate_raw(room_frame_payload(fzm, HEAD), fzm->len, &n);
  assert_int_equal(n, ftm->len);
  assert_memory_equal(text, room_frame_payload(ftm, HEAD), n);
  struct room_stats st;
  room_get_stats(r, &st);
  assert_int_equal(st.deflated_frames, 2); /* viewers' and moderators', not per member */
  assert_int_equal(st.delivered_deflate_bytes, 2 * f1->len + fzm->len);
  assert_int_equal(st.delivered_text_bytes, ft->len + ftm->len);
  struct room_frame *fs[] = {f1, f2, ft, fzm, ftm};
  for (int i = 0; i < 5; i++)
    room_frame_unref(fs[i]);
  room_free(r);
}

/* Viewers get comments without the user's id and role (unless a
 * moderator's), in batches, the history and the pinned comment;
 * moderators get the full form. */
static void test_viewers_get_lean_comments(void **state) {
  (void)state;
  struct room_params p = params();
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member v, m;
  member(&v, "v", "10.0.0.1", ROOM_VIEWER);
  member(&m, "m", "10.0.0.2", ROOM_MODERATOR);
  assert_int_equal(room_join(r, &v), 0);
  assert_int_equal(room_join(r, &m), 0);
  json_t *c = comment("id1", "x", "hello");
  deliver(r, json_incref(c));
  deliver(r, chat_state_json(0, false, c));
  json_decref(c);
  room_tick(r, 0);
  room_send_welcome(r, &v);
  room_send_welcome(r, &m);
  for (int k = 0; k < 2; k++) {
    struct room_member *who = k ? &m : &v;
    json_t *b = take(who), *w = take(who);
    json_t *evs = json_object_get(b, "events");
    const json_t *users[] = {
        json_object_get(json_array_get(evs, 0), "user"),
        json_object_get(json_object_get(json_array_get(evs, 1), "pinned"), "user"),
        json_object_get(json_array_get(json_object_get(w, "history"), 0), "user"),
        json_object_get(json_object_get(json_object_get(w, "state"), "pinned"), "user"),
    };
    for (int i = 0; i < 4; i++) {
      assert_string_equal(json_string_value(json_object_get(users[i], "name")), "x");
      assert_int_equal(json_object_get(users[i], "id") != NULL, who == &m);
      assert_int_equal(json_object_get(users[i], "role") != NULL, who == &m);
    }
    json_decref(b);
    json_decref(w);
  }
  room_free(r);
}

/* A member that asked for compressed batches is told of dropped batches
 * in a compressed batch too. */
static void test_dropped_notice_compressed(void **state) {
  (void)state;
  struct room_params p = params();
  p.queue_soft_bytes = 1; /* every new batch drops the one before */
  p.queue_hard_bytes = 1 << 20;
  struct room *r = room_new("gala", &p, &ops, NULL, NULL);
  struct room_member z;
  member(&z, "z", "10.0.0.1", ROOM_VIEWER);
  z.deflate = true;
  assert_int_equal(room_join(r, &z), 0);
  for (int i = 0; i < 3; i++) {
    char id[8];
    snprintf(id, sizeof(id), "id%d", i);
    deliver(r, comment(id, "x", "hello"));
    room_tick(r, 0);
  }
  struct room_frame *f = room_member_take(&z);
  assert_true(f->binary);
  size_t n;
  char *text = inflate_raw(room_frame_payload(f, HEAD), f->len, &n);
  assert_non_null(memmem(text, n, "\"dropped\"", 9));
  room_frame_unref(f);
  room_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_join_and_welcome),
      cmocka_unit_test(test_welcome_words),
      cmocka_unit_test(test_admission),
      cmocka_unit_test(test_moderation_events),
      cmocka_unit_test(test_slow_member),
      cmocka_unit_test(test_sampling),
      cmocka_unit_test(test_sampling_many_senders),
      cmocka_unit_test(test_welcome_shares_history),
      cmocka_unit_test(test_hello_rate_limit),
      cmocka_unit_test(test_refusals_make_no_entries),
      cmocka_unit_test(test_compressed_batches),
      cmocka_unit_test(test_viewers_get_lean_comments),
      cmocka_unit_test(test_dropped_notice_compressed),
      cmocka_unit_test(test_frame_header),
      cmocka_unit_test(test_peek_and_member_ticks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
