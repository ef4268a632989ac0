/* workq: the one hand-off from worker threads to the loop thread.
 *
 * A bounded ring of fixed-size items (copied in, copied out) guarded by a
 * uv_mutex, and a uv_async that wakes the loop, whose callback hands every
 * queued item, oldest first, to the owner's on_item. Producers are any
 * threads; the consumer is the loop thread (the async callback, or
 * workq_drain() called there). Items usually carry references (a blob, a
 * pointer the owner frees): whoever holds the item owns them, and on_drop
 * releases them when the queue discards an item instead of delivering it.
 *
 * Bound and drop policy, chosen by the owner at creation (write it beside
 * the owner's queue too):
 *  - WORKQ_REFUSE_NEW: a push into a full queue fails with -EAGAIN and the
 *    item stays the caller's (it keeps its references); what is queued is
 *    older and delivered first.
 *  - WORKQ_DROP_OLDEST: a push into a full queue discards the oldest item
 *    (on_drop, on the pushing thread, outside the lock) and succeeds.
 * Either way the drops are counted (workq_dropped).
 *
 * Memory ordering: an item is written into the ring under the mutex, and
 * uv_async_send() is called after the unlock; the loop takes the mutex
 * before it reads the ring. So everything a producer wrote before its push
 * (into the item or into memory the item points at) is visible to on_item.
 * uv_async_send() coalesces: one callback may deliver many pushes, and a
 * push that lands while the callback runs gets a callback of its own.
 *
 * Shutdown: workq_stop() (loop thread) refuses further pushes (-EPIPE),
 * discards what is queued through on_drop, closes the async handle and
 * calls cb(arg) from its close callback, after which the memory is gone.
 * Producers must be stopped (joined) first, or only push after a stop
 * into a queue that is still allocated, which workq_stop makes safe up to
 * the close callback. */
#ifndef GALARELAY_WORKQ_H
#define GALARELAY_WORKQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct workq;

enum workq_policy {
  WORKQ_REFUSE_NEW,  /* full: the push fails, the caller keeps the item */
  WORKQ_DROP_OLDEST, /* full: the oldest queued item is dropped */
};

struct workq_ops {
  /* Loop thread: one item, oldest first; it owns the item's references now. */
  void (*on_item)(void *item, void *opaque);
  /* The item is discarded (drop policy, purge, stop): release what it holds.
   * Any thread (that of the push, purge or stop). May be NULL. */
  void (*on_drop)(void *item, void *opaque);
  /* Loop thread, after a drain that delivered at least one item: work
   * that should see the whole batch (e.g. no slate between an end and the
   * begin right behind it). May be NULL. */
  void (*on_batch)(void *opaque);
  void *opaque;
};

/* item_size bytes per item, at most `bound` (>= 1) queued. Loop thread.
 * 0 and *out, or -EINVAL, -ENOMEM, or a uv error from uv_async_init. */
int workq_new(uv_loop_t *loop, size_t item_size, int bound, enum workq_policy policy, const struct workq_ops *ops,
              struct workq **out);

/* Any thread. Copies item in and wakes the loop: 0; -EAGAIN when full under
 * WORKQ_REFUSE_NEW (not queued, still the caller's); -EPIPE after
 * workq_stop (not queued). */
int workq_push(struct workq *q, const void *item);

/* Loop thread: deliver what is queued now to on_item (the async callback
 * does the same; owners call it to be in step, e.g. before a switch).
 * Items pushed while it runs are delivered too. Returns the count. */
int workq_drain(struct workq *q);

/* Discard (on_drop) every queued item for which match() says true: items
 * of a producer that is gone. Any thread. Returns the count. */
int workq_purge(struct workq *q, bool (*match)(const void *item, void *arg), void *arg);

/* Any thread: items queued now; items dropped or refused since creation. */
int workq_depth(struct workq *q);
uint64_t workq_dropped(struct workq *q);

/* Loop thread: the queue's handle does not keep uv_run going (uv_unref). */
void workq_unref(struct workq *q);

/* Loop thread. Asynchronous teardown (see above); cb may be NULL. */
void workq_stop(struct workq *q, void (*cb)(void *arg), void *arg);

#endif
