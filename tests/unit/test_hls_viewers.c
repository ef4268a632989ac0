/* Unit tests for transcoder/hls/hls_viewers: distinct counting per channel,
 * expiry after the window on an injected clock, saturation at the bound,
 * keys that share a home slot (probe runs and removal from their middle),
 * and the bound on channels. Hashes are chosen by the tests where the slot
 * matters, and come from hls_viewers_hash where it does not. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <stdio.h>
#include <string.h>

#include "transcoder/hls/hls_viewers.h"

#define W HLS_VIEWERS_WINDOW_MS

static uint64_t h(struct hls_viewers *v, const char *addr) { return hls_viewers_hash(v, addr); }

static void test_distinct(void **state) {
  (void)state;
  struct hls_viewers *v = hls_viewers_new(HLS_VIEWERS_CAPACITY, W, 42);
  assert_non_null(v);
  assert_int_equal(hls_viewers_count(v, "gala", 0, NULL), 0); /* never seen */
  hls_viewers_seen(v, "gala", h(v, "192.0.2.1"), 1000);
  hls_viewers_seen(v, "gala", h(v, "192.0.2.1"), 1100); /* the same viewer's next request */
  hls_viewers_seen(v, "gala", h(v, "192.0.2.2"), 1200);
  hls_viewers_seen(v, "gala", h(v, "2001:db8::1"), 1300);
  hls_viewers_seen(v, "news", h(v, "192.0.2.1"), 1400); /* one address, two channels */
  bool sat = true;
  assert_int_equal(hls_viewers_count(v, "gala", 1500, &sat), 3);
  assert_false(sat);
  assert_int_equal(hls_viewers_count(v, "news", 1500, NULL), 1);
  assert_int_equal(hls_viewers_count(v, "other", 1500, NULL), 0);
  /* the hash is keyed: another seed, another key; same seed, same key */
  struct hls_viewers *w = hls_viewers_new(16, W, 43);
  assert_int_not_equal(h(v, "192.0.2.1"), h(w, "192.0.2.1"));
  assert_int_equal(h(v, "192.0.2.1"), h(v, "192.0.2.1"));
  assert_int_not_equal(h(v, "192.0.2.1"), h(v, "192.0.2.10"));
  hls_viewers_free(w);
  hls_viewers_free(v);
}

/* One host cannot inflate the count: every address of an IPv6 /64 is one
 * viewer, and an IPv4 address is one viewer however it is written. */
static void test_one_prefix_one_viewer(void **state) {
  (void)state;
  struct hls_viewers *v = hls_viewers_new(HLS_VIEWERS_CAPACITY, W, 7);
  char addr[64];
  for (int i = 0; i < 1000; i++) { /* one /64, a thousand addresses */
    snprintf(addr, sizeof addr, "2001:db8:1:2:%x:%x::%x", i, i * 7, i + 1);
    hls_viewers_seen(v, "gala", h(v, addr), 1000 + (uint64_t)i);
  }
  hls_viewers_seen(v, "gala", h(v, "2001:db8:1:2::1"), 3000);
  assert_int_equal(hls_viewers_count(v, "gala", 3000, NULL), 1);
  hls_viewers_seen(v, "gala", h(v, "2001:db8:1:3::1"), 3001); /* the next /64: another client */
  hls_viewers_seen(v, "gala", h(v, "192.0.2.1"), 3002);
  hls_viewers_seen(v, "gala", h(v, "::ffff:192.0.2.1"), 3003); /* the same IPv4 client */
  hls_viewers_seen(v, "gala", h(v, "192.0.2.2"), 3004);
  assert_int_equal(hls_viewers_count(v, "gala", 3005, NULL), 4);
  assert_int_equal(h(v, "2001:db8:1:2::1"), h(v, "2001:DB8:1:2:ffff:ffff:ffff:ffff"));
  assert_int_not_equal(h(v, "2001:db8:1:2::1"), h(v, "2001:db8:1:3::1"));
  assert_int_not_equal(h(v, "unknown"), h(v, "192.0.2.1"));
  hls_viewers_free(v);
}

