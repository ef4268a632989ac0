/* rtmp_push: restream of a channel's active feed to an rtmp:// target.
 * Loop thread only; relay/restream starts and stops the pushes.
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

#include <uv.h>

struct channel;
struct rtmp_push;

/* What a push reads of [rtmp] while it runs. Its owner (relay/restream)
 * keeps one copy for all its pushes and updates it on reload; the pushes
 * read it at each use. */
struct rtmp_push_limits {
  size_t queue_bytes; /* rtmp.player_queue_bytes: the send queue's bound */
  double retry_max_s; /* rtmp.push_retry_max: the backoff's ceiling */
};

/* Runs on loop, a sink of ch, until rtmp_push_stop. lim must outlive the
 * push. url: rtmp://HOST[:PORT]/APP/STREAM (the last path segment is the
 * stream name, everything before it the app). NULL (logged) if the URL is
 * not usable or on no memory. */
struct rtmp_push *rtmp_push_start(uv_loop_t *loop, const struct rtmp_push_limits *lim, struct channel *ch,
                                  const char *url);
/* Asynchronous teardown: unsubscribes from the channel at once (the
 * channel may go right after), closes the connection, and calls cb(arg)
 * (cb may be NULL) once its handles are closed and its memory freed. */
void rtmp_push_stop(struct rtmp_push *p, void (*cb)(void *arg), void *arg);

/* "idle", "connecting", "publishing", "backoff". */
const char *rtmp_push_state(const struct rtmp_push *p);
/* The target as logs show it: its stream key replaced by "***". */
const char *rtmp_push_url(const struct rtmp_push *p);
uint64_t rtmp_push_bytes_sent(const struct rtmp_push *p);
uint64_t rtmp_push_reconnects(const struct rtmp_push *p);

/* Split an rtmp:// URL; exposed for tests. Returns 0 or -EINVAL. */
int rtmp_push_parse_url(const char *url, char *host, size_t host_len, uint16_t *port, char *app, size_t app_len,
                        char *stream, size_t stream_len);

#endif
