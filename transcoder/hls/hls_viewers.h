/* hls_viewers: how many are watching a channel's HLS, as the origin sees it.
 *
 * A viewer is a distinct client address (http_request.client_addr: the
 * peer, or the last X-Forwarded-For entry behind server.trusted_proxy)
 * that fetched anything under /hls/CHANNEL/ in the last window (30 s);
 * an IPv6 client is its /64 (hls_addr_key), so one host cycling through
 * the addresses of its prefix counts once.
 * Behind an edge cache most fetches never reach the origin, so the count
 * is of the edges' addresses and whoever bypasses them (docs/runbook.md).
 *
 * Per channel, a bounded open-addressing hash set keyed by a seeded 64-bit
 * hash of the address, holding when it was last seen. Entries are also on
 * an age list (oldest first): a sighting moves its entry to the newest end,
 * and expiry takes entries off the oldest end, so the count is kept
 * running and a request costs O(1) (a probe, a list move, at most
 * HLS_VIEWERS_EXPIRE_STEP expiries); asking for the count expires whatever
 * is left over. Two addresses with the same 64-bit hash count as one.
 *
 * Bound: at most `capacity` addresses per channel. When every entry is a
 * live viewer, a new address is not recorded: the count stays at capacity
 * and the channel reads as saturated until a window has passed without a
 * refusal. Memory: 24 bytes per entry plus a 4-byte index slot for half of
 * the load (2 x capacity slots) = 32 bytes x capacity; at the default
 * 65536, 2 MiB per channel, allocated on the channel's first HLS request
 * (calloc: pages are touched as viewers arrive). At most
 * HLS_VIEWERS_MAX_CHANNELS channels; past it a channel nobody has watched
 * for a window is reused, else the newcomer is not counted.
 *
 * Loop thread only. Time is passed in (uv_now in the daemon, anything in
 * tests) and must not go backwards. */
#ifndef GALARELAY_HLS_VIEWERS_H
#define GALARELAY_HLS_VIEWERS_H

#include <stdbool.h>
#include <stdint.h>

#define HLS_VIEWERS_WINDOW_MS 30000
#define HLS_VIEWERS_CAPACITY 65536
#define HLS_VIEWERS_MAX_CHANNELS 64
/* expiries done by one sighting (the backlog is also drained by counts) */
#define HLS_VIEWERS_EXPIRE_STEP 4

struct hls_viewers;

/* capacity: 1 .. 2^30 addresses per channel; seed: a random value that
 * keys the address hash (so no one can choose addresses that collide). */
struct hls_viewers *hls_viewers_new(uint32_t capacity, uint64_t window_ms, uint64_t seed);
void hls_viewers_free(struct hls_viewers *v);

/* The key of a client address under a seed: an IPv4 address is one key
 * ("::ffff:" mapped or not), an IPv6 address counts by its /64 (every
 * address of one /64 is one viewer), anything else by its text. */
uint64_t hls_addr_key(uint64_t seed, const char *addr);
/* hls_addr_key under this set's seed. */
uint64_t hls_viewers_hash(const struct hls_viewers *v, const char *addr);

/* A fetch from the address whose hash is addr_hash. */
void hls_viewers_seen(struct hls_viewers *v, const char *channel, uint64_t addr_hash, uint64_t now_ms);

/* Distinct addresses seen in the last window (0 for a channel never seen).
 * *saturated (may be NULL): an address was turned away for want of room
 * within the last window, so the count is a lower bound. */
uint32_t hls_viewers_count(struct hls_viewers *v, const char *channel, uint64_t now_ms, bool *saturated);

#endif