static void test_expiry(void **state) {
  (void)state;
  struct hls_viewers *v = hls_viewers_new(HLS_VIEWERS_CAPACITY, W, 1);
  hls_viewers_seen(v, "gala", h(v, "a"), 0);
  hls_viewers_seen(v, "gala", h(v, "b"), 10000);
  assert_int_equal(hls_viewers_count(v, "gala", W - 1, NULL), 2);
  assert_int_equal(hls_viewers_count(v, "gala", W, NULL), 1); /* "a": exactly a window ago */
  hls_viewers_seen(v, "gala", h(v, "b"), 35000);              /* "b" keeps watching */
  assert_int_equal(hls_viewers_count(v, "gala", 35000 + W - 1, NULL), 1);
  assert_int_equal(hls_viewers_count(v, "gala", 35000 + W, NULL), 0);
  /* gone then back: counted again, once */
  hls_viewers_seen(v, "gala", h(v, "a"), 100000);
  hls_viewers_seen(v, "gala", h(v, "a"), 100001);
  assert_int_equal(hls_viewers_count(v, "gala", 100002, NULL), 1);
  /* a clock read earlier than the last sighting does not resurrect anyone */
  assert_int_equal(hls_viewers_count(v, "gala", 5, NULL), 1);
  /* many come and go: the pool is reused, the count stays exact */
  for (int round = 0; round < 5; round++) {
    uint64_t t = 200000 + (uint64_t)round * 2 * W;
    for (int i = 0; i < 1000; i++) {
      char addr[32];
      snprintf(addr, sizeof addr, "10.%d.%d.%d", round, i / 256, i % 256);
      hls_viewers_seen(v, "gala", h(v, addr), t + (uint64_t)i);
    }
    assert_int_equal(hls_viewers_count(v, "gala", t + 1000, NULL), 1000);
  }
  assert_int_equal(hls_viewers_count(v, "gala", 200000 + 10 * W, NULL), 0);
  hls_viewers_free(v);
}

static void test_saturation(void **state) {
  (void)state;
  struct hls_viewers *v = hls_viewers_new(4, W, 7);
  bool sat = true;
  for (uint64_t i = 0; i < 4; i++)
    hls_viewers_seen(v, "gala", 100 + i, 1000 + i);
  assert_int_equal(hls_viewers_count(v, "gala", 2000, &sat), 4);
  assert_false(sat); /* full, but nobody turned away yet */
  hls_viewers_seen(v, "gala", 200, 2000);
  hls_viewers_seen(v, "gala", 201, 2001);
  assert_int_equal(hls_viewers_count(v, "gala", 2002, &sat), 4); /* stays at the bound */
  assert_true(sat);
  hls_viewers_seen(v, "gala", 101, 2003); /* those counted are still refreshed */
  /* the first entries expire: room again, and a newcomer is counted */
  hls_viewers_seen(v, "gala", 300, 1000 + W);
  assert_int_equal(hls_viewers_count(v, "gala", 1000 + W, &sat), 4);
  assert_true(sat);                                                  /* a refusal within the last window */
  assert_int_equal(hls_viewers_count(v, "gala", 2001 + W, &sat), 2); /* 101 and 300 */
  assert_false(sat);
  /* the other channel has its own bound */
  hls_viewers_seen(v, "news", 100, 3000);
  assert_int_equal(hls_viewers_count(v, "news", 3000, &sat), 1);
  assert_false(sat);
  hls_viewers_free(v);
}

