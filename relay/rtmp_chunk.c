/* rtmp_chunk: incremental chunk stream reader and stateless writer. See
 * the header. The reader never trusts a length: a message is refused past
 * max_message_size, the bytes being assembled on all chunk streams
 * together are capped (assembly_cap), and buffers grow as bytes arrive, so
 * a peer that announces a large message and sends nothing costs little. */
#include "relay/rtmp_chunk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/buffer.h>

#include "core/buf.h"

#define EXT_TS 0xffffffu
#define FIRST_ALLOC 65536u

static const uint8_t msg_header_len[4] = {11, 7, 3, 0};

void rtmp_chunk_reader_init(struct rtmp_chunk_reader *r, uint32_t max_chunk_size, uint32_t max_message_size) {
  memset(r, 0, sizeof *r);
  r->chunk_size = 128; /* the protocol's initial value */
  r->max_chunk_size = max_chunk_size ? max_chunk_size : 65536;
  r->max_message_size = max_message_size ? max_message_size : 16u << 20;
  r->assembly_cap = 2 * (size_t)r->max_message_size;
  r->hdr_need = 1;
}

void rtmp_chunk_reader_set_limits(struct rtmp_chunk_reader *r, uint32_t max_message_size, size_t assembly_cap) {
  r->max_message_size = max_message_size;
  r->assembly_cap = assembly_cap;
}

static void chunk_drop(struct rtmp_chunk_stream *s) {
  free(s->buf);
  s->buf = NULL;
  s->have = 0;
  s->cap = 0;
}

void rtmp_chunk_reader_free(struct rtmp_chunk_reader *r) {
  for (int i = 0; i < RTMP_MAX_CHUNK_STREAMS; i++)
    chunk_drop(&r->streams[i]);
  r->cur = NULL;
}

int rtmp_chunk_reader_set_chunk_size(struct rtmp_chunk_reader *r, uint32_t size) {
  if (size < 1 || size > r->max_chunk_size)
    return -EINVAL;
  r->chunk_size = size;
  return 0;
}

static struct rtmp_chunk_stream *chunk_find(struct rtmp_chunk_reader *r, uint32_t csid, bool create) {
  struct rtmp_chunk_stream *free_slot = NULL;
  for (int i = 0; i < RTMP_MAX_CHUNK_STREAMS; i++) {
    if (r->streams[i].csid == csid)
      return &r->streams[i];
    if (!free_slot && r->streams[i].csid == 0)
      free_slot = &r->streams[i];
  }
  if (!create || !free_slot)
    return NULL;
  memset(free_slot, 0, sizeof *free_slot);
  free_slot->csid = csid;
  return free_slot;
}

void rtmp_chunk_reader_abort(struct rtmp_chunk_reader *r, uint32_t csid) {
  struct rtmp_chunk_stream *s = chunk_find(r, csid, false);
  if (!s)
    return;
  /* Called from a message callback, never mid-payload (r->cur is NULL
   * while a message is delivered). */
  if (r->cur == s)
    r->cur = NULL;
  chunk_drop(s);
}

