/* test_ladder: rung selection, even output sizes, scale sources and the
 * shared keyframe clock (transcoder/ladder.h). */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "config/config.h"
#include "transcoder/ladder.h"

static struct config cfg;

static int setup(void **state) {
  (void)state;
  config_defaults(&cfg);
  return 0;
}

static void default_ladder_1080p(void **state) {
  (void)state;
  struct ladder l;
  assert_int_equal(ladder_build(&cfg.transcoder, 1920, 1080, &l), 4);
  assert_string_equal(l.r[0].name, "source");
  assert_true(l.r[0].passthrough);
  assert_int_equal(l.r[0].width, 1920);
  assert_int_equal(l.r[0].height, 1080);
  assert_string_equal(l.r[1].name, "720p");
  assert_int_equal(l.r[1].width, 1280);
  assert_int_equal(l.r[1].height, 720);
  assert_int_equal(l.r[1].video_bitrate, 2800);
  assert_string_equal(l.r[2].name, "480p");
  assert_int_equal(l.r[2].width, 854);
  assert_int_equal(l.r[2].height, 480);
  assert_string_equal(l.r[3].name, "360p");
  assert_int_equal(l.r[3].width, 640);
  assert_int_equal(l.r[3].height, 360);
  for (int i = 1; i < l.count; i++)
    assert_false(l.r[i].passthrough);
}

static void rungs_at_or_above_source_left_out(void **state) {
  (void)state;
  struct ladder l;
  assert_int_equal(ladder_build(&cfg.transcoder, 1280, 720, &l), 3); /* source, 480p, 360p */
  assert_string_equal(l.r[1].name, "480p");
  assert_string_equal(l.r[2].name, "360p");
  assert_int_equal(ladder_build(&cfg.transcoder, 640, 360, &l), 1); /* only the source */
  assert_true(l.r[0].passthrough);
  assert_int_equal(ladder_build(&cfg.transcoder, 320, 240, &l), 1);
}

static void no_passthrough(void **state) {
  (void)state;
  struct ladder l;
  cfg.transcoder.source_passthrough = false;
  assert_int_equal(ladder_build(&cfg.transcoder, 1920, 1080, &l), 3);
  assert_string_equal(l.r[0].name, "720p");
  assert_int_equal(ladder_build(&cfg.transcoder, 640, 360, &l), 0);
}

static void odd_source_keeps_aspect_even(void **state) {
  (void)state;
  struct ladder l;
  assert_int_equal(ladder_build(&cfg.transcoder, 1279, 719, &l), 3); /* 720 >= 719: out */
  assert_int_equal(l.r[0].width, 1279);                              /* the source is passed as it is */
  for (int i = 1; i < l.count; i++) {
    assert_int_equal(l.r[i].width % 2, 0);
    assert_int_equal(l.r[i].height % 2, 0);
    double a = (double)l.r[i].width / l.r[i].height;
    assert_true(a > 1279.0 / 719 - 0.01 && a < 1279.0 / 719 + 0.01);
  }
  assert_int_equal(l.r[1].width, 854);
  /* portrait phone feed */
  assert_int_equal(ladder_build(&cfg.transcoder, 1081, 1921, &l), 4);
  assert_int_equal(l.r[1].height, 720);
  assert_int_equal(l.r[1].width, 406);
  assert_int_equal(l.r[3].width, 202);
}

static void odd_rung_height(void **state) {
  (void)state;
  struct ladder l;
  cfg.transcoder.rungs[2].height = 361;
  assert_int_equal(ladder_build(&cfg.transcoder, 1920, 1080, &l), 4);
  assert_int_equal(l.r[3].height, 362);
  assert_int_equal(l.r[3].width % 2, 0);
}