static void test_collisions(void **state) {
  (void)state;
  /* capacity 8: 16 slots; these keys share home slot 3 and the next
   * keys' home slots are inside their run, so removal must shift back */
  struct hls_viewers *v = hls_viewers_new(8, W, 0);
  const uint64_t same[] = {3, 3 + 16, 3 + 32, 3 + (1ULL << 40)};
  for (int i = 0; i < 4; i++)
    hls_viewers_seen(v, "gala", same[i], (uint64_t)i);
  hls_viewers_seen(v, "gala", 4, 10);  /* home 4, displaced to slot 7 */
  hls_viewers_seen(v, "gala", 15, 11); /* home 15: wraps to slot 0 */
  hls_viewers_seen(v, "gala", 31, 12); /* home 15: slot 1 */
  assert_int_equal(hls_viewers_count(v, "gala", 20, NULL), 7);
  /* seen again: found along their runs, not added twice */
  for (int i = 0; i < 4; i++)
    hls_viewers_seen(v, "gala", same[i], 100);
  hls_viewers_seen(v, "gala", 4, 100);
  hls_viewers_seen(v, "gala", 31, 100);
  assert_int_equal(hls_viewers_count(v, "gala", 100, NULL), 7);
  /* 15 (the start of the wrapped run) expires: 31 must still be found */
  assert_int_equal(hls_viewers_count(v, "gala", 11 + W, NULL), 6);
  hls_viewers_seen(v, "gala", 31, 11 + W);
  assert_int_equal(hls_viewers_count(v, "gala", 11 + W, NULL), 6);
  /* expire the middle of the slot-3 run one by one: the rest stay found */
  hls_viewers_seen(v, "gala", same[0], 11 + W);
  hls_viewers_seen(v, "gala", same[2], 11 + W);
  hls_viewers_seen(v, "gala", 4, 11 + W);
  /* at 100 + W: same[1], same[3] (seen at 100) expire, the rest stay */
  assert_int_equal(hls_viewers_count(v, "gala", 100 + W, NULL), 4);
  hls_viewers_seen(v, "gala", same[0], 100 + W);
  hls_viewers_seen(v, "gala", same[2], 100 + W);
  hls_viewers_seen(v, "gala", 4, 100 + W);
  hls_viewers_seen(v, "gala", 31, 100 + W);
  assert_int_equal(hls_viewers_count(v, "gala", 100 + W, NULL), 4);
  /* the expired ones come back: one entry each */
  hls_viewers_seen(v, "gala", same[1], 101 + W);
  hls_viewers_seen(v, "gala", same[3], 101 + W);
  hls_viewers_seen(v, "gala", same[1], 102 + W);
  assert_int_equal(hls_viewers_count(v, "gala", 102 + W, NULL), 6);
  /* a full 64-bit collision is one viewer (documented) */
  hls_viewers_seen(v, "gala", same[3], 103 + W);
  assert_int_equal(hls_viewers_count(v, "gala", 103 + W, NULL), 6);
  hls_viewers_free(v);
}

static void test_many_in_one_run(void **state) {
  (void)state;
  /* every key in one home slot, filled to the bound, expired in turns
   * while others are refreshed: the index stays consistent throughout */
  struct hls_viewers *v = hls_viewers_new(64, 100, 0);
  uint64_t t = 0;
  for (int round = 0; round < 50; round++) {
    for (uint64_t i = 0; i < 64; i++)
      if ((i + (uint64_t)round) % 3 != 0)
        hls_viewers_seen(v, "gala", 5 + (i << 20), t);
    t += 60;
    for (uint64_t i = 0; i < 64; i++)
      if ((i + (uint64_t)round) % 3 == 0)
        hls_viewers_seen(v, "gala", 5 + (i << 20), t);
    /* the first group is 60 old, the second fresh: all 64 live */
    assert_int_equal(hls_viewers_count(v, "gala", t, NULL), 64);
    t += 50; /* now the first group has expired */
    uint32_t expect = 0;
    for (uint64_t i = 0; i < 64; i++)
      expect += (i + (uint64_t)round) % 3 == 0;
    assert_int_equal(hls_viewers_count(v, "gala", t, NULL), expect);
  }
  hls_viewers_free(v);
}

static void test_channel_bound(void **state) {
  (void)state;
  struct hls_viewers *v = hls_viewers_new(4, W, 0);
  char name[32];
  for (int i = 0; i < HLS_VIEWERS_MAX_CHANNELS; i++) {
    snprintf(name, sizeof name, "ch%d", i);
    hls_viewers_seen(v, name, 1, 0);
  }
  hls_viewers_seen(v, "late", 1, 10); /* no room: not counted */
  assert_int_equal(hls_viewers_count(v, "late", 10, NULL), 0);
  hls_viewers_seen(v, "ch1", 1, W);  /* ch1 stays watched */
  hls_viewers_seen(v, "late", 1, W); /* ch0 idle for a window: taken over */
  assert_int_equal(hls_viewers_count(v, "late", W, NULL), 1);
  assert_int_equal(hls_viewers_count(v, "ch0", W, NULL), 0);
  assert_int_equal(hls_viewers_count(v, "ch1", W, NULL), 1);
  /* a name too long for any channel is not counted */
  char longname[100];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  hls_viewers_seen(v, longname, 1, W);
  assert_int_equal(hls_viewers_count(v, longname, W, NULL), 0);
  assert_null(hls_viewers_new(0, W, 0));
  hls_viewers_free(NULL);
  hls_viewers_free(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_distinct),      cmocka_unit_test(test_one_prefix_one_viewer),
      cmocka_unit_test(test_expiry),        cmocka_unit_test(test_saturation),
      cmocka_unit_test(test_collisions),    cmocka_unit_test(test_many_in_one_run),
      cmocka_unit_test(test_channel_bound),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
