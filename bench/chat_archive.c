/* bench/chat_archive: how many acked comments per second the archive takes,
 * and how long an ack waits (submit -> completion on the loop), for a given
 * group commit window and batch, with synchronous=FULL as in production.
 *
 *   chat_archive_bench [DIR] [COMMENTS] [COMMIT_MS] [BATCH]
 *
 * Submits COMMENTS comments as fast as the in-flight bound allows (a full
 * queue is retried on the next loop turn, like a flood of viewers), prints
 * throughput, commits, and ack latency p50/p99/max. Compare with BATCH=1
 * COMMIT_MS=1 (one fsync per comment) to see what group commit buys. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "chat/archive.h"

struct bench {
  uv_loop_t *loop;
  struct archive *a;
  int total, next, acked, failed;
  uint64_t *submitted_ns;
  uint64_t *lat_ns;
  int *tags;
  uv_idle_t idle;
};

/* The completion callback only gets an opaque pointer: the tag's index. */
static struct bench *g;

static void done_cb(void *opaque, int ok) {
  int k = *(int *)opaque;
  g->lat_ns[k] = uv_hrtime() - g->submitted_ns[k];
  if (ok)
    g->acked++;
  else
    g->failed++;
}

static void pump(uv_idle_t *h) {
  struct bench *b = h->data;
  char id[32], text[128];
  while (b->next < b->total) {
    int k = b->next;
    snprintf(id, sizeof id, "%021d", k);
    snprintf(text, sizeof text, "comment number %d, 新年快乐, a typical short line", k);
    struct archive_comment c = {.id = id,
                                .channel = "bench",
                                .user_id = "u",
                                .user_name = "n",
                                .role = "viewer",
                                .text = text,
                                .ts_ms = k,
                                .addr = "127.0.0.1"};
    b->submitted_ns[k] = uv_hrtime();
    if (archive_submit_comment(b->a, &c, done_cb, &b->tags[k]) != 0)
      return; /* full: try again next turn */
    b->next++;
  }
  if (b->acked + b->failed == b->total)
    uv_idle_stop(h);
}

static int cmp_u64(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return a < b ? -1 : a > b;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/tmp";
  int total = argc > 2 ? atoi(argv[2]) : 100000;
  int commit_ms = argc > 3 ? atoi(argv[3]) : 5;
  int batch = argc > 4 ? atoi(argv[4]) : 256;
  char path[512];
  snprintf(path, sizeof path, "%s/chat_archive_bench.sqlite3", dir);
  static const char *const suffixes[] = {"", "-wal", "-shm"};
  for (int k = 0; k < 3; k++) { /* start from an empty database */
    char old[600];
    snprintf(old, sizeof old, "%s%s", path, suffixes[k]);
    remove(old);
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct bench b = {.loop = &loop, .total = total};
  g = &b;
  b.submitted_ns = calloc((size_t)total, sizeof *b.submitted_ns);
  b.lat_ns = calloc((size_t)total, sizeof *b.lat_ns);
  b.tags = calloc((size_t)total, sizeof *b.tags);
  for (int k = 0; k < total; k++)
    b.tags[k] = k;
  struct archive_params p = {.path = path, .commit_ms = commit_ms, .batch = batch};
  b.a = archive_open(&loop, &p);
  if (!b.a)
    return 1;
  uv_idle_init(&loop, &b.idle);
  b.idle.data = &b;
  uint64_t t0 = uv_hrtime();
  uv_idle_start(&b.idle, pump);
  while (b.acked + b.failed < total)
    uv_run(&loop, UV_RUN_ONCE);
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  struct archive_stats st;
  archive_get_stats(b.a, &st);
  uv_close((uv_handle_t *)&b.idle, NULL);
  archive_stop(b.a, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  qsort(b.lat_ns, (size_t)total, sizeof *b.lat_ns, cmp_u64);
  printf("comments=%d commit_ms=%d batch=%d acked=%d failed=%d full_queue_retries=%llu\n", total, commit_ms, batch,
         b.acked, b.failed, (unsigned long long)st.refused);
  printf("seconds=%.3f acks_per_sec=%.0f commits=%llu records_per_commit=%.1f\n", secs, total / secs,
         (unsigned long long)st.commits, st.commits ? (double)st.committed / (double)st.commits : 0.0);
  printf("ack_latency_ms p50=%.2f p99=%.2f max=%.2f commit_ms_avg=%.3f commit_ms_max=%.3f\n",
         (double)b.lat_ns[total / 2] / 1e6, (double)b.lat_ns[(size_t)total * 99 / 100] / 1e6,
         (double)b.lat_ns[total - 1] / 1e6, st.commits ? st.commit_seconds_sum * 1e3 / (double)st.commits : 0.0,
         st.commit_seconds_max * 1e3);
  free(b.submitted_ns);
  free(b.lat_ns);
  free(b.tags);
  return b.failed ? 1 : 0;
}
