/* workq: a bounded ring under a uv_mutex plus a uv_async (see workq.h).
 *
 * The async handle is the first member so that its close callback finds
 * the queue. Items are copied into and out of the ring; on_item and
 * on_drop always run outside the lock, so they may push again (into this
 * queue or another) without deadlocking. */
#include "core/workq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct workq {
  uv_async_t async; /* first: the close callback casts back */
  uv_mutex_t mu;    /* guards everything below */
  unsigned char *ring;
  size_t item_size;
  int bound, head, count;
  enum workq_policy policy;
  bool stopped;
  uint64_t dropped;
  struct workq_ops ops;
  void (*stop_cb)(void *arg);
  void *stop_arg;
};

static void *slot(struct workq *q, int i) { return q->ring + (size_t)((q->head + i) % q->bound) * q->item_size; }

static void on_async(uv_async_t *h) { workq_drain((struct workq *)h); }

int workq_new(uv_loop_t *loop, size_t item_size, int bound, enum workq_policy policy, const struct workq_ops *ops,
              struct workq **out) {
  *out = NULL;
  if (!loop || item_size == 0 || bound < 1 || !ops || !ops->on_item ||
      (policy != WORKQ_REFUSE_NEW && policy != WORKQ_DROP_OLDEST))
    return -EINVAL;
  struct workq *q = calloc(1, sizeof *q);
  if (!q)
    return -ENOMEM;
  q->ring = calloc((size_t)bound, item_size);
  if (!q->ring) {
    free(q);
    return -ENOMEM;
  }
  q->item_size = item_size;
  q->bound = bound;
  q->policy = policy;
  q->ops = *ops;
  int e = uv_mutex_init(&q->mu);
  if (e == 0) {
    e = uv_async_init(loop, &q->async, on_async);
    if (e != 0)
      uv_mutex_destroy(&q->mu);
  }
  if (e != 0) {
    free(q->ring);
    free(q);
    return e;
  }
  *out = q;
  return 0;
}

int workq_push(struct workq *q, const void *item) {
  /* the oldest item, when the policy drops it: released outside the lock */
  unsigned char stack_old[256];
  unsigned char *old = q->item_size <= sizeof stack_old ? stack_old : NULL;
  bool have_old = false;
  uv_mutex_lock(&q->mu);
  if (q->stopped) {
    uv_mutex_unlock(&q->mu);
    return -EPIPE;
  }
  if (q->count == q->bound) {
    q->dropped++;
    if (q->policy == WORKQ_REFUSE_NEW) {
      uv_mutex_unlock(&q->mu);
      return -EAGAIN;
    }
    if (!old)
      old = malloc(q->item_size);
    if (old) {
      memcpy(old, slot(q, 0), q->item_size);
      have_old = true;
    } /* else: out of memory for the copy; the oldest item's references leak
       * rather than be released under the lock (cannot happen below 256 B) */
    q->head = (q->head + 1) % q->bound;
    q->count--;
  }
  memcpy(slot(q, q->count), item, q->item_size);
  q->count++;
  uv_mutex_unlock(&q->mu);
  uv_async_send(&q->async);
  if (have_old && q->ops.on_drop)
    q->ops.on_drop(old, q->ops.opaque);
  if (old && old != stack_old)
    free(old);
  return 0;
}

/* Take the oldest item into out: false when empty. */
static bool pop(struct workq *q, void *out) {
  uv_mutex_lock(&q->mu);
  bool have = q->count > 0;
  if (have) {
    memcpy(out, slot(q, 0), q->item_size);
    q->head = (q->head + 1) % q->bound;
    q->count--;
  }
  uv_mutex_unlock(&q->mu);
  return have;
}

int workq_drain(struct workq *q) {
  unsigned char stack_item[256];
  unsigned char *item = q->item_size <= sizeof stack_item ? stack_item : malloc(q->item_size);
  if (!item)
    return 0; /* the next wake-up tries again */
  int n = 0;
  while (pop(q, item)) {
    q->ops.on_item(item, q->ops.opaque);
    n++;
  }
  if (item != stack_item)
    free(item);
  if (n > 0 && q->ops.on_batch)
    q->ops.on_batch(q->ops.opaque);
  return n;
}

int workq_purge(struct workq *q, bool (*match)(const void *item, void *arg), void *arg) {
  int n = 0;
  uv_mutex_lock(&q->mu);
  /* compact the ring in place, keeping order; matched items are released
   * after the unlock from a copy */
  unsigned char *gone = malloc((size_t)(q->count ? q->count : 1) * q->item_size);
  if (!gone) {
    uv_mutex_unlock(&q->mu);
    return -ENOMEM;
  }
  int kept = 0;
  for (int i = 0; i < q->count; i++) {
    void *it = slot(q, i);
    if (match(it, arg))
      memcpy(gone + (size_t)n++ * q->item_size, it, q->item_size);
    else if (kept++ != i)
      memcpy(slot(q, kept - 1), it, q->item_size);
  }
  q->count = kept;
  uv_mutex_unlock(&q->mu);
  for (int i = 0; q->ops.on_drop && i < n; i++)
    q->ops.on_drop(gone + (size_t)i * q->item_size, q->ops.opaque);
  free(gone);
  return n;
}

int workq_depth(struct workq *q) {
  uv_mutex_lock(&q->mu);
  int n = q->count;
  uv_mutex_unlock(&q->mu);
  return n;
}

uint64_t workq_dropped(struct workq *q) {
  uv_mutex_lock(&q->mu);
  uint64_t n = q->dropped;
  uv_mutex_unlock(&q->mu);
  return n;
}

void workq_unref(struct workq *q) { uv_unref((uv_handle_t *)&q->async); }

static bool match_all(const void *item, void *arg) {
  (void)item;
  (void)arg;
  return true;
}

static void on_closed(uv_handle_t *h) {
  struct workq *q = (struct workq *)h;
  void (*cb)(void *) = q->stop_cb;
  void *arg = q->stop_arg;
  uv_mutex_destroy(&q->mu);
  free(q->ring);
  free(q);
  if (cb)
    cb(arg);
}

void workq_stop(struct workq *q, void (*cb)(void *arg), void *arg) {
  if (!q)
    return;
  uv_mutex_lock(&q->mu);
  q->stopped = true;
  uv_mutex_unlock(&q->mu);
  workq_purge(q, match_all, NULL);
  q->stop_cb = cb;
  q->stop_arg = arg;
  uv_close((uv_handle_t *)&q->async, on_closed);
}
