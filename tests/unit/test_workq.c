/* Unit tests for core/workq: the bound under each drop policy (what is
 * refused stays the caller's, what is dropped goes through on_drop), the
 * wake-up of the loop from another thread, the batch hook, purge, and
 * shutdown (pushes refused, leftovers released, the callback once the
 * handle is closed). Items carry a heap pointer, so that ASan/LSan see
 * every ownership mistake as a leak or a double free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <uv.h>

#include "core/workq.h"

struct item {
  int *value; /* owned by whoever holds the item */
  int producer;
};

struct seen {
  int got[64], ngot;
  int dropped[64], ndropped;
  int batches;
};

static void on_item(void *it, void *opaque) {
  struct seen *s = opaque;
  struct item *item = it;
  s->got[s->ngot++] = *item->value;
  free(item->value);
}

static void on_drop(void *it, void *opaque) {
  struct seen *s = opaque;
  struct item *item = it;
  s->dropped[s->ndropped++] = *item->value;
  free(item->value);
}

static void on_batch(void *opaque) { ((struct seen *)opaque)->batches++; }

static struct item make(int v, int producer) {
  struct item it = {.value = malloc(sizeof(int)), .producer = producer};
  *it.value = v;
  return it;
}

static int stopped_calls;
static void on_stopped(void *arg) { (*(int *)arg)++; }

static struct workq *new_q(uv_loop_t *loop, int bound, enum workq_policy policy, struct seen *s) {
  struct workq_ops ops = {.on_item = on_item, .on_drop = on_drop, .on_batch = on_batch, .opaque = s};
  struct workq *q = NULL;
  assert_int_equal(workq_new(loop, sizeof(struct item), bound, policy, &ops, &q), 0);
  assert_non_null(q);
  return q;
}

static void close_q(uv_loop_t *loop, struct workq *q) {
  stopped_calls = 0;
  workq_stop(q, on_stopped, &stopped_calls);
  assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(stopped_calls, 1);
  assert_int_equal(uv_loop_close(loop), 0);
}

