/* fuzz_chat_bus: what a node does with a message read from Redis, where
 * anyone who can reach Redis may write: bus.c's parse_envelope (the
 * {"origin":..,"seq":..,"event":..} envelope), then, as chat.c's on_bus
 * does, the event's JSON applied to a room with room_deliver, and the
 * room's tick serialising it for a viewer and a moderator.
 *
 * parse_envelope is static in bus.c: bus.c is included here, so the
 * function is fuzzed as it is, without an extra entry point in bus.h. One
 * room lives for the whole run (its state bounded by the room's own
 * limits), so sequences of events meet each other's state. */
#include "chat/bus.c"

#include "chat/room.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void op_wake(void *opaque, struct room_member *m) { (void)opaque, (void)m; }
static void op_kick(void *opaque, struct room_member *m, int code, const char *reason) {
  (void)opaque, (void)m, (void)code, (void)reason;
}
static void op_words(void *opaque, struct room *r, const json_t *ev) { (void)opaque, (void)r, (void)ev; }
static const struct room_ops ops = {op_wake, op_kick, op_words};

static struct room_member viewer = {.addr = "192.0.2.1", .user_id = "viewer", .name = "v", .named = true};
static struct room_member moderator = {.addr = "192.0.2.2", .user_id = "moderator", .name = "m",
                                       .role = ROOM_MODERATOR, .named = true};

static struct room *room_once(void) {
  static struct room *r;
  if (r)
    return r;
  static struct config cfg; /* large: not on the stack */
  config_defaults(&cfg);
  struct room_params p;
  room_params_from_config(&p, &cfg, 16);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int64_t wall_ms = 1700000000000;
  struct room *r = room_once();
  char origin[16];
  uint64_t seq;
  const char *ev;
  size_t evlen;
  if (!r || parse_envelope((const char *)data, size, origin, &seq, &ev, &evlen) != 0)
    return 0;
  if (ev < (const char *)data || ev + evlen > (const char *)data + size || strlen(origin) > 15)
    abort(); /* the event must lie inside the message */
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
