/* fuzz_chat_bus: what a node does with a message read from Redis, where
 * anyone who can reach Redis may write.
 *
 * The first byte chooses the path:
 *  - even: the rest is a message as it arrives, opened with the nodes'
 *    secret (bus_envelope_open: parse, then check the HMAC); whatever the
 *    bytes, it must be refused or describe an event inside the message;
 *  - odd: the rest is an event's JSON as a node would send it: sealed
 *    (bus_envelope_seal), it must open again to the same bytes, and it is
 *    then applied to a room as chat.c's on_bus does (room_deliver), and the
 *    room's tick serialises it for a viewer and a moderator. A fuzzer cannot
 *    forge a MAC, so this is how arbitrary events reach the room.
 *
 * One room lives for the whole run (its state bounded by the room's own
 * limits), so sequences of events meet each other's state. */
#include <stdlib.h>
#include <string.h>

#include "chat/bus_envelope.h"
#include "config/config.h"
#include "core/buf.h"
#include "chat/room.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void op_wake(void *opaque, struct room_member *m) { (void)opaque, (void)m; }
static void op_kick(void *opaque, struct room_member *m, int code, const char *reason) {
  (void)opaque, (void)m, (void)code, (void)reason;
}
static void op_words(void *opaque, struct room *r, const json_t *ev) { (void)opaque, (void)r, (void)ev; }
static const struct room_ops ops = {op_wake, op_kick, op_words};

static struct room_member viewer = {.addr = "192.0.2.1", .user_id = "viewer", .name = "v", .named = true};
static struct room_member moderator = {
    .addr = "192.0.2.2", .user_id = "moderator", .name = "m", .role = ROOM_MODERATOR, .named = true};

static struct room *room_once(void) {
  static struct room *r;
  if (r)
    return r;
  static struct config cfg; /* large: not on the stack */
  config_defaults(&cfg);
  struct room_params p;
  room_params_from_config(&p, &cfg.chat, 16);
  r = room_new("gala", &p, &ops, NULL, NULL);
  if (r && (room_join(r, &viewer) != 0 || room_join(r, &moderator) != 0))
    abort();
  return r;
}

static void drain(struct room_member *m) {
  struct room_frame *f;
  while ((f = room_member_take(m)))
    room_frame_unref(f);
}

static const char secret[] = "fuzz-secret";

/* Even first byte: a message as it arrives. */
static void open_as_received(const uint8_t *msg, size_t n) {
  struct bus_envelope env;
  if (bus_envelope_open(secret, "gala", (const char *)msg, n, &env) != BUS_ENVELOPE_OK)
    return;
  if (env.event < (const char *)msg || env.event + env.event_len > (const char *)msg + n ||
      strlen(env.origin) > BUS_ENVELOPE_ORIGIN_MAX)
    abort(); /* the event must lie inside the message */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int64_t wall_ms = 1700000000000;
  static uint64_t seq;
  struct room *r = room_once();
  if (!r || size == 0)
    return 0;
  if ((data[0] & 1) == 0) {
    open_as_received(data + 1, size - 1);
    return 0;
  }
  const char *ev = (const char *)data + 1;
  size_t evlen = size - 1;
  struct buf sealed;
  buf_init(&sealed);
  if (bus_envelope_seal(&sealed, secret, "gala", "0a1b", ++seq, (uint64_t)wall_ms, ev, evlen) != 0) {
    buf_free(&sealed);
    return 0;
  }
  struct bus_envelope env;
  if (bus_envelope_open(secret, "gala", sealed.data, sealed.len, &env) != BUS_ENVELOPE_OK || env.event_len != evlen ||
      memcmp(env.event, ev, evlen) != 0 || env.seq != seq)
    abort(); /* what a node seals, every node opens, unchanged */
  buf_free(&sealed);
  json_t *event = json_loadb(ev, evlen, 0, NULL);
  if (event) {
    room_deliver(r, event, wall_ms);
    json_decref(event);
  }
  wall_ms += 50;
  room_tick(r, wall_ms);
  drain(&viewer);
  drain(&moderator);
  return 0;
}
