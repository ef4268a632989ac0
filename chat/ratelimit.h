/* ratelimit: a token bucket (rate tokens per second, up to burst stored).
 *
 * Plain value type with no allocation: a room keeps one per user and one
 * per client address. Time is passed in (milliseconds, monotonic), so the
 * bucket is trivial to test. Its owner's thread only (no locks). */
#ifndef GALARELAY_CHAT_RATELIMIT_H
#define GALARELAY_CHAT_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit {
  double tokens;
  double rate;  /* tokens per second; <= 0 = unlimited */
  double burst; /* most tokens stored (at least 1) */
  uint64_t last_ms;
};

/* Starts full. */
void ratelimit_init(struct ratelimit *rl, double rate, double burst, uint64_t now_ms);
/* New limits (config reload); the stored tokens are capped to the new burst. */
void ratelimit_configure(struct ratelimit *rl, double rate, double burst, uint64_t now_ms);
/* Take one token: 0 when allowed, else the milliseconds until one will be
 * there (nothing taken). */
int64_t ratelimit_take(struct ratelimit *rl, uint64_t now_ms);
/* Return the token a ratelimit_take just took, when what it paid for did
 * not happen after all (another limit refused it); never past burst. */
void ratelimit_give_back(struct ratelimit *rl);
/* Full again: nothing to remember about this key (a table may forget it). */
bool ratelimit_is_full(struct ratelimit *rl, uint64_t now_ms);

#endif