static uint32_t rd24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | rd24(p + 1); }
static uint32_t rd32le(const uint8_t *p) {
  return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static size_t chunk_basic_len(uint8_t b0) {
  uint8_t low = b0 & 0x3f;
  return low == 0 ? 2 : low == 1 ? 3 : 1;
}

/* Bytes being assembled on every chunk stream (their allocations). */
static size_t chunk_assembling(const struct rtmp_chunk_reader *r) {
  size_t n = 0;
  for (int i = 0; i < RTMP_MAX_CHUNK_STREAMS; i++)
    if (r->streams[i].buf)
      n += r->streams[i].len;
  return n;
}

/* The whole header is in r->hdr: apply it to its chunk stream. */
static int chunk_apply_header(struct rtmp_chunk_reader *r) {
  const uint8_t *h = r->hdr;
  unsigned fmt = h[0] >> 6;
  size_t bl = chunk_basic_len(h[0]);
  uint32_t csid = bl == 1 ? (h[0] & 0x3fu) : bl == 2 ? 64u + h[1] : 64u + h[1] + 256u * h[2];
  struct rtmp_chunk_stream *s = chunk_find(r, csid, fmt == 0 || fmt == 1);
  if (!s)
    return fmt <= 1 ? RTMP_CHUNK_E_TOO_MANY_STREAMS : RTMP_CHUNK_E_NO_HEADER;
  if (fmt >= 2 && s->len == 0 && s->type == 0)
    return RTMP_CHUNK_E_NO_HEADER;
  const uint8_t *m = h + bl;
  size_t mh = msg_header_len[fmt];
  uint32_t field = 0;
  if (fmt < 3) {
    field = rd24(m);
    s->ext = field == EXT_TS;
    if (s->ext)
      field = rd32(m + mh);
  }
  if (fmt < 3 && s->buf) /* a new message header abandons the partial one */
    chunk_drop(s);
  switch (fmt) {
  case 0:
    s->timestamp = field;
    s->ts_field = field;
    s->len = rd24(m + 3);
    s->type = m[6];
    s->stream_id = rd32le(m + 7);
    break;
  case 1:
    s->ts_field = field;
    s->timestamp += field;
    s->len = rd24(m + 3);
    s->type = m[6];
    break;
  case 2:
    s->ts_field = field;
    s->timestamp += field;
    break;
  default:
    /* A type-3 chunk that starts a message repeats the last delta (as
     * ffmpeg and librtmp read it); one that continues a message adds none. */
    if (!s->buf)
      s->timestamp += s->ts_field;
    break;
  }
  if (!s->buf) {
    if (s->len > r->max_message_size || chunk_assembling(r) + s->len > r->assembly_cap) {
      r->refused_len = s->len;
      return RTMP_CHUNK_E_TOO_LARGE;
    }
    size_t first = s->len < FIRST_ALLOC ? s->len : FIRST_ALLOC;
    s->buf = malloc(first ? first : 1);
    if (!s->buf)
      return RTMP_CHUNK_E_NOMEM;
    s->cap = (uint32_t)first;
    s->have = 0;
  }
  uint32_t left = s->len - s->have;
  r->chunk_left = left < r->chunk_size ? left : r->chunk_size;
  r->cur = s;
  return 0;
}

static int chunk_ensure(struct rtmp_chunk_stream *s, size_t more) {
  if (s->have + more <= s->cap)
    return 0;
  size_t ncap = s->cap ? s->cap : 1;
  while (ncap < s->have + more)
    ncap *= 2;
  if (ncap > s->len)
    ncap = s->len;
  uint8_t *nb = realloc(s->buf, ncap);
  if (!nb)
    return RTMP_CHUNK_E_NOMEM;
  s->buf = nb;
  s->cap = (uint32_t)ncap;
  return 0;
}

static int chunk_deliver(struct rtmp_chunk_reader *r, struct rtmp_chunk_stream *s, rtmp_msg_fn cb, void *opaque) {
  struct rtmp_msg msg = {
      .csid = s->csid,
      .type = s->type,
      .stream_id = s->stream_id,
      .timestamp = s->timestamp,
      .data = s->buf,
      .len = s->len,
  };
  uint8_t *owned = s->buf;
  s->buf = NULL;
  s->have = 0;
  s->cap = 0;
  r->cur = NULL;
  int rc = cb ? cb(opaque, &msg) : 0;
  free(owned);
  return rc;
}

int rtmp_chunk_reader_feed(struct rtmp_chunk_reader *r, const uint8_t *data, size_t len, rtmp_msg_fn cb, void *opaque) {
  if (r->error)
    return r->error;
  size_t pos = 0;
  r->bytes_in += len;
  while (pos < len || (r->cur && r->chunk_left == 0)) {
    if (!r->cur) {
      /* Header bytes, one phase at a time. */
      size_t take = r->hdr_need - r->hdr_have;
      if (take > len - pos)
        take = len - pos;
      memcpy(r->hdr + r->hdr_have, data + pos, take);
      r->hdr_have += take;
      pos += take;
      if (r->hdr_have < r->hdr_need)
        break;
      size_t bl = chunk_basic_len(r->hdr[0]);
      unsigned fmt = r->hdr[0] >> 6;
      size_t want = bl + msg_header_len[fmt];
      if (r->hdr_need < want) {
        r->hdr_need = want;
        continue;
      }
      if (r->hdr_need == want) {
        bool ext;
        if (fmt < 3) {
          ext = rd24(r->hdr + bl) == EXT_TS;
        } else {
          uint32_t csid = bl == 1   ? (r->hdr[0] & 0x3fu)
                          : bl == 2 ? 64u + r->hdr[1]
                                    : 64u + r->hdr[1] + 256u * r->hdr[2];
          struct rtmp_chunk_stream *s = chunk_find(r, csid, false);
          ext = s && s->ext;
        }
        if (ext) {
          r->hdr_need = want + 4;
          continue;
        }
      }
      int rc = chunk_apply_header(r);
      r->hdr_have = 0;
      r->hdr_need = 1;
      if (rc < 0)
        return r->error = rc;
      continue;
    }
    struct rtmp_chunk_stream *s = r->cur;
    size_t take = r->chunk_left;
    if (take > len - pos)
      take = len - pos;
    if (take) {
      int rc = chunk_ensure(s, take);
      if (rc < 0)
        return r->error = rc;
      memcpy(s->buf + s->have, data + pos, take);
      s->have += (uint32_t)take;
      pos += take;
      r->chunk_left -= (uint32_t)take;
    }
    if (r->chunk_left > 0)
      break;
    r->cur = NULL;
    if (s->have == s->len) {
      int rc = chunk_deliver(r, s, cb, opaque);
      if (rc < 0)
        return r->error = rc;
    }
  }
  return 0;
}

/* --- writer --- */

static size_t chunk_basic(uint8_t *p, unsigned fmt, uint32_t csid) {
  if (csid < 64) {
    p[0] = (uint8_t)(fmt << 6 | csid);
    return 1;
  }
  if (csid < 320) {
    p[0] = (uint8_t)(fmt << 6);
    p[1] = (uint8_t)(csid - 64);
    return 2;
  }
  p[0] = (uint8_t)(fmt << 6 | 1);
  p[1] = (uint8_t)((csid - 64) & 0xff);
  p[2] = (uint8_t)((csid - 64) >> 8);
  return 3;
}

size_t rtmp_chunk_size(uint32_t csid, uint32_t timestamp, size_t len, uint32_t chunk_size) {
  size_t bl = csid < 64 ? 1 : csid < 320 ? 2 : 3;
  size_t ext = timestamp >= EXT_TS ? 4 : 0;
  size_t chunks = len ? (len + chunk_size - 1) / chunk_size : 1;
  return bl + 11 + ext + (chunks - 1) * (bl + ext) + len;
}

static void chunk_write_into(uint8_t *out, uint32_t csid, uint8_t type, uint32_t stream_id, uint32_t timestamp,
                             const uint8_t *payload, size_t len, uint32_t chunk_size) {
  uint8_t *p = out;
  bool ext = timestamp >= EXT_TS;
  uint32_t ts = ext ? EXT_TS : timestamp;
  p += chunk_basic(p, 0, csid);
  *p++ = (uint8_t)(ts >> 16);
  *p++ = (uint8_t)(ts >> 8);
  *p++ = (uint8_t)ts;
  *p++ = (uint8_t)(len >> 16);
  *p++ = (uint8_t)(len >> 8);
  *p++ = (uint8_t)len;
  *p++ = type;
  *p++ = (uint8_t)stream_id;
  *p++ = (uint8_t)(stream_id >> 8);
  *p++ = (uint8_t)(stream_id >> 16);
  *p++ = (uint8_t)(stream_id >> 24);
  size_t off = 0;
  for (;;) {
    if (ext) {
      *p++ = (uint8_t)(timestamp >> 24);
      *p++ = (uint8_t)(timestamp >> 16);
      *p++ = (uint8_t)(timestamp >> 8);
      *p++ = (uint8_t)timestamp;
    }
    size_t n = len - off < chunk_size ? len - off : chunk_size;
    if (n)
      memcpy(p, payload + off, n);
    p += n;
    off += n;
    if (off >= len)
      break;
    p += chunk_basic(p, 3, csid);
  }
}

int rtmp_chunk_write(struct buf *out, uint32_t csid, uint8_t type, uint32_t stream_id, uint32_t timestamp,
                     const uint8_t *payload, size_t len, uint32_t chunk_size) {
  size_t n = rtmp_chunk_size(csid, timestamp, len, chunk_size);
  uint8_t small[512];
  uint8_t *tmp = n <= sizeof small ? small : malloc(n);
  if (!tmp)
    return -ENOMEM;
  chunk_write_into(tmp, csid, type, stream_id, timestamp, payload, len, chunk_size);
  int rc = buf_append(out, tmp, n) < 0 ? -ENOMEM : 0;
  if (tmp != small)
    free(tmp);
  return rc;
}

AVBufferRef *rtmp_chunk_wire(uint32_t csid, uint8_t type, uint32_t timestamp, const uint8_t *payload, size_t len) {
  size_t n = rtmp_chunk_size(csid, timestamp, len, RTMP_OUT_CHUNK_SIZE);
  AVBufferRef *ref = av_buffer_alloc(n);
  if (!ref)
    return NULL;
  chunk_write_into(ref->data, csid, type, 1, timestamp, payload, len, RTMP_OUT_CHUNK_SIZE);
  return ref;
}

static uint32_t chunk_csid(const uint8_t *p) {
  switch (p[0] & 0x3f) {
  case 0: return 64u + p[1];
  case 1: return 64u + p[1] + 256u * p[2];
  default: return p[0] & 0x3fu;
  }
}

AVBufferRef *rtmp_chunk_wire_retimed(const uint8_t *wire, size_t len, uint32_t timestamp) {
  size_t hl = rtmp_chunk_first_header_len(wire, len);
  if (hl == 0 || wire[0] >> 6 != 0)
    return NULL;
  size_t bl = chunk_basic_len(wire[0]);
  uint32_t csid = chunk_csid(wire);
  size_t msg_len = rd24(wire + bl + 3);
  uint8_t type = wire[bl + 6];
  size_t ext = rd24(wire + bl) == EXT_TS ? 4 : 0;
  if (rtmp_chunk_size(csid, ext ? rd32(wire + bl + 11) : rd24(wire + bl), msg_len, RTMP_OUT_CHUNK_SIZE) != len)
    return NULL; /* not one whole message in our chunk size */
  uint8_t *payload = malloc(msg_len ? msg_len : 1);
  if (!payload)
    return NULL;
  /* the payload comes in RTMP_OUT_CHUNK_SIZE pieces after each header */
  size_t in = hl, got = 0;
  while (got < msg_len) {
    size_t n = msg_len - got < RTMP_OUT_CHUNK_SIZE ? msg_len - got : RTMP_OUT_CHUNK_SIZE;
    memcpy(payload + got, wire + in, n);
    got += n;
    in += n;
    if (got < msg_len)
      in += bl + ext; /* the next type-3 header */
  }
  AVBufferRef *ref = rtmp_chunk_wire(csid, type, timestamp, payload, msg_len);
  free(payload);
  return ref;
}

size_t rtmp_chunk_first_header_len(const uint8_t *wire, size_t len) {
  if (len < 1)
    return 0;
  size_t bl = chunk_basic_len(wire[0]);
  if (len < bl + 11)
    return 0;
  size_t n = bl + 11;
  if (rd24(wire + bl) == EXT_TS)
    n += 4;
  return n <= len ? n : 0;
}

void rtmp_chunk_patch_stream_id(uint8_t *hdr, size_t hdr_len, uint32_t stream_id) {
  size_t bl = chunk_basic_len(hdr[0]);
  if (hdr_len < bl + 11)
    return;
  uint8_t *p = hdr + bl + 7;
  p[0] = (uint8_t)stream_id;
  p[1] = (uint8_t)(stream_id >> 8);
  p[2] = (uint8_t)(stream_id >> 16);
  p[3] = (uint8_t)(stream_id >> 24);
}

/* --- protocol control --- */

static int chunk_ctl32(struct buf *out, uint8_t type, uint32_t v, uint32_t chunk_size) {
  uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  return rtmp_chunk_write(out, RTMP_CSID_CONTROL, type, 0, 0, p, 4, chunk_size);
}

int rtmp_chunk_write_set_chunk_size(struct buf *out, uint32_t size, uint32_t chunk_size) {
  return chunk_ctl32(out, RTMP_MSG_SET_CHUNK_SIZE, size & 0x7fffffffu, chunk_size);
}

int rtmp_chunk_write_window_ack(struct buf *out, uint32_t size, uint32_t chunk_size) {
  return chunk_ctl32(out, RTMP_MSG_WINDOW_ACK_SIZE, size, chunk_size);
}

int rtmp_chunk_write_ack(struct buf *out, uint32_t seq, uint32_t chunk_size) {
  return chunk_ctl32(out, RTMP_MSG_ACK, seq, chunk_size);
}

int rtmp_chunk_write_peer_bw(struct buf *out, uint32_t size, uint8_t limit, uint32_t chunk_size) {
  uint8_t p[5] = {(uint8_t)(size >> 24), (uint8_t)(size >> 16), (uint8_t)(size >> 8), (uint8_t)size, limit};
  return rtmp_chunk_write(out, RTMP_CSID_CONTROL, RTMP_MSG_SET_PEER_BW, 0, 0, p, 5, chunk_size);
}

int rtmp_chunk_write_user_control(struct buf *out, uint16_t event, uint32_t value, uint32_t chunk_size) {
  uint8_t p[6] = {(uint8_t)(event >> 8),  (uint8_t)event,        (uint8_t)(value >> 24),
                  (uint8_t)(value >> 16), (uint8_t)(value >> 8), (uint8_t)value};
  return rtmp_chunk_write(out, RTMP_CSID_CONTROL, RTMP_MSG_USER_CONTROL, 0, 0, p, 6, chunk_size);
}

const char *rtmp_chunk_strerror(int code) {
  switch (code) {
  case RTMP_CHUNK_E_TOO_MANY_STREAMS: return "too many chunk streams";
  case RTMP_CHUNK_E_TOO_LARGE: return "message too large";
  case RTMP_CHUNK_E_NO_HEADER: return "chunk continues a stream never opened";
  case RTMP_CHUNK_E_NOMEM: return "out of memory";
  default: return strerror(-code);
  }
}
