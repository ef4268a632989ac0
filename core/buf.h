/* buf: a growable byte buffer for text we build (metrics, playlists, JSON
 * answers). Owned by whoever declared it; buf_free releases the memory. */
#ifndef GALARELAY_BUF_H
#define GALARELAY_BUF_H

#include <stddef.h>

struct buf {
  char *data; /* NUL-terminated while len < cap */
  size_t len;
  size_t cap;
  int failed; /* an allocation failed: contents are truncated */
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* 0, or -ENOMEM (b->failed is then set and every later call fails). */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
/* 0, -ENOMEM, or -EINVAL for a format vsnprintf refuses. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Take the bytes: the caller frees the returned pointer; b is reset. */
char *buf_steal(struct buf *b, size_t *len);

#endif
