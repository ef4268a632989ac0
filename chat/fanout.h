/* fanout: the comment fan-out's write path, without lws: which members
 * write in this turn of the loop (the ready list), and the write itself
 * (shared frames sent as they are to a member's raw socket).
 *
 * Pacing. A tick queues its shared frame to every member at once (a
 * reference each: cheap); the writes, a system call each, are what grow
 * with the audience. Members with frames to write wait in one FIFO ready
 * list, and fanout_ready_run writes at most `budget` of them per call, one
 * call per turn of the loop, so that between slices the loop goes back to
 * epoll and reads the posters' messages, runs the archive completions and
 * sends their acks (which the transport writes at once, ahead of the list:
 * see chat.c). A member already in the list keeps its place; what it is
 * queued meanwhile goes out with it. Bound: each member is in the list at
 * most once, so the list never holds more than the members.
 *
 * The write. A frame's bytes (room_frame_wire: header and payload, the
 * same for every member) are sent from the shared buffer with one
 * sendmsg() per member per call, gathering every frame its queue holds (up
 * to FANOUT_IOV). Frames are taken off the queue only once the kernel
 * accepted all of them, so the queue's drop policy (room.h) never sees a
 * frame that is partly sent; a frame the kernel took in part leaves the
 * queue and waits in the member's fanout_tx (the frame and how much of it
 * went out) until the transport resumes or hands it over.
 *
 * Loop thread only. */
#ifndef GALARELAY_CHAT_FANOUT_H
#define GALARELAY_CHAT_FANOUT_H

#include <stddef.h>
#include <stdint.h>

struct room_frame;
struct room_member;

#define FANOUT_IOV 16 /* frames gathered into one sendmsg */

/* The frame being sent to one member: taken off its queue, `off` bytes of
 * its wire form sent. frame NULL: nothing in flight. */
struct fanout_tx {
  struct room_frame *frame; /* one reference, owned here */
  size_t off;
};

struct fanout_stats {
  uint64_t sends;   /* sendmsg calls that sent something */
  uint64_t blocked; /* sendmsg calls the kernel refused (EAGAIN) */
  uint64_t bytes;   /* bytes the kernel accepted */
  uint64_t frames;  /* frames sent whole */
};

enum fanout_result {
  FANOUT_DONE,  /* the queue is empty and nothing is in flight */
  FANOUT_FULL,  /* the socket buffer is full; tx may hold a partly sent frame */
  FANOUT_ERROR, /* the socket is broken (errno says why): close the member */
};

/* Write m's queued frames to fd (non-blocking, MSG_NOSIGNAL), the rest of
 * tx first. headroom: the room's (room_params.headroom). Every frame must
 * have its header (room_frame_wire non-NULL). */
enum fanout_result fanout_write(int fd, struct room_member *m, size_t headroom, struct fanout_tx *tx,
                                struct fanout_stats *st);
/* Drop what is in flight (the member is leaving). */
void fanout_tx_clear(struct fanout_tx *tx);

/* ---- The ready list */

struct fanout_link {
  struct fanout_link *prev, *next; /* NULL, NULL: not in a list */
};

struct fanout_ready {
  struct fanout_link head; /* a ring; head.next is the oldest */
  size_t count;
};

void fanout_ready_init(struct fanout_ready *q);
/* Append l unless it is in the list already (it keeps its place). */
void fanout_ready_add(struct fanout_ready *q, struct fanout_link *l);
/* Take l out if it is in the list (a member that leaves). */
void fanout_ready_remove(struct fanout_ready *q, struct fanout_link *l);
/* Take up to budget links, oldest first, and call fn for each (fn may add
 * it again: it goes to the back). Returns how many remain. */
size_t fanout_ready_run(struct fanout_ready *q, size_t budget, void (*fn)(void *opaque, struct fanout_link *l),
                        void *opaque);

#endif
