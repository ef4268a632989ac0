/* idgen: the ids of comments (and of anonymous users), made on one node
 * without a round trip to anyone.
 *
 * An id is IDGEN_LEN (13) characters of an alphabet whose ASCII order is
 * its digit order ("-0-9A-Z_a-z": 6 bits a character, URL- and JSON-safe),
 * fixed width, so string order (memcmp, SQLite's BINARY collation,
 * JavaScript's <) is numeric order:
 *
 *     7 characters  42 bits  milliseconds since the epoch (until 2109)
 *     2 characters  12 bits  sequence within the millisecond
 *     4 characters  24 bits  the node (random per process, the bus's origin)
 *
 * Strictly increasing per generator: when the clock stands still or steps
 * back, the sequence goes on from the last id; 4096 ids in one ms borrow
 * the next ms. Unique across nodes while their node ids differ (two nodes
 * in the same ms with the same sequence differ in the node part), across
 * restarts because a new process takes a new node id and, with
 * idgen_floor fed the newest id the archive holds, sorts after every id it
 * made before even when the clock went back meanwhile. Across nodes ids
 * sort in publish time up to the nodes' clock difference.
 *
 * The ids before this format were 21 lowercase hex digits, the first
 * one a decimal digit (until the year 2318); every id of this format made
 * after 1993 starts with a letter, so an archive holding both still sorts
 * in publish order.
 *
 * No threads, no clock of its own (the caller passes the time): tested
 * with a clock that steps back. */
#ifndef GALARELAY_CHAT_IDGEN_H
#define GALARELAY_CHAT_IDGEN_H

#include <stdint.h>

#define IDGEN_LEN 13
#define IDGEN_SEQ_MAX 0xfff
#define IDGEN_NODE_MASK 0xffffffu

struct idgen {
  uint64_t last_ms; /* the ms of the last id made (or of the floor) */
  uint32_t seq;     /* the last sequence used in last_ms */
  uint32_t node;    /* 24 bits */
  int used;         /* an id was made in last_ms (or the floor's) */
};

void idgen_init(struct idgen *g, uint32_t node);
/* The next id for wall clock now_ms (ms since the epoch), written with its
 * NUL into out (at least IDGEN_LEN + 1 bytes). */
void idgen_make(struct idgen *g, uint64_t now_ms, char *out);
/* Ids made from now on sort after id (one of this format; 0), whatever
 * the clock says; -1 (and nothing changes) for any other string. */
int idgen_floor(struct idgen *g, const char *id);
/* The parts of an id of this format: 0, or -1 if it is not one. */
int idgen_parse(const char *id, uint64_t *ms, uint32_t *seq, uint32_t *node);

#endif
