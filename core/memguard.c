/* memguard: see memguard.h. RSS comes from /proc/self/statm (pages). */
#include "core/memguard.h"

#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"

#define MEMGUARD_PERIOD_MS 1000

static uv_timer_t timer;
static bool running;
static size_t limit_bytes;
static size_t rss_bytes;
static bool over;
static atomic_bool near; /* read by the transcoder's threads */
static unsigned long long refusals_started;

static size_t read_rss(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return 0;
  unsigned long size = 0, resident = 0;
  int n = fscanf(f, "%lu %lu", &size, &resident);
  fclose(f);
  if (n != 2)
    return 0;
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void sample(uv_timer_t *t) {
  (void)t;
  rss_bytes = read_rss();
  bool now_over = limit_bytes && rss_bytes > limit_bytes;
  atomic_store(&near, limit_bytes && rss_bytes > limit_bytes / 10 * 9);
  if (now_over != over) {
    if (now_over) {
      refusals_started++;
      log_warn("memguard", "over the memory ceiling: refusing newcomers rss_mb=%zu limit_mb=%zu", rss_bytes >> 20,
               limit_bytes >> 20);
    } else {
      log_info("memguard", "back under the memory ceiling rss_mb=%zu limit_mb=%zu", rss_bytes >> 20, limit_bytes >> 20);
    }
    over = now_over;
  }
}

int memguard_start(uv_loop_t *loop, size_t limit_mb) {
  memguard_set_limit(limit_mb);
  int rc = uv_timer_init(loop, &timer);
  if (rc < 0)
    return rc;
  running = true;
  sample(&timer);
  return uv_timer_start(&timer, sample, MEMGUARD_PERIOD_MS, MEMGUARD_PERIOD_MS);
}

void memguard_set_limit(size_t limit_mb) { limit_bytes = limit_mb << 20; }

void memguard_stop(void) {
  if (!running)
    return;
  running = false;
  over = false; /* no guard, no ceiling */
  atomic_store(&near, false);
  uv_close((uv_handle_t *)&timer, NULL);
}

bool memguard_over_limit(void) { return over; }

bool memguard_near_limit(void) { return atomic_load(&near); }

size_t memguard_rss_bytes(void) { return rss_bytes; }

/* What /metrics shows, read at the time of the request. */
struct memguard_stats {
  size_t rss_bytes;
  size_t limit_bytes;
  bool over;
  unsigned long long over_limit_total;
};

void memguard_metrics(struct buf *out) {
  static const struct metric rows[] = {
      METRIC_FIELD("galarelay_memory_rss_bytes", METRIC_GAUGE, "Resident memory of the daemon.", struct memguard_stats,
                   rss_bytes),
      METRIC_FIELD("galarelay_memory_limit_bytes", METRIC_GAUGE, "The configured ceiling (0 = none).",
                   struct memguard_stats, limit_bytes),
      METRIC_FIELD("galarelay_memory_over_limit", METRIC_GAUGE, "1 while newcomers are refused for memory.",
                   struct memguard_stats, over),
      METRIC_FIELD("galarelay_memory_over_limit_total", METRIC_COUNTER, "Times the ceiling was crossed.",
                   struct memguard_stats, over_limit_total),
  };
  struct memguard_stats st = {read_rss(), limit_bytes, over, refusals_started};
  metrics_write(out, rows, METRICS_COUNT(rows), &st);
}
