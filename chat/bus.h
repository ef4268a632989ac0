/* bus: fan-out of chat events between rooms, on one node or across nodes.
 *
 * A room publishes each accepted event (the JSON event object of docs/protocol.md's
 * batch: comment, delete, clear, state, ...) on its channel; every node's
 * subscriber callback receives it, in one order shared by all nodes.
 *
 * Local mode (no redis.url): bus_publish queues the event and the bus
 * delivers it on the next loop iteration, in publish order (never from
 * inside bus_publish, so a room may publish while it iterates).
 *
 * Redis mode (redis.url = redis://[[USER]:PASSWORD@]HOST:PORT): one Redis
 * pub/sub channel per room, named redis.prefix + channel. Two hiredis async
 * contexts on the loop: one PUBLISHes, one SUBSCRIBEs (a subscribed
 * connection can send nothing else); with a password each sends AUTH
 * first, on every connect (a refusal is logged once and retried like a
 * lost connection). A node delivers only what it receives from Redis, its
 * own events included: that is what gives every node the same order.
 * The wire message is bus_envelope's: the event sealed with an HMAC keyed
 * with redis.secret (required with a url). A message without a valid
 * HMAC is dropped and counted (galarelay_chat_bus_rejected_total
 * {reason="hmac"}, and a log line at most every 10 s): whoever can reach
 * Redis cannot make a node show a comment or apply a ban. Nor replay one
 * it saw: an event whose origin's seq is not above the last delivered, or
 * whose signed ts is more than a minute from our clock, is dropped too
 * ({reason="replay"}).
 *
 * Redis going away never stops local delivery: while Redis is down (or the
 * room's SUBSCRIBE is not confirmed yet) bus_publish delivers locally
 * directly (counted). Every published event stays in a backlog until it
 * comes back from Redis; when the PUBLISH fails or the subscription drops
 * before that, it is delivered locally instead (so a node may, rarely, see
 * an event twice around a Redis failure: dedupe by event id if it
 * matters). Reconnect: our own uv timer, backoff 100 ms doubling to 5 s,
 * connect timeout 2 s, then SUBSCRIBE again to every room's channel.
 * Events published while a node was disconnected are lost *to that node*
 * (Redis pub/sub keeps nothing).
 *
 * Backlog bound: BUS_BACKLOG_BYTES of events sent to Redis and not yet
 * seen back. Past it, bus_publish delivers locally only (other nodes miss
 * that event; counted as galarelay_chat_bus_backlog_full_total).
 *
 * Ids (bus_make_id): chat/idgen's, 13 characters, fixed width, so string
 * order = numeric order: ms since the epoch, a sequence within the ms, and
 * this node's id (the 24 random bits of bus_node_id). Strictly increasing
 * per node (the clock going back or 4096 ids in one ms borrow the next
 * ms), unique across nodes, made without a round trip (Redis INCR would
 * add latency to every comment and stop ids while Redis is down). Across
 * nodes they sort in publish time order up to the clock skew between
 * nodes (NTP: a few ms); display order is Redis' order. bus_id_floor
 * (fed the archive's newest ids at start) keeps them sorting after every
 * earlier id of the channel across a restart with the clock set back.
 *
 * Threading: loop thread only. */
#ifndef GALARELAY_CHAT_BUS_H
#define GALARELAY_CHAT_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct buf;
struct config_redis;
struct bus;

#define BUS_ID_LEN 32 /* buffer size for bus_make_id (IDGEN_LEN + NUL) and other ids */
#define BUS_BACKLOG_BYTES (4u << 20)
#define BUS_MAX_CHANNEL 64

struct bus_msg {
  const char *channel; /* the room's channel name (without the prefix) */
  const char *origin;  /* node id of the publisher */
  uint64_t seq;        /* per-origin publish sequence */
  const char *json;    /* the event, exactly as published; NOT NUL-terminated */
  size_t len;
  int local; /* 1 = delivered without going through Redis */
};

/* Called on the loop thread; m and its strings are valid only during the
 * call. It may call bus_publish (delivered later, never re-entered). */
typedef void (*bus_deliver_fn)(void *opaque, const struct bus_msg *m);

/* Starts in local or Redis mode depending on redis->url (a bad URL, or
 * a url without redis->secret, is an error: NULL). In Redis mode the first
 * connect starts at once. The section is read at start only (prefix, url,
 * secret): not kept. */
struct bus *bus_start(uv_loop_t *loop, const struct config_redis *redis, bus_deliver_fn deliver, void *opaque);

/* Rooms come and go with config reloads. Only subscribed channels are
 * delivered. Returns 0, -EINVAL on a bad name (empty, too long), -ENOMEM. */
int bus_subscribe_channel(struct bus *b, const char *channel);
void bus_unsubscribe_channel(struct bus *b, const char *channel);

/* json: one complete JSON value (the bus inserts it verbatim into its
 * envelope). Returns 0 when the event will be delivered (through Redis or
 * locally), or why it cannot: -ENOENT (channel not subscribed), -ENOMEM,
 * -ECANCELED (stopping). */
int bus_publish(struct bus *b, const char *channel, const char *json, size_t len);

/* Asynchronous: closes every uv handle and hiredis context; frees the bus
 * when the last close callback has run, then calls cb(arg) (cb may be
 * NULL). Keep running the loop: uv_run returns by itself and
 * uv_loop_close() is then 0. Events not yet delivered are dropped; no
 * deliver callback runs after bus_stop returns. */
void bus_stop(struct bus *b, void (*cb)(void *arg), void *arg);

void bus_make_id(struct bus *b, char out[BUS_ID_LEN]);
/* Ids made from now on sort after id (an id of bus_make_id's format): 0;
 * -1 and no change for anything else (an id of the older hex format sorts
 * before every new one anyway). */
int bus_id_floor(struct bus *b, const char *id);
const char *bus_node_id(const struct bus *b);     /* 6 hex chars */
bool bus_is_redis_connected(const struct bus *b); /* both contexts are up */
/* Whether events published on channel go through Redis now (both
 * contexts up and its SUBSCRIBE confirmed); false in local mode. For tests
 * and health. */
bool bus_is_channel_via_redis(const struct bus *b, const char *channel);

struct bus_stats {
  uint64_t published;        /* bus_publish calls accepted */
  uint64_t delivered;        /* deliver callbacks */
  uint64_t local_direct;     /* delivered without Redis (down / not subscribed yet) */
  uint64_t redis_published;  /* PUBLISH replies OK */
  uint64_t redis_received;   /* messages from the subscription */
  uint64_t publish_failures; /* PUBLISH error or lost: delivered locally instead */
  uint64_t backlog_full;
  uint64_t malformed;       /* messages from Redis we could not read */
  uint64_t rejected_mac;    /* messages without a valid HMAC: dropped */
  uint64_t rejected_replay; /* signed, but seen before or too old: dropped */
  uint64_t reconnects;      /* successful connects after the first */
  uint64_t backlog_bytes;
  int redis_connected;
};
void bus_get_stats(const struct bus *b, struct bus_stats *out);

/* Prometheus text: galarelay_chat_bus_* and galarelay_redis_connected. */
void bus_metrics(const struct bus *b, struct buf *out);

#endif
