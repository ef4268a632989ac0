/* memguard: the daemon's memory ceiling (server.memory_limit_mb).
 *
 * A loop timer reads the resident set size once a second. Near the
 * ceiling (90 %) the transcoder sheds its lowest-priority rungs, one more
 * at each segment boundary (encoders and their queues are the memory that
 * grows with work already admitted). Over the ceiling, the daemon refuses newcomers (HTTP 503, new websockets and RTMP
 * players closed at once) so that the viewers already connected keep
 * their stream; every per-client queue has its own bound, so what is
 * already admitted cannot grow without limit. Loop thread only. */
#ifndef GALARELAY_MEMGUARD_H
#define GALARELAY_MEMGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct buf;

/* 0, or a negative libuv code (its timer could not be made). */
int memguard_start(uv_loop_t *loop, size_t limit_mb);
void memguard_set_limit(size_t limit_mb); /* reload */
void memguard_stop(void);
/* True while the last reading was above the ceiling (never without one). */
bool memguard_over_limit(void);
/* True while the last reading was above 90 % of the ceiling. Any thread. */
bool memguard_near_limit(void);
size_t memguard_rss_bytes(void);
/* galarelay_memory_{rss,limit}_bytes, galarelay_memory_over_limit{,_total}. */
void memguard_metrics(struct buf *out);

#endif
