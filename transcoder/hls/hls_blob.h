/* hls_blob: a refcounted, immutable byte buffer for fMP4 media (init
 * segments, LL-HLS parts, whole segments) and rendered playlists.
 *
 * A blob is filled once by its creator and then only read. Every holder
 * takes a reference (hls_blob_ref) and drops it (hls_blob_unref); the last
 * unref frees it. The count is atomic because parts are made on transcoder
 * threads and served on the loop thread. hls_blob_release matches the
 * http_respond() release callback, so one buffer serves every viewer. */
#ifndef GALARELAY_HLS_BLOB_H
#define GALARELAY_HLS_BLOB_H

#include <stddef.h>
#include <stdint.h>

struct hls_blob {
  uint8_t *data;
  size_t len;
  /* private */
  _Atomic long refs_;
};

/* A blob of len bytes (uninitialised), with one reference; NULL on ENOMEM. */
struct hls_blob *hls_blob_new(size_t len);
/* A blob holding a copy of data; one reference. */
struct hls_blob *hls_blob_copy(const void *data, size_t len);
/* Takes ownership of data (allocated with malloc). On failure data is freed. */
struct hls_blob *hls_blob_adopt(uint8_t *data, size_t len);

struct hls_blob *hls_blob_ref(struct hls_blob *b);
void hls_blob_unref(struct hls_blob *b); /* NULL is fine */
/* For http_respond(): release(arg) drops the reference taken for it. */
void hls_blob_release(void *blob);

#endif
