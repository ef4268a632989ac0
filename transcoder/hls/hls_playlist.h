/* hls_playlist: renders playlists (RFC 8216bis, LL-HLS) from the store's
 * state. Pure text building, loop thread (it reads the model). URIs are
 * relative: master.m3u8 points at RENDITION/index.m3u8, a media playlist at
 * init-T.mp4, seg-MSN.m4s, part-T-SEQ.m4s and ../OTHER/index.m3u8. */
#ifndef GALARELAY_HLS_PLAYLIST_H
#define GALARELAY_HLS_PLAYLIST_H

#include <stdint.h>

#include "transcoder/hls/hls_model.h"

struct buf;

/* Multivariant playlist; -ENOENT when no rendition has an init segment yet. */
int hls_playlist_master(struct buf *out, const struct hls_stream_view *v);
/* Media playlist of r; -ENOENT when it has no segment yet. */
int hls_playlist_media(struct buf *out, const struct hls_rendition *r, const struct hls_stream_view *v);
/* "2026-11-28T12:00:00.123Z" (UTC). */
void hls_format_pdt(int64_t ms, char *out, size_t size);

#endif
