/* Unit tests for chat/fanout: the ready list that paces the fan-out
 * (a budget per call, oldest first, each member once), and the raw write
 * of shared frames to a socket: a member's queued frames go out with one
 * system call; over a socket with a tiny send buffer a frame written in
 * pieces arrives whole and in order, resumed from the shared buffer at its
 * offset; another writer (lws in the daemon) that writes only when
 * fanout_write left the stream at a frame boundary never splits a frame;
 * and the queue's drop policy never drops the frame that is partly sent. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "chat/fanout.h"
#include "chat/room.h"

#define HEAD 16

static void no_wake(void *o, struct room_member *m) { (void)o, (void)m; }
static int kicks;
static void count_kick(void *o, struct room_member *m, int code, const char *why) {
  (void)o, (void)m, (void)code, (void)why;
  kicks++;
}
static const struct room_ops ops = {no_wake, count_kick, NULL};

static struct room_params params(size_t soft, size_t hard) {
  struct room_params p = {.history = 3,
                          .max_comment_length = 100000,
                          .max_combining = 2,
                          .user_rate = 1,
                          .user_burst = 2,
                          .addr_rate = 100,
                          .addr_burst = 100,
                          .max_connections_per_addr = 2,
                          .queue_soft_bytes = soft,
                          .queue_hard_bytes = hard,
                          .viewer_events_per_sec = 0,
                          .headroom = HEAD,
                          .hello_rate = 1,
                          .hello_burst = 3,
                          .hello_addr_rate = 1,
                          .hello_addr_burst = 5};
  return p;
}

static void join(struct room *r, struct room_member *m, const char *user) {
  memset(m, 0, sizeof(*m));
  snprintf(m->user_id, sizeof(m->user_id), "%s", user);
  snprintf(m->addr, sizeof(m->addr), "10.0.0.1");
  m->named = true;
  assert_int_equal(room_join(r, m), 0);
}

/* One tick's batch carrying a comment whose text is `len` times `c`, with
 * a sequence number the reader checks the order by. */
static void tick_batch(struct room *r, int seq, size_t len, char c) {
  char *text = malloc(len + 1);
  assert_non_null(text);
  memset(text, c, len);
  text[len] = '\0';
  char id[16];
  snprintf(id, sizeof(id), "id%06d", seq);
  json_t *ev = chat_comment_event(id, chat_user_json("u", "u", "viewer"), text, seq);
  assert_int_equal(room_deliver(r, ev, 1), 0);
  json_decref(ev);
  free(text);
  room_tick(r, 1);
}

static void reply(struct room_member *m, int seq) {
  json_t *ack = json_pack("{s:s, s:i}", "type", "ack", "seq", seq);
  assert_int_equal(room_send(m, ack), 0);
  json_decref(ack);
}

/* ---- A websocket reader for the other end of the socket */

struct reader {
  int fd;
  unsigned char *buf;
  size_t len, cap;
};

