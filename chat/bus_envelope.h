/* bus_envelope: the signed wire form of one chat event between nodes.
 *
 * Whoever can reach the shared transport (Redis) must not be able to
 * forge a ban or a comment: every event a node sends is sealed with an
 * HMAC-SHA256 keyed with the secret all nodes share ([redis] secret), and
 * a node delivers only what opens with a valid one. The pair below is the
 * whole of it and knows nothing of sockets or of Redis, so any transport
 * (pub/sub, streams) can use it and a fuzzer can call it with bytes.
 *
 * Wire form (JSON, one line):
 *   {"origin":"NODE","seq":N,"ts":MS,"event":EVENT,"mac":"HEX"}
 * NODE: 1..15 lowercase hex digits; N: 1..19 decimal digits; MS: the
 * sender's wall clock, ms since the epoch, 1..15 digits; EVENT: the
 * event's JSON, verbatim; HEX: 64 lowercase hex digits, the HMAC-SHA256 of
 * the room's channel name, one NUL byte, then every byte of the message
 * before ,"mac": (so the channel is signed too: an event cannot be moved
 * to another room). The MAC is compared in constant time.
 *
 * A valid message captured on the transport and published again (a
 * replay) opens fine here: the receiver refuses it by origin, seq and ts
 * (bus.c), which the MAC covers.
 *
 * Threading: none; pure functions. */
#ifndef GALARELAY_CHAT_BUS_ENVELOPE_H
#define GALARELAY_CHAT_BUS_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

struct buf;

#define BUS_ENVELOPE_ORIGIN_MAX 15 /* hex digits of a node id */

/* Why a message does not open: negative codes below every errno value. */
enum {
  BUS_ENVELOPE_OK = 0,
  BUS_ENVELOPE_MALFORMED = -1101, /* not an envelope at all */
  BUS_ENVELOPE_BAD_MAC = -1102,   /* an envelope without a MAC, or with a wrong one */
};
/* "malformed", "bad_mac"; strerror(-code) for any other code. */
const char *bus_envelope_strerror(int code);

struct bus_envelope {
  char origin[BUS_ENVELOPE_ORIGIN_MAX + 1];
  uint64_t seq;
  uint64_t ts_ms;    /* 0 when absent (only in an unsigned message) */
  const char *event; /* points into the message; NOT NUL-terminated */
  size_t event_len;
};

/* Append the sealed message for (channel, origin, seq, ts_ms, event) to out.
 * secret: NUL-terminated, not empty. Returns 0, -EINVAL (bad arguments),
 * -ENOMEM (out->failed) or -EIO (OpenSSL refused). */
int bus_envelope_seal(struct buf *out, const char *secret, const char *channel, const char *origin, uint64_t seq,
                      uint64_t ts_ms, const char *event, size_t len);

/* Parse msg (n bytes, any content) received for channel and check its MAC
 * with secret: 0 or a BUS_ENVELOPE_* code. On 0 *out describes it (out->event points
 * into msg); otherwise *out is unspecified. */
int bus_envelope_open(const char *secret, const char *channel, const char *msg, size_t n, struct bus_envelope *out);

#endif
