/* hls_blob: see hls_blob.h. The header and the bytes are one allocation
 * when we make the buffer, two when we adopt someone else's. */
#include "transcoder/hls/hls_blob.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct hls_blob *hls_blob_new(size_t len) {
  struct hls_blob *b = malloc(sizeof *b + len + 1);
  if (!b)
    return NULL;
  b->data = (uint8_t *)(b + 1);
  b->data[len] = 0;
  b->len = len;
  atomic_init(&b->refs_, 1);
  return b;
}

struct hls_blob *hls_blob_copy(const void *data, size_t len) {
  struct hls_blob *b = hls_blob_new(len);
  if (b && len)
    memcpy(b->data, data, len);
  return b;
}

struct hls_blob *hls_blob_adopt(uint8_t *data, size_t len) {
  struct hls_blob *b = malloc(sizeof *b);
  if (!b) {
    free(data);
    return NULL;
  }
  b->data = data;
  b->len = len;
  atomic_init(&b->refs_, 1);
  return b;
}

struct hls_blob *hls_blob_ref(struct hls_blob *b) {
  if (b)
    atomic_fetch_add_explicit(&b->refs_, 1, memory_order_relaxed);
  return b;
}

void hls_blob_unref(struct hls_blob *b) {
  if (!b)
    return;
  if (atomic_fetch_sub_explicit(&b->refs_, 1, memory_order_acq_rel) != 1)
    return;
  if (b->data != (uint8_t *)(b + 1))
    free(b->data);
  free(b);
}

void hls_blob_release(void *blob) { hls_blob_unref(blob); }
