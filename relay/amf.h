/* amf: AMF0, the value encoding of RTMP commands and metadata.
 *
 * Decoding is a cursor over bytes that the caller owns: nothing is
 * allocated, strings point into the input, and every read is checked
 * against the end of the input. Commands are decoded by walking a table of
 * expected fields (struct amf_field), the way ngx_rtmp_amf does: one row =
 * one field, its AMF type, its name inside an object and where it goes.
 * Fields that are absent or of another type leave their destination as it
 * was (the caller's default).
 *
 * Encoding appends to a struct buf.
 *
 * No state of its own: any thread, one reader or buffer per thread.
 * Errors: -EINVAL (decoding), -ENOMEM (encoding). */
#ifndef GALARELAY_AMF_H
#define GALARELAY_AMF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

enum amf_type {
  AMF_NUMBER = 0x00,
  AMF_BOOLEAN = 0x01,
  AMF_STRING = 0x02,
  AMF_OBJECT = 0x03,
  AMF_MOVIECLIP = 0x04,
  AMF_NULL = 0x05,
  AMF_UNDEFINED = 0x06,
  AMF_REFERENCE = 0x07,
  AMF_ECMA_ARRAY = 0x08,
  AMF_OBJECT_END = 0x09,
  AMF_STRICT_ARRAY = 0x0a,
  AMF_DATE = 0x0b,
  AMF_LONG_STRING = 0x0c,
  AMF_UNSUPPORTED = 0x0d,
  AMF_XML = 0x0f,
  AMF_TYPED_OBJECT = 0x10,
  AMF_AVMPLUS = 0x11, /* switch to AMF3: we skip such values, never decode them */
};

/* Nesting deeper than this is refused (a stack bound for the skipper). */
#define AMF_MAX_DEPTH 16

struct amf_reader {
  const uint8_t *data;
  size_t len;
  size_t pos;
};

void amf_reader_init(struct amf_reader *r, const void *data, size_t len);
bool amf_at_end(const struct amf_reader *r);
/* Errors, as everywhere in relay/: negative errno codes. Decoding fails
 * with -EINVAL (not the type asked for, truncated, nested too deep),
 * encoding with -ENOMEM (the buffer failed to grow). */

/* The type marker of the next value (>= 0), or -ENOENT at the end. */
int amf_peek_type(const struct amf_reader *r);

/* Each returns 0, or -EINVAL if the next value is not of that type or is
 * truncated (the cursor then stays where it was). */
int amf_read_number(struct amf_reader *r, double *out);
int amf_read_boolean(struct amf_reader *r, bool *out);
/* String or long string; *s points into the input, not NUL-terminated. */
int amf_read_string(struct amf_reader *r, const char **s, size_t *len);
int amf_read_null(struct amf_reader *r); /* null or undefined */
/* Skip any one value (objects and arrays recursively). */
int amf_skip(struct amf_reader *r);

/* Table-driven decoding. A row with name == NULL is positional (decode_seq);
 * a row with a name matches an object property (decode_object).
 *   AMF_NUMBER  -> double at dest
 *   AMF_BOOLEAN -> bool at dest
 *   AMF_STRING  -> char[size] at dest, NUL-terminated; a string that does
 *                  not fit is an error (never silently cut: keys compare)
 *   AMF_OBJECT  -> dest is a const struct amf_field_table * decoded from
 *                  that object (or ECMA array); NULL dest = skip
 *   AMF_NULL    -> accept null/undefined/anything (skip) */
struct amf_field {
  enum amf_type type;
  const char *name;
  void *dest;
  size_t size;
};

struct amf_field_table {
  struct amf_field *fields;
  size_t count;
};

/* Decode positional values. Stops quietly at the end of the input (missing
 * trailing fields keep their defaults). Returns 0 or -EINVAL on malformed input. */
int amf_decode_seq(struct amf_reader *r, struct amf_field *fields, size_t count);
/* Decode the object (or ECMA array) at the cursor into the named fields. */
int amf_decode_object(struct amf_reader *r, struct amf_field *fields, size_t count);

/* Encoding. Each returns 0 or -ENOMEM if the buffer failed to grow. */
int amf_put_number(struct buf *b, double v);
int amf_put_boolean(struct buf *b, bool v);
int amf_put_string(struct buf *b, const char *s);
int amf_put_null(struct buf *b);
int amf_put_object_start(struct buf *b);
int amf_put_ecma_start(struct buf *b, uint32_t count);
int amf_put_object_end(struct buf *b);
/* A property inside an object: its name, then put the value. */
int amf_put_key(struct buf *b, const char *name);
/* Shorthands: key + value. */
int amf_put_prop_string(struct buf *b, const char *name, const char *v);
int amf_put_prop_number(struct buf *b, const char *name, double v);
int amf_put_prop_boolean(struct buf *b, const char *name, bool v);

#endif
