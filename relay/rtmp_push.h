/* rtmp_push: restream of a channel's active feed to an rtmp:// target.
 *
 * A push is a channel sink. When the channel goes live it connects (plain
 * handshake, connect / releaseStream / FCPublish / createStream / publish),
 * sends the metadata and sequence headers, then the media from the next
 * keyframe on, sharing the chunked bytes players get. On any error it
 * closes and retries with exponential backoff (1 s doubling, capped at
 * rtmp.push_retry_max). It never slows ingest: its send queue is bounded
 * by rtmp.player_queue_bytes and past it the push skips to the next
 * keyframe, like a slow player. */
#ifndef GALARELAY_RTMP_PUSH_H
#define GALARELAY_RTMP_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct app;
struct buf;
struct channel;
struct rtmp_push;

/* url: rtmp://HOST[:PORT]/APP/STREAM (the last path segment is the stream
 * name, everything before it the app). NULL if the URL is not usable. */
struct rtmp_push *rtmp_push_start(struct app *app, struct channel *ch, const char *url);
/* Unsubscribe and close; memory is freed in the close callbacks. */
void rtmp_push_stop(struct rtmp_push *p);

/* "idle", "connecting", "publishing", "backoff". */
const char *rtmp_push_state(const struct rtmp_push *p);
/* The target as logs show it: its stream key replaced by "***". */
const char *rtmp_push_url(const struct rtmp_push *p);
uint64_t rtmp_push_bytes_sent(const struct rtmp_push *p);
uint64_t rtmp_push_reconnects(const struct rtmp_push *p);

/* Split an rtmp:// URL; exposed for tests. Returns 0 or -1. */
int rtmp_push_parse_url(const char *url, char *host, size_t host_len, uint16_t *port, char *app,
                        size_t app_len, char *stream, size_t stream_len);

#endif
