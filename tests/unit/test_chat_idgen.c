/* Unit tests for chat/idgen: fixed width, string order = publish order
 * (also when the clock steps back or 4096 ids share a ms), two nodes in
 * one ms never collide, the floor a restart takes from the archive, and
 * the older hex ids sorting before every new one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "chat/idgen.h"

#define T0 1764800000000ull /* 2025-12-03 */

static const char alphabet[] = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

static void test_format_and_order(void **state) {
  (void)state;
  /* the alphabet's ASCII order is its digit order */
  for (size_t i = 1; i < 64; i++)
    assert_true(alphabet[i - 1] < alphabet[i]);
  struct idgen g;
  idgen_init(&g, 0xa1b2c3);
  char prev[IDGEN_LEN + 1] = "", id[IDGEN_LEN + 1];
  uint64_t ms;
  uint32_t seq, node;
  for (uint64_t k = 0; k < 20000; k++) {
    idgen_make(&g, T0 + k / 7, id); /* seven ids a ms */
    assert_int_equal(strlen(id), IDGEN_LEN);
    assert_int_equal(strspn(id, alphabet), IDGEN_LEN);
    assert_true(strcmp(prev, id) < 0);
    assert_int_equal(idgen_parse(id, &ms, &seq, &node), 0);
    assert_int_equal(ms, T0 + k / 7);
    assert_int_equal(seq, k % 7);
    assert_int_equal(node, 0xa1b2c3);
    memcpy(prev, id, sizeof(id));
  }
  assert_int_equal(idgen_parse("0123456789abcdef01234", &ms, &seq, &node), -1);
  assert_int_equal(idgen_parse("0123456789ab!", &ms, &seq, &node), -1);
}

static void test_clock_steps_back(void **state) {
  (void)state;
  struct idgen g;
  idgen_init(&g, 1);
  char prev[IDGEN_LEN + 1], id[IDGEN_LEN + 1];
  idgen_make(&g, T0 + 5000, prev);
  /* NTP steps the clock back 5 s: ids go on after the last one */
  for (int k = 0; k < 10000; k++) {
    idgen_make(&g, T0 + (uint64_t)k / 10, id);
    assert_true(strcmp(prev, id) < 0);
    memcpy(prev, id, sizeof(id));
  }
  /* and the clock catching up is taken at once */
  idgen_make(&g, T0 + 60000, id);
  uint64_t ms;
  uint32_t seq, node;
  assert_int_equal(idgen_parse(id, &ms, &seq, &node), 0);
  assert_int_equal(ms, T0 + 60000);
  assert_int_equal(seq, 0);
}

static void test_many_in_one_ms(void **state) {
  (void)state;
  struct idgen g;
  idgen_init(&g, 2);
  char prev[IDGEN_LEN + 1] = "", id[IDGEN_LEN + 1];
  for (int k = 0; k < 3 * (IDGEN_SEQ_MAX + 1); k++) { /* three ms' worth, clock stuck */
    idgen_make(&g, T0, id);
    assert_true(strcmp(prev, id) < 0);
    memcpy(prev, id, sizeof(id));
  }
  uint64_t ms;
  uint32_t seq, node;
  assert_int_equal(idgen_parse(id, &ms, &seq, &node), 0);
  assert_int_equal(ms, T0 + 2); /* borrowed two ms ahead */
  assert_int_equal(seq, IDGEN_SEQ_MAX);
}

/* Two nodes (a Redis bus) publishing in the same ms, with the same
 * sequence, make different ids; each node's ids stay in order. */
static void test_two_nodes_one_ms(void **state) {
  (void)state;
  struct idgen a, b;
  idgen_init(&a, 0x000001);
  idgen_init(&b, 0x000002);
  char ia[IDGEN_LEN + 1], ib[IDGEN_LEN + 1];
  for (int k = 0; k < 5000; k++) {
    idgen_make(&a, T0, ia);
    idgen_make(&b, T0, ib);
    assert_string_not_equal(ia, ib);
    assert_memory_equal(ia, ib, 9); /* same ms and sequence: only the node differs */
  }
  /* a later ms sorts after, whichever node made it */
  idgen_make(&a, T0 + 100, ia);
  assert_true(strcmp(ib, ia) < 0);
}

/* A restart (new node id) with the clock set back: fed the newest id of
 * the archive, the new process's ids sort after it, also when that id is
 * another node's in the same ms. */
static void test_floor_across_restart(void **state) {
  (void)state;
  struct idgen before, after;
  idgen_init(&before, 0xffffff);
  char last[IDGEN_LEN + 1], id[IDGEN_LEN + 1];
  for (int k = 0; k < 100; k++)
    idgen_make(&before, T0 + 9000, last);
  idgen_init(&after, 0x000000); /* the lowest node: only the sequence can order it */
  assert_int_equal(idgen_floor(&after, last), 0);
  idgen_make(&after, T0, id); /* the clock is 9 s behind */
  assert_true(strcmp(last, id) < 0);
  /* an older floor changes nothing; a string of another format is refused */
  char older[IDGEN_LEN + 1];
  idgen_init(&before, 3);
  idgen_make(&before, T0 - 1000, older);
  assert_int_equal(idgen_floor(&after, older), 0);
  char next[IDGEN_LEN + 1];
  idgen_make(&after, T0, next);
  assert_true(strcmp(id, next) < 0);
  assert_int_equal(idgen_floor(&after, "19ae2a628000000abcdef"), -1);
}

/* An archive written before holds 21-hex-digit ids (the ms first, a
 * decimal digit until 2318): they sort before every new id, even one made
 * earlier by the clock. */
static void test_older_hex_ids_sort_first(void **state) {
  (void)state;
  char old[32], id[IDGEN_LEN + 1];
  snprintf(old, sizeof(old), "%011llx%04x%s", (unsigned long long)(T0 + 3600000), 0xffff, "ffffff");
  assert_int_equal(strlen(old), 21);
  struct idgen g;
  idgen_init(&g, 0);
  idgen_make(&g, T0, id);
  assert_true(strcmp(old, id) < 0);
  idgen_init(&g, 0);
  idgen_make(&g, 11ull << 36, id); /* 1993: already a letter first */
  assert_true(id[0] >= 'A');
  assert_true(strcmp("9fffffffffffffffffffff", id) < 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format_and_order),     cmocka_unit_test(test_clock_steps_back),
      cmocka_unit_test(test_many_in_one_ms),       cmocka_unit_test(test_two_nodes_one_ms),
      cmocka_unit_test(test_floor_across_restart), cmocka_unit_test(test_older_hex_ids_sort_first),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
