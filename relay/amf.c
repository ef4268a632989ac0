/* amf: AMF0 decoding (bounds-checked cursor, table-driven fields) and
 * encoding into a struct buf. See amf.h. */
#include "relay/amf.h"

#include <errno.h>
#include <string.h>

#include "core/buf.h"

void amf_reader_init(struct amf_reader *r, const void *data, size_t len) {
  r->data = data;
  r->len = len;
  r->pos = 0;
}

bool amf_at_end(const struct amf_reader *r) { return r->pos >= r->len; }

int amf_peek_type(const struct amf_reader *r) {
  if (r->pos >= r->len)
    return -ENOENT;
  return r->data[r->pos];
}

static size_t amf_left(const struct amf_reader *r) { return r->len - r->pos; }

static uint16_t amf_u16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static uint32_t amf_u32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static double amf_double(const uint8_t *p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++)
    u = u << 8 | p[i];
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

int amf_read_number(struct amf_reader *r, double *out) {
  if (amf_left(r) < 9 || r->data[r->pos] != AMF_NUMBER)
    return -EINVAL;
  *out = amf_double(r->data + r->pos + 1);
  r->pos += 9;
  return 0;
}

int amf_read_boolean(struct amf_reader *r, bool *out) {
  if (amf_left(r) < 2 || r->data[r->pos] != AMF_BOOLEAN)
    return -EINVAL;
  *out = r->data[r->pos + 1] != 0;
  r->pos += 2;
  return 0;
}

/* A string body without its marker (object keys have none). */
static int amf_read_utf8(struct amf_reader *r, bool long_form, const char **s, size_t *len) {
  size_t hdr = long_form ? 4 : 2;
  if (amf_left(r) < hdr)
    return -EINVAL;
  size_t n = long_form ? amf_u32(r->data + r->pos) : amf_u16(r->data + r->pos);
  if (amf_left(r) - hdr < n)
    return -EINVAL;
  *s = (const char *)r->data + r->pos + hdr;
  *len = n;
  r->pos += hdr + n;
  return 0;
}

int amf_read_string(struct amf_reader *r, const char **s, size_t *len) {
  int t = amf_peek_type(r);
  if (t != AMF_STRING && t != AMF_LONG_STRING)
    return -EINVAL;
  size_t save = r->pos;
  r->pos++;
  if (amf_read_utf8(r, t == AMF_LONG_STRING, s, len) < 0) {
    r->pos = save;
    return -EINVAL;
  }
  return 0;
}

int amf_read_null(struct amf_reader *r) {
  int t = amf_peek_type(r);
  if (t != AMF_NULL && t != AMF_UNDEFINED)
    return -EINVAL;
  r->pos++;
  return 0;
}

static int skip_value(struct amf_reader *r, int depth);

/* Properties until the empty key + object-end marker. */
static int amf_skip_props(struct amf_reader *r, int depth) {
  for (;;) {
    const char *k;
    size_t kl;
    if (amf_read_utf8(r, false, &k, &kl) < 0)
      return -EINVAL;
    if (kl == 0 && amf_peek_type(r) == AMF_OBJECT_END) {
      r->pos++;
      return 0;
    }
    if (skip_value(r, depth + 1) < 0)
      return -EINVAL;
  }
}

static int skip_value(struct amf_reader *r, int depth) {
  if (depth > AMF_MAX_DEPTH || amf_left(r) < 1)
    return -EINVAL;
  uint8_t t = r->data[r->pos++];
  const char *s;
  size_t n;
  switch (t) {
  case AMF_NUMBER:
    if (amf_left(r) < 8)
      return -EINVAL;
    r->pos += 8;
    return 0;
  case AMF_BOOLEAN:
    if (amf_left(r) < 1)
      return -EINVAL;
    r->pos += 1;
    return 0;
  case AMF_STRING:
  case AMF_XML:
  case AMF_LONG_STRING: return amf_read_utf8(r, t != AMF_STRING, &s, &n);
  case AMF_NULL:
  case AMF_UNDEFINED:
  case AMF_UNSUPPORTED: return 0;
  case AMF_REFERENCE:
    if (amf_left(r) < 2)
      return -EINVAL;
    r->pos += 2;
    return 0;
  case AMF_DATE:
    if (amf_left(r) < 10)
      return -EINVAL;
    r->pos += 10;
    return 0;
  case AMF_OBJECT: return amf_skip_props(r, depth);
  case AMF_TYPED_OBJECT:
    if (amf_read_utf8(r, false, &s, &n) < 0)
      return -EINVAL;
    return amf_skip_props(r, depth);
  case AMF_ECMA_ARRAY:
    /* The count is only a hint; the array ends like an object. */
    if (amf_left(r) < 4)
      return -EINVAL;
    r->pos += 4;
    return amf_skip_props(r, depth);
  case AMF_STRICT_ARRAY: {
    if (amf_left(r) < 4)
      return -EINVAL;
    uint32_t count = amf_u32(r->data + r->pos);
    r->pos += 4;
    /* Each element takes at least one byte: a count beyond the input is
     * malformed, and checking it first bounds the loop. */
    if (count > amf_left(r))
      return -EINVAL;
    for (uint32_t i = 0; i < count; i++)
      if (skip_value(r, depth + 1) < 0)
        return -EINVAL;
    return 0;
  }
  default: /* AMF3 switch, movieclip, object-end out of place: not for us */ return -EINVAL;
  }
}

