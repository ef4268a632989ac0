/* hls_store_int: what the store (hls_store.c) offers the other files of
 * transcoder/hls/ beside the public hls_store.h: the stream as the HTTP
 * side reads it, parked requests, the rendered playlists, and the sink its
 * packagers push into (tests feed parts through it). Not for other
 * modules. Loop thread only, except hls_stream_sink's callbacks (the
 * packagers' threads). */
#ifndef GALARELAY_HLS_STORE_INT_H
#define GALARELAY_HLS_STORE_INT_H

#include <uv.h>

#include "transcoder/hls/hls_model.h"

struct hls_packager_sink;

void hls__stream_view(struct hls_stream *st, struct hls_stream_view *v);
struct hls_rendition *hls__stream_rendition(struct hls_stream *st, const char *name);

/* Waiters: on a rendition, or on the stream (master playlist: woken when an
 * init arrives or a timeline begins). */
void hls__waiter_add(struct hls_rendition *r, struct hls_waiter *w);
void hls__waiter_add_stream(struct hls_stream *st, struct hls_waiter *w);
void hls__waiter_cancel(struct hls_waiter *w); /* the client left */
uv_loop_t *hls__server_loop(struct hls_server *srv);
/* hls.max_parked_per_address as of the last start or reload; 0 = no bound. */
int hls__server_max_parked_per_address(const struct hls_server *srv);

/* The cached rendered playlist (one reference for the caller), rendered on
 * first use after a change. */
struct hls_blob *hls__rendition_playlist(struct hls_rendition *r);
struct hls_blob *hls__stream_master(struct hls_stream *st);

/* The sink hls_stream_packager() gives its packagers. */
void hls__stream_sink(struct hls_stream *st, struct hls_packager_sink *out);

#endif
