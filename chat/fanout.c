/* fanout: the ready list that paces the fan-out, and the raw write of
 * shared frames to one member's socket (see fanout.h). */
#include "chat/fanout.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "chat/room.h"

void fanout_tx_clear(struct fanout_tx *tx) {
  room_frame_unref(tx->frame);
  tx->frame = NULL;
  tx->off = 0;
}

static size_t wire_len(const struct room_frame *f, size_t headroom) {
  size_t len = 0;
  room_frame_wire(f, headroom, &len);
  return len;
}

/* The iovec for what is still to send: the rest of tx, then up to the
 * limit the frames queued after it, not taken yet (npeek of them). */
static size_t gather(struct room_member *m, size_t headroom, const struct fanout_tx *tx, struct iovec *iov,
                     unsigned *npeek) {
  size_t n = 0, len;
  const unsigned char *w;
  *npeek = 0;
  if (tx->frame) {
    if (!(w = room_frame_wire(tx->frame, headroom, &len)))
      return 0;
    iov[n++] = (struct iovec){(void *)(w + tx->off), len - tx->off};
  }
  for (struct room_frame *f; n < FANOUT_IOV && (f = room_member_peek(m, *npeek)); ++*npeek) {
    if (!(w = room_frame_wire(f, headroom, &len)))
      break; /* no header: not ours to send */
    iov[n++] = (struct iovec){(void *)w, len};
  }
  return n;
}

/* The kernel accepted `sent` bytes of what gather() described: finish tx,
 * take the frames sent whole, and keep the one sent in part in tx. A frame
 * not started stays queued (the drop policy may still drop it). Returns
 * true when everything was accepted. */
static bool consume(struct room_member *m, size_t headroom, struct fanout_tx *tx, unsigned npeek, size_t sent,
                    struct fanout_stats *st) {
  if (tx->frame) {
    size_t rest = wire_len(tx->frame, headroom) - tx->off;
    if (sent < rest) {
      tx->off += sent;
      return false;
    }
    sent -= rest;
    fanout_tx_clear(tx);
    st->frames++;
  }
  for (unsigned i = 0; i < npeek; i++) {
    if (sent == 0)
      return false;
    struct room_frame *f = room_member_take(m);
    assert(f);
    size_t len = wire_len(f, headroom);
    if (sent < len) {
      tx->frame = f;
      tx->off = sent;
      return false;
    }
    sent -= len;
    room_frame_unref(f);
    st->frames++;
  }
  return true;
}

enum fanout_result fanout_write(int fd, struct room_member *m, size_t headroom, struct fanout_tx *tx,
                                struct fanout_stats *st) {
  for (;;) {
    if (!tx->frame && room_member_has_frames(m) && !room_member_peek(m, 0)) {
      tx->frame = room_member_take(m); /* a dropped notice is due: take builds it */
      tx->off = 0;
    }
    struct iovec iov[FANOUT_IOV];
    unsigned npeek;
    size_t niov = gather(m, headroom, tx, iov, &npeek);
    if (niov == 0 && (tx->frame || room_member_peek(m, 0))) {
      errno = EINVAL; /* a frame without its header (headroom under 10 bytes) */
      return FANOUT_ERROR;
    }
    if (niov == 0)
      return FANOUT_DONE;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = niov};
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      st->blocked++;
      return FANOUT_FULL;
    }
    if (n < 0)
      return FANOUT_ERROR;
    st->sends++;
    st->bytes += (uint64_t)n;
    if (!consume(m, headroom, tx, npeek, (size_t)n, st))
      return FANOUT_FULL;
    /* all accepted: more than FANOUT_IOV frames were queued, or none left */
  }
}

/* ---- The ready list */

void fanout_ready_init(struct fanout_ready *q) {
  q->head.prev = q->head.next = &q->head;
  q->count = 0;
}

void fanout_ready_add(struct fanout_ready *q, struct fanout_link *l) {
  if (l->next)
    return;
  l->prev = q->head.prev;
  l->next = &q->head;
  q->head.prev->next = l;
  q->head.prev = l;
  q->count++;
}

void fanout_ready_remove(struct fanout_ready *q, struct fanout_link *l) {
  if (!l->next)
    return;
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->prev = l->next = NULL;
  q->count--;
}

size_t fanout_ready_run(struct fanout_ready *q, size_t budget, void (*fn)(void *opaque, struct fanout_link *l),
                        void *opaque) {
  for (size_t i = 0; i < budget && q->count; i++) {
    struct fanout_link *l = q->head.next;
    fanout_ready_remove(q, l);
    fn(opaque, l);
  }
  return q->count;
}