int amf_skip(struct amf_reader *r) {
  size_t save = r->pos;
  if (skip_value(r, 0) < 0) {
    r->pos = save;
    return -EINVAL;
  }
  return 0;
}

static int amf_decode_value(struct amf_reader *r, struct amf_field *f) {
  int t = amf_peek_type(r);
  switch (f->type) {
  case AMF_NUMBER:
    if (t == AMF_NUMBER)
      return amf_read_number(r, f->dest);
    break;
  case AMF_BOOLEAN:
    if (t == AMF_BOOLEAN)
      return amf_read_boolean(r, f->dest);
    if (t == AMF_NUMBER) { /* some encoders send 0/1 */
      double d;
      if (amf_read_number(r, &d) < 0)
        return -EINVAL;
      *(bool *)f->dest = d != 0;
      return 0;
    }
    break;
  case AMF_STRING:
    if (t == AMF_STRING || t == AMF_LONG_STRING) {
      const char *s;
      size_t n;
      if (amf_read_string(r, &s, &n) < 0 || n >= f->size)
        return -EINVAL;
      memcpy(f->dest, s, n);
      ((char *)f->dest)[n] = '\0';
      return 0;
    }
    break;
  case AMF_OBJECT:
    if (f->dest && (t == AMF_OBJECT || t == AMF_ECMA_ARRAY)) {
      const struct amf_field_table *sub = f->dest;
      return amf_decode_object(r, sub->fields, sub->count);
    }
    break;
  default: break;
  }
  return amf_skip(r);
}

int amf_decode_seq(struct amf_reader *r, struct amf_field *fields, size_t count) {
  for (size_t i = 0; i < count; i++) {
    if (amf_at_end(r))
      return 0;
    if (amf_decode_value(r, &fields[i]) < 0)
      return -EINVAL;
  }
  return 0;
}

int amf_decode_object(struct amf_reader *r, struct amf_field *fields, size_t count) {
  int t = amf_peek_type(r);
  size_t save = r->pos;
  if (t == AMF_OBJECT) {
    r->pos += 1;
  } else if (t == AMF_ECMA_ARRAY) {
    if (amf_left(r) < 5)
      return -EINVAL;
    r->pos += 5;
  } else {
    return -EINVAL;
  }
  for (;;) {
    const char *k;
    size_t kl;
    if (amf_read_utf8(r, false, &k, &kl) < 0)
      goto bad;
    if (kl == 0 && amf_peek_type(r) == AMF_OBJECT_END) {
      r->pos++;
      return 0;
    }
    struct amf_field *match = NULL;
    for (size_t i = 0; i < count; i++) {
      if (fields[i].name && strlen(fields[i].name) == kl && memcmp(fields[i].name, k, kl) == 0) {
        match = &fields[i];
        break;
      }
    }
    int rc = match ? amf_decode_value(r, match) : amf_skip(r);
    if (rc < 0)
      goto bad;
  }
bad:
  r->pos = save;
  return -EINVAL;
}

/* --- encoding --- */

/* buf_append's failure is always a failed allocation. */
static int put(struct buf *b, const void *data, size_t len) { return buf_append(b, data, len) < 0 ? -ENOMEM : 0; }

static int amf_put_u8(struct buf *b, uint8_t v) { return put(b, &v, 1); }

static int amf_put_utf8(struct buf *b, const char *s) {
  size_t n = strlen(s);
  if (n > 0xffff)
    n = 0xffff;
  uint8_t hdr[2] = {(uint8_t)(n >> 8), (uint8_t)n};
  if (put(b, hdr, 2) < 0)
    return -ENOMEM;
  return put(b, s, n);
}

int amf_put_number(struct buf *b, double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  uint8_t p[9] = {AMF_NUMBER};
  for (int i = 0; i < 8; i++)
    p[1 + i] = (uint8_t)(u >> (56 - 8 * i));
  return put(b, p, sizeof p);
}

int amf_put_boolean(struct buf *b, bool v) {
  uint8_t p[2] = {AMF_BOOLEAN, v ? 1 : 0};
  return put(b, p, 2);
}

int amf_put_string(struct buf *b, const char *s) {
  if (amf_put_u8(b, AMF_STRING) < 0)
    return -ENOMEM;
  return amf_put_utf8(b, s);
}

int amf_put_null(struct buf *b) { return amf_put_u8(b, AMF_NULL); }

int amf_put_object_start(struct buf *b) { return amf_put_u8(b, AMF_OBJECT); }

int amf_put_ecma_start(struct buf *b, uint32_t count) {
  uint8_t p[5] = {AMF_ECMA_ARRAY, (uint8_t)(count >> 24), (uint8_t)(count >> 16), (uint8_t)(count >> 8),
                  (uint8_t)count};
  return put(b, p, 5);
}

int amf_put_object_end(struct buf *b) {
  uint8_t p[3] = {0, 0, AMF_OBJECT_END};
  return put(b, p, 3);
}

int amf_put_key(struct buf *b, const char *name) { return amf_put_utf8(b, name); }

int amf_put_prop_string(struct buf *b, const char *name, const char *v) {
  return amf_put_key(b, name) < 0 ? -ENOMEM : amf_put_string(b, v);
}

int amf_put_prop_number(struct buf *b, const char *name, double v) {
  return amf_put_key(b, name) < 0 ? -ENOMEM : amf_put_number(b, v);
}

int amf_put_prop_boolean(struct buf *b, const char *name, bool v) {
  return amf_put_key(b, name) < 0 ? -ENOMEM : amf_put_boolean(b, v);
}