static void rungs_sorted_and_scaled_from_nearest_larger(void **state) {
  (void)state;
  struct ladder l;
  /* config order need not be by size */
  struct config_rung t = cfg.transcoder.rungs[0];
  cfg.transcoder.rungs[0] = cfg.transcoder.rungs[2];
  cfg.transcoder.rungs[2] = t;
  assert_int_equal(ladder_build(&cfg.transcoder, 1920, 1080, &l), 4);
  assert_string_equal(l.r[1].name, "720p");
  assert_string_equal(l.r[2].name, "480p");
  assert_string_equal(l.r[3].name, "360p");
  assert_int_equal(l.r[1].scale_from, -1); /* from the decoded source */
  assert_int_equal(l.r[2].scale_from, 1);  /* from 720p */
  assert_int_equal(l.r[3].scale_from, 2);  /* from 480p */
  assert_int_equal(l.r[1].priority, 30);
  assert_int_equal(l.r[3].priority, 10);
}

static void remove_keeps_scale_chain(void **state) {
  (void)state;
  struct ladder l;
  ladder_build(&cfg.transcoder, 1920, 1080, &l);
  ladder_remove(&l, 0); /* the source */
  assert_int_equal(l.count, 3);
  assert_string_equal(l.r[0].name, "720p");
  assert_int_equal(l.r[0].scale_from, -1);
  assert_int_equal(l.r[1].scale_from, 0);
  assert_int_equal(l.r[2].scale_from, 1);
  ladder_remove(&l, 1); /* 480p: 360p now scales from 720p */
  assert_int_equal(l.count, 2);
  assert_string_equal(l.r[1].name, "360p");
  assert_int_equal(l.r[1].scale_from, 0);
}

static void bad_sizes(void **state) {
  (void)state;
  struct ladder l;
  assert_int_equal(ladder_build(&cfg.transcoder, 0, 1080, &l), -EINVAL);
  assert_int_equal(ladder_build(&cfg.transcoder, 1920, -2, &l), -EINVAL);
  assert_int_equal(ladder_scaled_width(0, 0, 360), 0);
  assert_int_equal(ladder_scaled_width(16, 4096, 2), 2);
}

static void source_fits_segment(void **state) {
  (void)state;
  assert_true(ladder_source_fits(2000, 2.0));
  assert_true(ladder_source_fits(2033, 2.0)); /* millisecond jitter */
  assert_true(ladder_source_fits(1000, 2.0));
  assert_false(ladder_source_fits(4000, 2.0));
  assert_false(ladder_source_fits(10000, 2.0));
  assert_false(ladder_source_fits(0, 2.0));
}

static void keyframe_clock(void **state) {
  (void)state;
  assert_int_equal(ladder_segment_index(1000, 1000, 2.0), 0);
  assert_int_equal(ladder_segment_index(2999, 1000, 2.0), 0);
  assert_int_equal(ladder_segment_index(3000, 1000, 2.0), 1);
  assert_int_equal(ladder_segment_index(3033, 1000, 2.0), 1);
  assert_int_equal(ladder_segment_index(21000, 1000, 2.0), 10);
  assert_int_equal(ladder_segment_index(999, 1000, 2.0), -1);
  assert_int_equal(ladder_segment_index(500, 0, 0.333), 1);
  /* 30 fps in ms: exactly one frame per boundary crosses it */
  int64_t prev = -1, forced = 0;
  for (int f = 0; f < 300; f++) {
    int64_t pts = (int64_t)f * 1000 / 30;
    int64_t k = ladder_segment_index(pts, 0, 2.0);
    if (k > prev)
      forced++;
    prev = k;
  }
  assert_int_equal(forced, 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(default_ladder_1080p, setup),
      cmocka_unit_test_setup(rungs_at_or_above_source_left_out, setup),
      cmocka_unit_test_setup(no_passthrough, setup),
      cmocka_unit_test_setup(odd_source_keeps_aspect_even, setup),
      cmocka_unit_test_setup(odd_rung_height, setup),
      cmocka_unit_test_setup(rungs_sorted_and_scaled_from_nearest_larger, setup),
      cmocka_unit_test_setup(remove_keeps_scale_chain, setup),
      cmocka_unit_test_setup(bad_sizes, setup),
      cmocka_unit_test_setup(source_fits_segment, setup),
      cmocka_unit_test_setup(keyframe_clock, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