static void reader_fill(struct reader *rd) {
  for (;;) {
    if (rd->len == rd->cap) {
      rd->cap = rd->cap ? rd->cap * 2 : 65536;
      rd->buf = realloc(rd->buf, rd->cap);
      assert_non_null(rd->buf);
    }
    ssize_t n = read(rd->fd, rd->buf + rd->len, rd->cap - rd->len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    assert_true(n > 0);
    rd->len += (size_t)n;
  }
}

/* The next whole frame's payload as JSON, or NULL when what was read ends
 * inside a frame. Every frame must be a final, unmasked text frame. */
static json_t *reader_next(struct reader *rd) {
  if (rd->len < 2)
    return NULL;
  assert_int_equal(rd->buf[0], 0x81);
  assert_int_equal(rd->buf[1] & 0x80, 0);
  size_t hl = 2, plen = rd->buf[1] & 0x7f;
  if (plen == 126) {
    if (rd->len < 4)
      return NULL;
    plen = (size_t)rd->buf[2] << 8 | rd->buf[3];
    hl = 4;
  } else if (plen == 127) {
    if (rd->len < 10)
      return NULL;
    plen = 0;
    for (int i = 0; i < 8; i++)
      plen = plen << 8 | rd->buf[2 + i];
    hl = 10;
  }
  if (rd->len < hl + plen)
    return NULL;
  json_error_t err;
  json_t *j = json_loadb((const char *)rd->buf + hl, plen, 0, &err);
  assert_non_null(j);
  memmove(rd->buf, rd->buf + hl + plen, rd->len - hl - plen);
  rd->len -= hl + plen;
  return j;
}

static const char *type_of(const json_t *j) { return json_string_value(json_object_get(j, "type")); }

/* The sequence a frame carries: a batch's first comment's ts, or an ack's
 * seq; -1 for a frame of the second writer ("other"). */
static int seq_of(const json_t *j) {
  if (!strcmp(type_of(j), "other"))
    return -1;
  if (!strcmp(type_of(j), "ack"))
    return (int)json_integer_value(json_object_get(j, "seq"));
  json_t *ev = json_array_get(json_object_get(j, "events"), 0);
  return (int)json_integer_value(json_object_get(ev, "ts"));
}

static void socket_pair(int sv[2], int sndbuf) {
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  if (sndbuf)
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
  assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
  assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
}

/* ---- The ready list */

struct visit {
  struct fanout_link link;
  int id;
};

static int visited[2000], nvisited;

static void record(void *opaque, struct fanout_link *l) {
  (void)opaque;
  visited[nvisited++] = ((struct visit *)l)->id;
}

/* A budget per call, oldest first; the rest waits for the next call. */
static void test_ready_slices(void **state) {
  (void)state;
  static struct visit v[1000];
  struct fanout_ready q;
  fanout_ready_init(&q);
  for (int i = 0; i < 1000; i++) {
    memset(&v[i], 0, sizeof(v[i]));
    v[i].id = i;
    fanout_ready_add(&q, &v[i].link);
  }
  fanout_ready_add(&q, &v[0].link); /* already waiting: keeps its place, once */
  assert_int_equal(q.count, 1000);
  nvisited = 0;
  assert_int_equal(fanout_ready_run(&q, 256, record, NULL), 744);
  assert_int_equal(nvisited, 256);
  fanout_ready_add(&q, &v[3].link);      /* written, queued again: to the back */
  fanout_ready_remove(&q, &v[300].link); /* left */
  fanout_ready_remove(&q, &v[300].link); /* twice is harmless */
  size_t left = 744;
  while ((left = fanout_ready_run(&q, 256, record, NULL)) > 0)
    ;
  assert_int_equal(nvisited, 1000); /* 1000 - the one that left + 3 again */
  for (int i = 0; i < 256; i++)
    assert_int_equal(visited[i], i);
  assert_int_equal(visited[256], 256);
  assert_int_equal(visited[256 + 43], 299);
  assert_int_equal(visited[256 + 44], 301); /* 300 left */
  assert_int_equal(visited[999], 3);
  assert_int_equal(q.count, 0);
}

/* ---- The write */

/* One room with one member, a socket pair (sndbuf 0: the default) whose
 * far end a reader reads, and the writer's state. */
struct fix {
  struct room *r;
  struct room_member m;
  int sv[2];
  struct reader rd;
  struct fanout_tx tx;
  struct fanout_stats st;
};

static void fix_open(struct fix *f, size_t soft, size_t hard, int sndbuf) {
  memset(f, 0, sizeof(*f));
  struct room_params p = params(soft, hard);
  f->r = room_new("gala", &p, &ops, NULL, NULL);
  assert_non_null(f->r);
  join(f->r, &f->m, "a");
  socket_pair(f->sv, sndbuf);
  f->rd.fd = f->sv[1];
}

static enum fanout_result fix_write(struct fix *f) {
  enum fanout_result res = fanout_write(f->sv[0], &f->m, HEAD, &f->tx, &f->st);
  assert_int_not_equal(res, FANOUT_ERROR);
  return res;
}

static void fix_close(struct fix *f) {
  fanout_tx_clear(&f->tx);
  free(f->rd.buf);
  close(f->sv[0]);
  if (f->sv[1] >= 0)
    close(f->sv[1]);
  room_leave(&f->m);
  room_free(f->r);
}

/* An ack and two batches queued: one sendmsg writes all three, whole,
 * with the shared frames' own headers, and the queue is empty. */
static void test_write_gathers_queue(void **state) {
  (void)state;
  struct fix f;
  fix_open(&f, 1 << 20, 1 << 22, 0);
  tick_batch(f.r, 1, 10, 'x');
  reply(&f.m, 2);
  tick_batch(f.r, 3, 300, 'y'); /* a 16-bit extended length */
  assert_int_equal(fix_write(&f), FANOUT_DONE);
  assert_int_equal(f.st.sends, 1);
  assert_int_equal(f.st.frames, 3);
  assert_null(f.tx.frame);
  assert_false(room_member_has_frames(&f.m));
  reader_fill(&f.rd);
  assert_int_equal(f.rd.len, f.st.bytes);
  for (int want = 1; want <= 3; want++) {
    json_t *j = reader_next(&f.rd);
    assert_non_null(j);
    assert_int_equal(seq_of(j), want);
    json_decref(j);
  }
  assert_int_equal(f.rd.len, 0);
  assert_int_equal(fix_write(&f), FANOUT_DONE); /* nothing queued: no call */
  assert_int_equal(f.st.sends, 1);
  fix_close(&f);
}

/* Read what arrived; queue frames must come in sequence, whole. */
static void drain(struct reader *rd, int *got, int *others) {
  reader_fill(rd);
  for (json_t *j; (j = reader_next(rd)); json_decref(j)) {
    int s = seq_of(j);
    if (s < 0)
      ++*others;
    else
      assert_int_equal(s, ++*got);
  }
}

/* A tiny send buffer: big frames go out in pieces, each resumed from the
 * shared buffer at its offset. Between writes, a second writer (what lws
 * is in the daemon) writes its own small frame only when fanout_write left
 * nothing in flight. The reader gets every frame whole, in order. */
static void test_partial_resume(void **state) {
  (void)state;
  struct fix f;
  fix_open(&f, 1 << 22, 1 << 23, 4096);
  int seq = 0, got = 0, partial = 0, others = 0, others_got = 0;
  for (int round = 0; round < 40; round++) {
    tick_batch(f.r, ++seq, 20000 + (size_t)round * 97, (char)('a' + round % 26));
    if (round % 3 == 0)
      reply(&f.m, ++seq);
    fix_write(&f);
    if (f.tx.frame)
      partial++;
    for (int i = 0; i < 1000 && f.tx.frame && round % 4 == 0; i++) { /* to a frame boundary */
      drain(&f.rd, &got, &others_got);
      fix_write(&f);
    }
    if (!f.tx.frame && round % 4 == 0) { /* at a frame boundary: the other writer may write */
      static const char other[] = "\x81\x10{\"type\":\"other\"}";
      /* lws would buffer what the kernel refuses; here the reader drains
       * until the small frame goes out whole */
      while (write(f.sv[0], other, sizeof(other) - 1) < 0) {
        assert_int_equal(errno, EAGAIN);
        drain(&f.rd, &got, &others_got);
      }
      others++;
    }
    drain(&f.rd, &got, &others_got); /* the peer reads what has arrived */
  }
  for (int i = 0; i < 10000 && (f.tx.frame || room_member_has_frames(&f.m)); i++) {
    fix_write(&f);
    drain(&f.rd, &got, &others_got);
  }
  drain(&f.rd, &got, &others_got);
  assert_int_equal(others_got, others);
  assert_int_equal(got, seq); /* every frame, whole, in order */
  assert_int_equal(f.rd.len, 0);
  assert_true(partial > 0); /* the test did split frames */
  assert_true(others > 0);
  fix_close(&f);
}

/* While a frame is partly sent, the queue behind it overflows its soft
 * bound: the oldest queued batches are dropped, the partly sent one is not
 * (it is no longer in the queue). The reader gets it whole, then the
 * dropped notice, then the newest batch. */
static void test_partial_frame_never_dropped(void **state) {
  (void)state;
  struct fix f;
  fix_open(&f, 60000, 1 << 22, 4096);
  tick_batch(f.r, 1, 30000, 'a');
  assert_int_equal(fix_write(&f), FANOUT_FULL);
  assert_non_null(f.tx.frame);
  assert_true(f.tx.off > 0);
  for (int seq = 2; seq <= 6; seq++) /* 5 × 30 KB behind a 60 KB soft bound */
    tick_batch(f.r, seq, 30000, 'b');
  struct room_stats rs;
  room_get_stats(f.r, &rs);
  assert_int_equal(rs.dropped_batches, 4);
  assert_int_equal(kicks, 0);
  int order[8], n = 0;
  for (int i = 0; i < 10000 && n < 3; i++) {
    fix_write(&f);
    reader_fill(&f.rd);
    for (json_t *j; (j = reader_next(&f.rd)); json_decref(j)) {
      json_t *ev = json_array_get(json_object_get(j, "events"), 0);
      assert_true(n < 8);
      order[n++] =
          !strcmp(type_of(ev), "dropped") ? -(int)json_integer_value(json_object_get(ev, "batches")) : seq_of(j);
    }
  }
  assert_int_equal(n, 3);
  assert_int_equal(order[0], 1);  /* the partly sent frame, whole */
  assert_int_equal(order[1], -4); /* four batches dropped */
  assert_int_equal(order[2], 6);  /* the newest */
  fix_close(&f);
}

/* A peer that is gone: the write says so (the transport closes the member). */
static void test_write_error(void **state) {
  (void)state;
  struct fix f;
  fix_open(&f, 1 << 20, 1 << 22, 0);
  close(f.sv[1]);
  f.sv[1] = -1;
  tick_batch(f.r, 1, 10, 'x');
  assert_int_equal(fanout_write(f.sv[0], &f.m, HEAD, &f.tx, &f.st), FANOUT_ERROR); /* no SIGPIPE */
  fix_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ready_slices),   cmocka_unit_test(test_write_gathers_queue),
      cmocka_unit_test(test_partial_resume), cmocka_unit_test(test_partial_frame_never_dropped),
      cmocka_unit_test(test_write_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
