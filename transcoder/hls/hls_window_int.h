/* hls_window_int: one rendition's window of segments and parts (the types are
 * in hls_model.h). The store (hls_store.c) owns the renditions and changes
 * them only through these functions; the playlist renderer and the HTTP
 * side read them through the lookups. The window keeps its own rules (how
 * long a segment's parts stay listed, what TARGETDURATION is) and is given
 * what it needs from the stream, the configured segment duration, as an
 * argument: it never reaches up to the store. Loop thread only. */
#ifndef GALARELAY_HLS_WINDOW_INT_H
#define GALARELAY_HLS_WINDOW_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "transcoder/hls/hls_model.h"

struct hls_part_info;

/* A rendition of stream st (kept only as a back pointer for the owner);
 * NULL when out of memory. */
struct hls_rendition *hls__rendition_new(struct hls_stream *st, const struct hls_rendition_desc *d);
void hls__rendition_free(struct hls_rendition *r);

/* The open segment (last, not complete) or NULL; the last complete one. */
struct hls_segment *hls__rendition_open(const struct hls_rendition *r);
struct hls_segment *hls__rendition_last_complete(const struct hls_rendition *r);
struct hls_segment *hls__rendition_segment(const struct hls_rendition *r, uint64_t msn);
struct hls_blob *hls__rendition_init(const struct hls_rendition *r, uint32_t timeline);
/* A part still in memory, or NULL. */
struct hls_blob *hls__rendition_part(const struct hls_rendition *r, uint32_t timeline, uint64_t seq);
/* Does the playlist hold segment msn (part < 0: complete) / its part `part`,
 * or anything later? */
bool hls__rendition_has(const struct hls_rendition *r, uint64_t msn, int part);
/* The last segment with media and its last part index (-1 if none): for
 * _HLS_msn/_HLS_part limits and EXT-X-RENDITION-REPORT. false if empty. */
bool hls__rendition_last(const struct hls_rendition *r, uint64_t *msn, int *part);

/* TARGETDURATION: segment_target (the configured segment duration of the
 * stream's timeline) rounded, or longer if a segment was; at least 1. */
int hls__rendition_target_duration(const struct hls_rendition *r, double segment_target);
/* How many segments from the end list their parts: the last three target
 * durations, at least the open one. */
int hls__rendition_part_segments(const struct hls_rendition *r, double segment_target);

/* Takes the blob's reference. */
void hls__rendition_set_init(struct hls_rendition *r, uint32_t timeline, struct hls_blob *init, const char *codecs);
/* Close the open segment (concatenating its parts); returns it or NULL. */
struct hls_segment *hls__rendition_close(struct hls_rendition *r);
/* Open segment msn (closes the open one first). */
struct hls_segment *hls__rendition_open_segment(struct hls_rendition *r, uint64_t msn, uint32_t timeline,
                                                int64_t pdt_ms);
/* Append a part to the open segment; takes the blob's reference. 0, or
 * -ENOENT when no segment is open, -ENOMEM (the blob is released). */
int hls__rendition_add_part(struct hls_rendition *r, const struct hls_part_info *info, struct hls_blob *data);
/* Keep `window` complete segments (plus the open one); drop part buffers
 * that left the playlist (segment_target as for the part rule above); drop
 * inits no segment uses. */
void hls__rendition_trim(struct hls_rendition *r, int window, double segment_target);

#endif