static void test_bad_arguments(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct seen s = {0};
  struct workq_ops ops = {.on_item = on_item, .opaque = &s};
  struct workq *q = (struct workq *)&s;
  assert_int_equal(workq_new(&loop, sizeof(struct item), 0, WORKQ_REFUSE_NEW, &ops, &q), -EINVAL);
  assert_null(q);
  assert_int_equal(workq_new(&loop, 0, 4, WORKQ_REFUSE_NEW, &ops, &q), -EINVAL);
  struct workq_ops none = {0};
  assert_int_equal(workq_new(&loop, sizeof(struct item), 4, WORKQ_REFUSE_NEW, &none, &q), -EINVAL);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Full under WORKQ_REFUSE_NEW: -EAGAIN, the item is not taken, the queued
 * ones are delivered oldest first, and the refusal is counted. */
static void test_refuse_new_at_the_bound(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct seen s = {0};
  struct workq *q = new_q(&loop, 3, WORKQ_REFUSE_NEW, &s);
  for (int i = 0; i < 3; i++) {
    struct item it = make(i, 0);
    assert_int_equal(workq_push(q, &it), 0);
  }
  assert_int_equal(workq_depth(q), 3);
  struct item extra = make(99, 0);
  assert_int_equal(workq_push(q, &extra), -EAGAIN);
  assert_int_equal(*extra.value, 99); /* still ours */
  free(extra.value);
  assert_int_equal(workq_dropped(q), 1);
  assert_int_equal(s.ndropped, 0);
  assert_int_equal(workq_drain(q), 3);
  assert_int_equal(s.ngot, 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(s.got[i], i);
  assert_int_equal(s.batches, 1);
  assert_int_equal(workq_depth(q), 0);
  assert_int_equal(workq_drain(q), 0);
  assert_int_equal(s.batches, 1); /* no hook for an empty drain */
  close_q(&loop, q);
}

/* Full under WORKQ_DROP_OLDEST: the push succeeds, the oldest goes through
 * on_drop, the order of the rest is kept. */
static void test_drop_oldest_at_the_bound(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct seen s = {0};
  struct workq *q = new_q(&loop, 3, WORKQ_DROP_OLDEST, &s);
  for (int i = 0; i < 5; i++) {
    struct item it = make(i, 0);
    assert_int_equal(workq_push(q, &it), 0);
  }
  assert_int_equal(workq_depth(q), 3);
  assert_int_equal(workq_dropped(q), 2);
  assert_int_equal(s.ndropped, 2);
  assert_int_equal(s.dropped[0], 0);
  assert_int_equal(s.dropped[1], 1);
  workq_drain(q);
  assert_int_equal(s.ngot, 3);
  assert_int_equal(s.got[0], 2);
  assert_int_equal(s.got[2], 4);
  close_q(&loop, q);
}

struct producer_arg {
  struct workq *q;
  int first, count, refused;
};

static void producer(void *arg) {
  struct producer_arg *a = arg;
  for (int i = 0; i < a->count; i++) {
    struct item it = make(a->first + i, a->first);
    if (workq_push(a->q, &it) != 0) {
      free(it.value);
      a->refused++;
    }
  }
}

static void stop_when_all(uv_idle_t *h) {
  struct seen *s = h->data;
  if (s->ngot >= 40)
    uv_idle_stop(h);
}

/* Pushes from two other threads wake the loop: uv_run delivers all of
 * them through the async handle, each producer's items in its order. */
static void test_wakes_the_loop_from_threads(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct seen s = {0};
  struct workq *q = new_q(&loop, 64, WORKQ_REFUSE_NEW, &s);
  struct producer_arg a = {.q = q, .first = 0, .count = 20}, b = {.q = q, .first = 100, .count = 20};
  uv_thread_t ta, tb;
  assert_int_equal(uv_thread_create(&ta, producer, &a), 0);
  assert_int_equal(uv_thread_create(&tb, producer, &b), 0);
  uv_thread_join(&ta);
  uv_thread_join(&tb);
  assert_int_equal(a.refused + b.refused, 0);
  assert_int_equal(s.ngot, 0); /* nothing is delivered before the loop runs */
  uv_idle_t idle;
  uv_idle_init(&loop, &idle);
  idle.data = &s;
  uv_idle_start(&idle, stop_when_all);
  uv_run(&loop, UV_RUN_NOWAIT); /* the async fires */
  while (s.ngot < 40 && uv_run(&loop, UV_RUN_ONCE))
    ;
  assert_int_equal(s.ngot, 40);
  int last_a = -1, last_b = 99;
  for (int i = 0; i < s.ngot; i++) {
    if (s.got[i] < 100) {
      assert_true(s.got[i] > last_a);
      last_a = s.got[i];
    } else {
      assert_true(s.got[i] > last_b);
      last_b = s.got[i];
    }
  }
  uv_close((uv_handle_t *)&idle, NULL);
  close_q(&loop, q);
}

static bool of_producer(const void *item, void *arg) { return ((const struct item *)item)->producer == *(int *)arg; }

/* purge releases one producer's items and keeps the others in order. */
static void test_purge_one_producer(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct seen s = {0};
  struct workq *q = new_q(&loop, 8, WORKQ_REFUSE_NEW, &s);
  for (int i = 0; i < 6; i++) {
    struct item it = make(i, i % 2);
    assert_int_equal(workq_push(q, &it), 0);
  }
  int gone = 1;
  assert_int_equal(workq_purge(q, of_producer, &gone), 3);
  assert_int_equal(s.ndropped, 3);
  assert_int_equal(workq_depth(q), 3);
  workq_drain(q);
  assert_int_equal(s.ngot, 3);
  assert_int_equal(s.got[0], 0);
  assert_int_equal(s.got[1], 2);
  assert_int_equal(s.got[2], 4);
  close_q(&loop, q);
}

/* stop: what is queued is released (not delivered), a later push is
 * refused with -EPIPE and stays the caller's, cb runs once after close. */
static void test_stop_releases_and_refuses(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct seen s = {0};
  struct workq *q = new_q(&loop, 4, WORKQ_REFUSE_NEW, &s);
  for (int i = 0; i < 2; i++) {
    struct item it = make(i, 0);
    assert_int_equal(workq_push(q, &it), 0);
  }
  stopped_calls = 0;
  workq_stop(q, on_stopped, &stopped_calls);
  assert_int_equal(s.ndropped, 2);
  struct item late = make(7, 0);
  assert_int_equal(workq_push(q, &late), -EPIPE); /* still allocated until the close callback */
  free(late.value);
  assert_int_equal(stopped_calls, 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(stopped_calls, 1);
  assert_int_equal(s.ngot, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_refuse_new_at_the_bound),
      cmocka_unit_test(test_drop_oldest_at_the_bound),
      cmocka_unit_test(test_wakes_the_loop_from_threads),
      cmocka_unit_test(test_purge_one_producer),
      cmocka_unit_test(test_stop_releases_and_refuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
