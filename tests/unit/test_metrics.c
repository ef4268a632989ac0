/* Unit tests for core/metrics, the one writer of the Prometheus text
 * format: a table of rows becomes HELP, TYPE and one sample per row, read
 * from a struct's fields by their type or from a getter; labelled families
 * get their samples one by one (a value, or a row read from each
 * channel's stats); counts stay exact past 2^53; values that
 * are not whole get the fewest digits that read back the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "core/buf.h"
#include "core/metrics.h"

struct sample_stats {
  int members;
  unsigned int rooms;
  uint64_t accepted;
  unsigned long long refused;
  size_t queue_bytes;
  double bitrate;
  bool live;
};

static double twice_members(const void *obj) { return 2.0 * ((const struct sample_stats *)obj)->members; }

static const struct metric rows[] = {
    METRIC_FIELD("t_members", METRIC_GAUGE, "Members now.", struct sample_stats, members),
    METRIC_FIELD("t_rooms", METRIC_GAUGE, "Rooms.", struct sample_stats, rooms),
    METRIC_FIELD("t_accepted_total", METRIC_COUNTER, "Accepted.", struct sample_stats, accepted),
    METRIC_FIELD("t_refused_total", METRIC_COUNTER, "Refused.", struct sample_stats, refused),
    METRIC_FIELD("t_queue_bytes", METRIC_GAUGE, "Queued.", struct sample_stats, queue_bytes),
    METRIC_FIELD("t_bitrate_kbps", METRIC_GAUGE, "Bitrate.", struct sample_stats, bitrate),
    METRIC_FIELD("t_live", METRIC_GAUGE, "Live.", struct sample_stats, live),
    METRIC_GETTER("t_double_members", METRIC_GAUGE, "Twice the members.", twice_members),
    METRIC_FAMILY("t_by_reason_total", METRIC_COUNTER, "Written by the caller."),
};

static void test_table_writes_every_row_from_its_field(void **state) {
  (void)state;
  struct sample_stats st = {
      .members = -3, .rooms = 7, .accepted = 42, .refused = 5, .queue_bytes = 4096, .bitrate = 812.345, .live = true};
  struct buf out;
  buf_init(&out);
  metrics_write(&out, rows, METRICS_COUNT(rows), &st);
  assert_false(out.failed);
  assert_string_equal(out.data, "# HELP t_members Members now.\n# TYPE t_members gauge\nt_members -3\n"
                                "# HELP t_rooms Rooms.\n# TYPE t_rooms gauge\nt_rooms 7\n"
                                "# HELP t_accepted_total Accepted.\n# TYPE t_accepted_total counter\n"
                                "t_accepted_total 42\n"
                                "# HELP t_refused_total Refused.\n# TYPE t_refused_total counter\nt_refused_total 5\n"
                                "# HELP t_queue_bytes Queued.\n# TYPE t_queue_bytes gauge\nt_queue_bytes 4096\n"
                                "# HELP t_bitrate_kbps Bitrate.\n# TYPE t_bitrate_kbps gauge\n"
                                "t_bitrate_kbps 812.345\n"
                                "# HELP t_live Live.\n# TYPE t_live gauge\nt_live 1\n"
                                "# HELP t_double_members Twice the members.\n# TYPE t_double_members gauge\n"
                                "t_double_members -6\n");
  buf_free(&out);
}

static void test_family_gets_head_and_labelled_samples(void **state) {
  (void)state;
  const struct metric *fam = &rows[8];
  struct buf out;
  buf_init(&out);
  metrics_head(&out, fam);
  metrics_count(&out, fam, "channel=\"gala\",reason=\"rate\"", 3);
  metrics_value(&out, fam, NULL, 0);
  metrics_value(&out, fam, "", 1);
  assert_string_equal(out.data, "# HELP t_by_reason_total Written by the caller.\n"
                                "# TYPE t_by_reason_total counter\n"
                                "t_by_reason_total{channel=\"gala\",reason=\"rate\"} 3\n"
                                "t_by_reason_total 0\nt_by_reason_total 1\n");
  assert_true(metrics_read(fam, NULL) == 0);
  buf_reset(&out);
  static const struct metric bare = METRIC_FAMILY("t_bare_total", METRIC_COUNTER, NULL);
  metrics_head(&out, &bare);
  assert_string_equal(out.data, "# TYPE t_bare_total counter\n");
  buf_reset(&out);
  static const struct metric hist = METRIC_FAMILY("t_seconds", METRIC_HISTOGRAM, "Latency.");
  static const struct metric bucket = METRIC_FAMILY("t_seconds_bucket", METRIC_HISTOGRAM, NULL);
  metrics_head(&out, &hist);
  metrics_count(&out, &bucket, "le=\"+Inf\"", 2);
  assert_string_equal(out.data,
                      "# HELP t_seconds Latency.\n# TYPE t_seconds histogram\nt_seconds_bucket{le=\"+Inf\"} 2\n");
  buf_free(&out);
}

static void test_counts_stay_exact_past_double_precision(void **state) {
  (void)state;
  struct sample_stats st = {.accepted = UINT64_MAX, .refused = (1ULL << 53) + 1};
  struct buf out;
  buf_init(&out);
  metrics_write(&out, &rows[2], 2, &st);
  assert_non_null(strstr(out.data, "\nt_accepted_total 18446744073709551615\n"));
  assert_non_null(strstr(out.data, "\nt_refused_total 9007199254740993\n"));
  buf_free(&out);
}

static void test_values_read_back_the_same(void **state) {
  (void)state;
  static const struct metric m = METRIC_FAMILY("t_v", METRIC_GAUGE, "v");
  const double values[] = {12.345, 0.1, 1.0 / 3.0, 1e300, -2.5, 9007199254740993.0};
  const char *want = "t_v 12.345\nt_v 0.1\nt_v 0.33333333333333331\nt_v 1e+300\nt_v -2.5\n"
                     "t_v 9007199254740992\n";
  struct buf out;
  buf_init(&out);
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
    metrics_value(&out, &m, NULL, values[i]);
  assert_string_equal(out.data, want);
  buf_reset(&out);
  metrics_value(&out, &m, NULL, NAN);
  metrics_value(&out, &m, NULL, INFINITY);
  metrics_value(&out, &m, NULL, -INFINITY);
  assert_string_equal(out.data, "t_v NaN\nt_v +Inf\nt_v -Inf\n");
  buf_free(&out);
}

/* A family per channel: the head once, then one sample per stats struct. */
static void test_sample_per_channel(void **state) {
  (void)state;
  const struct sample_stats per[2] = {{.accepted = 7, .bitrate = 1.5}, {.accepted = UINT64_MAX, .bitrate = 2}};
  const char *const names[2] = {"gala", "news"};
  struct buf out;
  buf_init(&out);
  for (int r = 2; r <= 5; r += 3) {
    metrics_head(&out, &rows[r]);
    for (int i = 0; i < 2; i++) {
      char labels[64];
      snprintf(labels, sizeof labels, "channel=\"%s\"", names[i]);
      metrics_sample(&out, &rows[r], labels, &per[i]);
    }
  }
  assert_string_equal(out.data, "# HELP t_accepted_total Accepted.\n# TYPE t_accepted_total counter\n"
                                "t_accepted_total{channel=\"gala\"} 7\n"
                                "t_accepted_total{channel=\"news\"} 18446744073709551615\n"
                                "# HELP t_bitrate_kbps Bitrate.\n# TYPE t_bitrate_kbps gauge\n"
                                "t_bitrate_kbps{channel=\"gala\"} 1.5\nt_bitrate_kbps{channel=\"news\"} 2\n");
  buf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table_writes_every_row_from_its_field),
      cmocka_unit_test(test_family_gets_head_and_labelled_samples),
      cmocka_unit_test(test_counts_stay_exact_past_double_precision),
      cmocka_unit_test(test_values_read_back_the_same),
      cmocka_unit_test(test_sample_per_channel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
