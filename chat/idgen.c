/* idgen: fixed-width ids in an alphabet whose ASCII order is its digit
 * order (see idgen.h for the layout and the guarantees). */
#include "chat/idgen.h"

#include <string.h>

static const char digits[64] = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

static void put(char *out, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 6)
    out[i] = digits[v & 63];
}

static int get(const char *in, int n, uint64_t *v) {
  *v = 0;
  for (int i = 0; i < n; i++) {
    const char *d = in[i] ? memchr(digits, in[i], sizeof(digits)) : NULL;
    if (!d)
      return -1;
    *v = *v << 6 | (uint64_t)(d - digits);
  }
  return 0;
}

void idgen_init(struct idgen *g, uint32_t node) {
  memset(g, 0, sizeof(*g));
  g->node = node & IDGEN_NODE_MASK;
}

void idgen_make(struct idgen *g, uint64_t now_ms, char *out) {
  if (now_ms > g->last_ms || !g->used) {
    if (now_ms > g->last_ms)
      g->last_ms = now_ms;
    g->seq = 0;
  } else if (++g->seq > IDGEN_SEQ_MAX) {
    g->last_ms++; /* 4096 ids in one ms, or the clock went back: borrow ahead */
    g->seq = 0;
  }
  g->used = 1;
  put(out, g->last_ms, 7);
  put(out + 7, g->seq, 2);
  put(out + 9, g->node, 4);
  out[IDGEN_LEN] = '\0';
}

int idgen_parse(const char *id, uint64_t *ms, uint32_t *seq, uint32_t *node) {
  uint64_t s, n;
  if (strlen(id) != IDGEN_LEN || get(id, 7, ms) || get(id + 7, 2, &s) || get(id + 9, 4, &n))
    return -1;
  *seq = (uint32_t)s;
  *node = (uint32_t)n;
  return 0;
}

int idgen_floor(struct idgen *g, const char *id) {
  uint64_t ms;
  uint32_t seq, node;
  if (idgen_parse(id, &ms, &seq, &node))
    return -1;
  /* the next id must pass (ms, seq) whatever its node: another node's id
   * with our sequence would otherwise sort after ours */
  if (ms > g->last_ms || (ms == g->last_ms && (!g->used || seq >= g->seq))) {
    g->last_ms = ms;
    g->seq = seq;
    g->used = 1;
  }
  return 0;
}
