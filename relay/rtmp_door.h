/* rtmp_door: who may hold one of the RTMP server's connection slots, so
 * that no number of players, idle or half-open connections, from one
 * address or many, keeps an encoder with a valid key out. Socket-free and
 * clock-free (the caller passes the time); the server (relay/rtmp_server.c)
 * embeds one rtmp_door_entry per connection and closes the connections the
 * door names.
 *
 * A connection is unauthenticated from its accept until it publishes or
 * plays (and again after it stops). The policy:
 *  - Unauthenticated connections are grouped by peer address (any port,
 *    loopback included; the caller names the group, rtmp_server gives an
 *    IPv6 peer its /64), oldest first. A newcomer whose address already
 *    holds per_address of them takes the place of that address's oldest.
 *  - When the table (max_connections) is full, a newcomer takes the place
 *    of the oldest unauthenticated connection of the address holding the
 *    most of them (ties: the oldest); so a flood from some addresses makes
 *    room from itself first, never from an encoder connecting elsewhere.
 *    Only when every slot publishes or plays is the newcomer refused.
 *  - Players are capped below max_connections: they leave one slot per
 *    stream key (the most publishers there can be) plus `reserve` free, so
 *    a full audience never fills the table; those reserved slots are where
 *    encoders connect.
 *  - Over the memory ceiling, the unauthenticated together are held to
 *    `reserve` (a newcomer past it takes the oldest one's place, as above)
 *    and new players are refused; publishers still get in.
 * Loop thread only. */
#ifndef GALARELAY_RTMP_DOOR_H
#define GALARELAY_RTMP_DOOR_H

#include <stdbool.h>
#include <stdint.h>

enum rtmp_door_class {
  RTMP_DOOR_NONE, /* not in the table (new, or closing) */
  RTMP_DOOR_UNAUTH,
  RTMP_DOOR_PUBLISHER,
  RTMP_DOOR_PLAYER,
};

struct rtmp_door_peer;

/* One per connection, owned by it; the door links it into its lists. */
struct rtmp_door_entry {
  enum rtmp_door_class cls;
  uint64_t since;                      /* ms: when it entered its class */
  struct rtmp_door_peer *peer;         /* while unauthenticated */
  struct rtmp_door_entry *prev, *next; /* in peer's list, oldest first */
};

struct rtmp_door_limits {
  int max_connections;
  int per_address; /* unauthenticated connections per address */
  int reserve;     /* slots players never take, beyond one per stream key */
  int stream_keys; /* keys and backup keys configured */
  bool over_memory;
};

enum rtmp_door_verdict {
  RTMP_DOOR_ADMIT,
  RTMP_DOOR_EVICT_PER_ADDRESS, /* close *victim, then ask again */
  RTMP_DOOR_EVICT_MEMORY,
  RTMP_DOOR_EVICT_FULL,
  RTMP_DOOR_REFUSE_FULL,    /* every other slot publishes or plays */
  RTMP_DOOR_REFUSE_MEMORY,  /* a play over the memory ceiling */
  RTMP_DOOR_REFUSE_PLAYERS, /* a play past the player limit */
  RTMP_DOOR_VERDICTS
};

#define RTMP_DOOR_BUCKETS 256

struct rtmp_door {
  int count[4]; /* entries per class (count[RTMP_DOOR_NONE] unused) */
  int peers;    /* addresses with an unauthenticated connection */
  /* Address groups by hash; each peer is freed when its last
   * unauthenticated connection leaves, so there are never more peers than
   * unauthenticated connections. */
  struct rtmp_door_peer *bucket[RTMP_DOOR_BUCKETS];
};

void rtmp_door_init(struct rtmp_door *d);
/* Frees the address groups; entries still linked must not be used after. */
void rtmp_door_free(struct rtmp_door *d);

/* Move e to cls at time now (RTMP_DOOR_NONE: it leaves the table). ip
 * (the peer's address without port) is needed to enter RTMP_DOOR_UNAUTH.
 * Returns 0, or -ENOMEM (e then stays out of the table). */
int rtmp_door_set(struct rtmp_door *d, struct rtmp_door_entry *e, enum rtmp_door_class cls, const char *ip,
                  uint64_t now);

/* For a newcomer just entered as unauthenticated: admit it, or name the
 * connection that must make room (*victim: close it, which sets it to
 * RTMP_DOOR_NONE, and ask again), or refuse it. Never names the newcomer. */
enum rtmp_door_verdict rtmp_door_check(const struct rtmp_door *d, const struct rtmp_door_entry *newcomer,
                                       const struct rtmp_door_limits *lim, struct rtmp_door_entry **victim);

/* The most players there may be (0 when the reserve takes every slot). */
int rtmp_door_player_limit(const struct rtmp_door_limits *lim);

/* Whether one more connection may start to play: RTMP_DOOR_ADMIT,
 * RTMP_DOOR_REFUSE_MEMORY or RTMP_DOOR_REFUSE_PLAYERS. */
enum rtmp_door_verdict rtmp_door_check_play(const struct rtmp_door *d, const struct rtmp_door_limits *lim);

/* The metric label of a verdict: "per_address", "memory",
 * "max_connections", "player_limit" ("" for RTMP_DOOR_ADMIT). */
const char *rtmp_door_reason(enum rtmp_door_verdict v);

int rtmp_door_count(const struct rtmp_door *d, enum rtmp_door_class cls);
/* Connections in the table, whatever their class. */
int rtmp_door_total(const struct rtmp_door *d);

#endif
