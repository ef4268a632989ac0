/* ratelimit: token bucket arithmetic. */
#include "chat/ratelimit.h"

#include <math.h>

static void refill(struct ratelimit *rl, uint64_t now_ms) {
  if (now_ms > rl->last_ms) {
    rl->tokens += (double)(now_ms - rl->last_ms) * rl->rate / 1000.0;
    if (rl->tokens > rl->burst)
      rl->tokens = rl->burst;
  }
  rl->last_ms = now_ms > rl->last_ms ? now_ms : rl->last_ms;
}

void ratelimit_init(struct ratelimit *rl, double rate, double burst, uint64_t now_ms) {
  rl->rate = rate;
  rl->burst = burst < 1 ? 1 : burst;
  rl->tokens = rl->burst;
  rl->last_ms = now_ms;
}

void ratelimit_configure(struct ratelimit *rl, double rate, double burst, uint64_t now_ms) {
  refill(rl, now_ms);
  rl->rate = rate;
  rl->burst = burst < 1 ? 1 : burst;
  if (rl->tokens > rl->burst)
    rl->tokens = rl->burst;
}

int64_t ratelimit_take(struct ratelimit *rl, uint64_t now_ms) {
  if (rl->rate <= 0)
    return 0;
  refill(rl, now_ms);
  if (rl->tokens >= 1.0) {
    rl->tokens -= 1.0;
    return 0;
  }
  int64_t wait = (int64_t)ceil((1.0 - rl->tokens) * 1000.0 / rl->rate);
  return wait < 1 ? 1 : wait;
}

void ratelimit_give_back(struct ratelimit *rl) {
  if (rl->rate <= 0) /* unlimited: take took nothing */
    return;
  rl->tokens += 1.0;
  if (rl->tokens > rl->burst)
    rl->tokens = rl->burst;
}

bool ratelimit_is_full(struct ratelimit *rl, uint64_t now_ms) {
  if (rl->rate <= 0)
    return true;
  refill(rl, now_ms);
  return rl->tokens >= rl->burst;
}
