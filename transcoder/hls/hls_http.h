/* hls_http: serves the HLS store over HTTP from memory, on the loop thread.
 *
 * URLs (all found from the multivariant playlist):
 *   /hls/CHANNEL/master.m3u8                 multivariant playlist (404 when not live)
 *   /hls/CHANNEL/RENDITION/index.m3u8        media playlist; ?_HLS_msn=M[&_HLS_part=P]
 *                                            blocks until that part exists
 *   /hls/CHANNEL/RENDITION/init-T.mp4        init segment of timeline T
 *   /hls/CHANNEL/RENDITION/seg-MSN.m4s       a whole segment (its parts concatenated)
 *   /hls/CHANNEL/RENDITION/part-T-SEQ.m4s    an LL-HLS part; the preload-hinted
 *                                            next part is answered when it completes
 * Playlists: Cache-Control: no-cache; media: immutable, one year. Every
 * answer carries Access-Control-Allow-Origin: *. Blocking requests are
 * parked (http_park) and answered from the store's wake-ups, or after
 * hls.block_timeout with what there is. Parked requests are bounded per
 * client address (hls.max_parked_per_address; an IPv6 /64 is one address)
 * and in all: past either bound a blocking request is answered 503 with
 * Retry-After at once. Query arguments other than _HLS_msn, _HLS_part and
 * _HLS_skip are ignored, so they never make a request distinct. Bodies are
 * refcounted blobs handed to http_respond(), never copied per viewer. */
#ifndef GALARELAY_HLS_HTTP_H
#define GALARELAY_HLS_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "transcoder/hls/hls_store.h"

struct buf;
struct config_channel;
struct config_hls;
struct http_request;

/* Make the store (hls_server_new: the hls section and state_dir are copied)
 * and register the "/hls/" route, which serves this store until
 * hls_http_stop. Call before the lws context is created. One per
 * process (the route table is). */
struct hls_server *hls_http_start(uv_loop_t *loop, const struct config_hls *hls, const char *state_dir);
/* Unregisters the store from the route and stops it: asynchronous, cb(arg)
 * once its memory is gone (see hls_server_stop; cb may be NULL). */
void hls_http_stop(struct hls_server *srv, void (*cb)(void *arg), void *arg);

/* Viewers: every GET/HEAD under /hls/CHANNEL/ of a channel the store knows
 * records req->client_addr (transcoder/hls/hls_viewers.h: distinct addresses
 * in the last 30 s, bounded per channel). The count now; 0 for a channel
 * never fetched. *saturated (may be NULL): the count hit its bound. */
uint32_t hls_http_viewers(struct hls_server *srv, const char *channel, bool *saturated);
/* Prometheus lines for the configured channels (chans, at most
 * CONFIG_MAX_CHANNELS): galarelay_hls_viewers{channel} and
 * galarelay_hls_viewers_saturated{channel}; and
 * galarelay_hls_parked_refused_total{reason="address"|"server"} (the
 * parked ones: galarelay_hls_parked_requests, hls_server_metrics). */
void hls_http_metrics(struct hls_server *srv, const struct config_channel *chans, int chan_count, struct buf *out);

/* The route handler (registered by hls_http_start; exposed for tests). */
int hls_http_handle(struct http_request *req);

#endif
