/* buf: see buf.h. Growth doubles, so appends are amortised O(1). */
#include "core/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b) { memset(b, 0, sizeof *b); }

void buf_free(struct buf *b) {
  free(b->data);
  buf_init(b);
}

void buf_reset(struct buf *b) {
  b->len = 0;
  b->failed = 0;
  if (b->data)
    b->data[0] = '\0';
}

static int buf_reserve(struct buf *b, size_t extra) {
  if (b->failed)
    return -ENOMEM;
  if (b->len + extra + 1 <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    b->failed = 1;
    return -ENOMEM;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

int buf_append(struct buf *b, const void *data, size_t len) {
  int rc = buf_reserve(b, len);
  if (rc < 0)
    return rc;
  if (len)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int buf_puts(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

int buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -EINVAL; /* a format the C library cannot write */
  if ((size_t)n < sizeof small)
    return buf_append(b, small, (size_t)n);
  int rc = buf_reserve(b, (size_t)n);
  if (rc < 0)
    return rc;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

char *buf_steal(struct buf *b, size_t *len) {
  if (buf_reserve(b, 0) < 0) {
    buf_free(b);
    return NULL;
  }
  char *p = b->data;
  if (len)
    *len = b->len;
  buf_init(b);
  return p;
}
