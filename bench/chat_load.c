/* chat_load: load generator for the live comment websocket (/chat/CHANNEL),
 * used by bench/chat_bench.sh against galarelay and against a minimal Node
 * `ws` server doing the same job.
 *
 * One libuv thread opens N viewer connections (ramped) and P poster
 * connections, speaks a minimal RFC 6455 client by hand on raw TCP (upgrade
 * with Sec-WebSocket-Key, masked client frames, unmasked server frames,
 * fragmentation, ping/pong, close), then the posters send R comments per
 * second in total for D seconds. Every comment's text carries its send time
 * (monotonic microseconds, "@T<us>"), so a viewer's receipt time minus that
 * is the end-to-end latency. Events are counted, not frames: a galarelay
 * batch carries many comments.
 *
 * A comment's nonce carries its send time too ("n<k>.<us>"), so the
 * poster's ack gives the ack latency: how long a server took to read,
 * store and answer a comment while it fans out.
 *
 * With --pid the server process is sampled from /proc (utime+stime, VmRSS):
 * before any connection (after --base-settle seconds: a daemon's RSS moves
 * for a second or two after its start), with every viewer idle and
 * connected, and over the storm; the figures are printed as one JSON object on stdout (--json FILE
 * writes it there too), progress goes to stderr.
 *
 * With --compress the hello asks for compressed batches
 * ("compress":"deflate-raw") and binary frames are inflated (raw DEFLATE);
 * every viewer of a room gets the same bytes, so the last frame inflated is
 * kept and a frame equal to it is not inflated again. With --text cjk each
 * comment is a line of a file of realistic Chinese comments (--cjk-file)
 * and only every CJK_MARK_EVERY-th carries the time marker: a marker's
 * digits would otherwise be a third of every text and skew the bytes.
 * Events are counted as "type":"comment" occurrences either way, and the
 * bytes viewers receive during the storm (frame headers included) are
 * reported per delivered event (wire_bytes_per_event).
 *
 * The client has to be cheaper than the servers it measures: one shared read
 * buffer for every socket (a connection keeps bytes only while a frame is
 * incomplete), no JSON library (a small scanner finds the message type and
 * the markers), latencies in a fixed histogram. */
#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>
#include <zlib.h>

/* ---- Options */

static struct {
  char host[64];
  int port;
  char path[256];
  int viewers, posters;
  double rate, duration, settle, drain, drain_max, connect_timeout, base_settle;
  int ramp_batch, ramp_ms, max_pending;
  int pid;
  const char *json_path;
  const char *label;
  bool compress;
  bool cjk;
  const char *cjk_file;
} opt = {
    .host = "127.0.0.1",
    .port = 8080,
    .path = "/chat/gala",
    .viewers = 1000,
    .posters = 20,
    .rate = 200,
    .duration = 20,
    .settle = 2,
    .drain = 2,
    .drain_max = 30,
    .connect_timeout = 120,
    .base_settle = 2,
    .ramp_batch = 500,
    .ramp_ms = 100,
    .max_pending = 2000,
    .pid = 0,
    .json_path = NULL,
    .label = "server",
};

/* ---- Clock, randomness, latency histogram */

static uint64_t now_us(void) { return uv_hrtime() / 1000; }

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng32(void) { /* xorshift64*: masks and keys need no crypto */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

/* 20 µs buckets up to 60 s; later ones land in the last bucket (max is exact).
 * Two of them: delivery (send → a viewer's receipt) and ack (send → the
 * poster's ack, from the send time the nonce carries). */
#define HIST_US 20
#define HIST_N (60 * 1000 * 1000 / HIST_US)
struct hist {
  uint32_t *b;
  uint64_t count, max_us, sum_us;
};
static struct hist lat, ack_lat;

static void hist_add(struct hist *h, uint64_t us) {
  size_t b = us / HIST_US;
  if (b >= HIST_N)
    b = HIST_N - 1;
  h->b[b]++;
  h->count++;
  h->sum_us += us;
  if (us > h->max_us)
    h->max_us = us;
}

static double hist_pct(const struct hist *h, double p) {
  if (!h->count)
    return -1;
  uint64_t want = (uint64_t)(p * (double)h->count);
  if (want >= h->count)
    want = h->count - 1;
  uint64_t seen = 0;
  for (size_t b = 0; b < HIST_N; b++) {
    seen += h->b[b];
    if (seen > want)
      return (double)(b * HIST_US + HIST_US / 2) / 1000.0;
  }
  return (double)h->max_us / 1000.0;
}

/* ---- Counters */

static struct {
  int connected_viewers, connected_posters, pending;
  uint64_t connect_errors, handshake_errors, closed_by_server, protocol_errors;
  uint64_t started; /* connections attempted */
  uint64_t sent, acks, error_replies, rate_limited;
  uint64_t events, events_storm, frames, poster_events, welcome;
  uint64_t wire_bytes_storm; /* viewers' data frames during the storm, headers included */
  uint64_t binary_frames, inflates;
  uint64_t pings;
} st;

static bool storm_on, storm_done;
static uint64_t storm_t0_us, last_event_us;

/* ---- Connections */

enum conn_state { C_IDLE /* never started */, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED };

struct conn {
  uv_tcp_t tcp;
  uv_connect_t connect;
  enum conn_state state;
  bool poster;
  bool counted; /* in connected_* */
  bool welcomed;
  int id;
  char key_accept[32]; /* expected Sec-WebSocket-Accept */
  /* Bytes of an incomplete frame (or handshake) carried to the next read. */
  char *rx;
  size_t rx_len, rx_cap;
  /* A fragmented message being put together. */
  char *msg;
  size_t msg_len, msg_cap;
  int msg_opcode;
};

static uv_loop_t *loop;
static struct conn *viewers, *posters;
static struct sockaddr_in server_addr;
static int ramp_next; /* next viewer to start */

struct wreq {
  uv_write_t req;
  char data[];
};

static void conn_fail(struct conn *c, uint64_t *counter, const char *why);

static void on_write(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

/* Write bytes whole: try_write first (no allocation on the common path),
 * queue the rest. */
static void conn_write(struct conn *c, const char *p, size_t n) {
  if (c->state == C_CLOSED)
    return;
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (w == (int)n)
    return;
  if (w < 0 && w != UV_EAGAIN) {
    conn_fail(c, &st.protocol_errors, uv_strerror(w));
    return;
  }
  size_t done = w > 0 ? (size_t)w : 0;
  struct wreq *r = malloc(sizeof(*r) + n - done);
  if (!r)
    abort();
  memcpy(r->data, p + done, n - done);
  b = uv_buf_init(r->data, (unsigned)(n - done));
  if (uv_write(&r->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0)
    free(r);
}

/* A masked client frame (RFC 6455 §5.3: every client frame is masked). */
static void ws_send(struct conn *c, int opcode, const char *payload, size_t n) {
  char stackbuf[1024];
  size_t need = n + 14;
  char *f = need <= sizeof(stackbuf) ? stackbuf : malloc(need);
  if (!f)
    abort();
  size_t h = 0;
  f[h++] = (char)(0x80 | opcode);
  if (n < 126) {
    f[h++] = (char)(0x80 | n);
  } else if (n < 65536) {
    f[h++] = (char)(0x80 | 126);
    f[h++] = (char)(n >> 8);
    f[h++] = (char)n;
  } else {
    f[h++] = (char)(0x80 | 127);
    for (int i = 7; i >= 0; i--)
      f[h++] = (char)((uint64_t)n >> (8 * i));
  }
  uint32_t k = rng32();
  unsigned char mask[4] = {(unsigned char)k, (unsigned char)(k >> 8), (unsigned char)(k >> 16),
                           (unsigned char)(k >> 24)};
  memcpy(f + h, mask, 4);
  h += 4;
  for (size_t i = 0; i < n; i++)
    f[h + i] = (char)(payload[i] ^ mask[i & 3]);
  conn_write(c, f, h + n);
  if (f != stackbuf)
    free(f);
}

static void on_close(uv_handle_t *h) { (void)h; }

static void conn_close(struct conn *c) {
  if (c->state == C_CLOSED || c->state == C_IDLE)
    return;
  if (c->counted) {
    if (c->poster)
      st.connected_posters--;
    else
      st.connected_viewers--;
    c->counted = false;
  }
  if (c->state == C_CONNECTING || c->state == C_HANDSHAKE)
    st.pending--;
  c->state = C_CLOSED;
  free(c->rx);
  free(c->msg);
  c->rx = c->msg = NULL;
  c->rx_len = c->rx_cap = c->msg_len = c->msg_cap = 0;
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static uint64_t fail_logged;
static void conn_fail(struct conn *c, uint64_t *counter, const char *why) {
  if (c->state == C_CLOSED || c->state == C_IDLE)
    return;
  (*counter)++;
  if (fail_logged++ < 5)
    fprintf(stderr, "chat_load: %s %d: %s\n", c->poster ? "poster" : "viewer", c->id, why);
  conn_close(c);
}

/* ---- A few JSON steps: enough to read the top-level "type" of a server
 * message and to find the comment markers. Messages are compact JSON
 * from trusted servers; anything odd only makes an event go uncounted. */

static const char *skip_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    p++;
  return p;
}

static const char *skip_string(const char *p, const char *e) { /* p at the opening quote */
  for (p++; p < e; p++) {
    if (*p == '\\')
      p++;
    else if (*p == '"')
      return p + 1;
  }
  return e;
}

static const char *skip_value(const char *p, const char *e) {
  p = skip_ws(p, e);
  if (p >= e)
    return e;
  if (*p == '"')
    return skip_string(p, e);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    for (; p < e; p++) {
      if (*p == '"') {
        p = skip_string(p, e) - 1;
      } else if (*p == '{' || *p == '[') {
        depth++;
      } else if (*p == '}' || *p == ']') {
        if (--depth == 0)
          return p + 1;
      }
    }
    return e;
  }
  while (p < e && *p != ',' && *p != '}' && *p != ']')
    p++;
  return p;
}

/* The top-level "type" string of an object message, copied into out. */
static bool msg_type(const char *p, size_t n, char *out, size_t outlen) {
  static const char fast[] = "{\"type\":\"";
  const char *e = p + n;
  if (n > sizeof(fast) && !memcmp(p, fast, sizeof(fast) - 1)) {
    const char *s = p + sizeof(fast) - 1;
    const char *q = memchr(s, '"', (size_t)(e - s));
    if (q && (size_t)(q - s) < outlen) {
      memcpy(out, s, (size_t)(q - s));
      out[q - s] = 0;
      return true;
    }
  }
  p = skip_ws(p, e);
  if (p >= e || *p != '{')
    return false;
  p++;
  while (p < e) {
    p = skip_ws(p, e);
    if (p >= e || *p != '"')
      return false;
    const char *k = p + 1;
    p = skip_string(p, e);
    bool is_type = (p - k - 1 == 4) && !memcmp(k, "type", 4);
    p = skip_ws(p, e);
    if (p >= e || *p != ':')
      return false;
    p = skip_ws(p + 1, e);
    if (is_type && p < e && *p == '"') {
      const char *q = skip_string(p, e);
      size_t len = (size_t)(q - p - 2);
      if (len >= outlen)
        return false;
      memcpy(out, p + 1, len);
      out[len] = 0;
      return true;
    }
    p = skip_ws(skip_value(p, e), e);
    if (p < e && *p == ',')
      p++;
    else
      return false;
  }
  return false;
}

/* Occurrences of needle in [p, p+n). */
static uint64_t count_of(const char *p, size_t n, const char *needle) {
  size_t k = strlen(needle);
  uint64_t got = 0;
  for (const char *q = p, *e = p + n; (q = memmem(q, (size_t)(e - q), needle, k)); q += k)
    got++;
  return got;
}

/* An ack echoes the nonce "n<k>.<send µs>": the time from send to ack,
 * the posters' side of the load (it grows when a server reads them late). */
static void ack_latency(const char *p, size_t n, uint64_t now) {
  static const char key[] = "\"nonce\":\"n";
  const char *q = memmem(p, n, key, sizeof(key) - 1), *e = p + n;
  if (!q)
    return;
  for (q += sizeof(key) - 1; q < e && *q != '.' && *q != '"'; q++)
    ;
  if (q >= e || *q != '.')
    return;
  uint64_t t = 0;
  for (q++; q < e && *q >= '0' && *q <= '9'; q++)
    t = t * 10 + (uint64_t)(*q - '0');
  if (t && t <= now)
    hist_add(&ack_lat, now - t);
}

static void on_message(struct conn *c, const char *p, size_t n) {
  char type[32];
  if (!msg_type(p, n, type, sizeof(type))) {
    st.protocol_errors++;
    return;
  }
  if (!strcmp(type, "batch")) {
    /* Every comment this tool sends (with --text cjk, one in
     * CJK_MARK_EVERY) carries one "@T<µs>" marker: read the time after
     * each; count the comments. */
    uint64_t now = now_us();
    const char *e = p + n, *q = p;
    uint64_t got = count_of(p, n, "\"type\":\"comment\"");
    while ((q = memchr(q, '@', (size_t)(e - q)))) { /* memchr: the cheapest scan there is */
      if (++q >= e || *q != 'T')
        continue;
      q++;
      uint64_t t = 0;
      while (q < e && *q >= '0' && *q <= '9')
        t = t * 10 + (uint64_t)(*q++ - '0');
      if (!c->poster && t && t <= now)
        hist_add(&lat, now - t);
    }
    if (c->poster) {
      st.poster_events += got;
    } else {
      st.events += got;
      if (storm_on)
        st.events_storm += got;
      if (got)
        last_event_us = now;
    }
  } else if (!strcmp(type, "ack")) {
    st.acks++;
    ack_latency(p, n, now_us());
  } else if (!strcmp(type, "error")) {
    st.error_replies++;
    if (memmem(p, n, "rate_limited", 12))
      st.rate_limited++;
    if (st.error_replies <= 3)
      fprintf(stderr, "chat_load: error reply: %.*s\n", (int)(n > 300 ? 300 : n), p);
  } else if (!strcmp(type, "welcome")) {
    if (!c->welcomed) {
      c->welcomed = true;
      st.welcome++;
    }
  }
}

/* A compressed batch: inflate it (raw DEFLATE), or take the text of the
 * last one when it is the same frame (every viewer gets the same bytes). */
static void on_binary(struct conn *c, const char *p, size_t n) {
  static char *last_z, *text;
  static size_t last_n, text_n, text_cap;
  st.binary_frames++;
  if (!last_z || n != last_n || memcmp(p, last_z, n)) {
    free(last_z);
    last_z = malloc(n);
    if (!last_z)
      abort();
    memcpy(last_z, p, n);
    last_n = n;
    z_stream z = {0};
    if (inflateInit2(&z, -15) != Z_OK)
      abort();
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    text_n = 0;
    int rc;
    do {
      if (text_cap - text_n < 4096 && !(text = realloc(text, text_cap = text_cap * 2 + 65536)))
        abort();
      z.next_out = (Bytef *)text + text_n;
      z.avail_out = (uInt)(text_cap - text_n);
      rc = inflate(&z, Z_NO_FLUSH);
      text_n = text_cap - z.avail_out;
    } while (rc == Z_OK);
    inflateEnd(&z);
    st.inflates++;
    if (rc != Z_STREAM_END) {
      free(last_z);
      last_z = NULL;
      st.protocol_errors++;
      return;
    }
  }
  on_message(c, text, text_n);
}

/* Frames in [p, p+n); returns how many bytes were used (the rest is an
 * incomplete frame). */
static size_t on_frames(struct conn *c, const char *buf, size_t n) {
  const unsigned char *p = (const unsigned char *)buf;
  size_t off = 0;
  while (c->state == C_OPEN && n - off >= 2) {
    const unsigned char *f = p + off;
    size_t avail = n - off;
    bool fin = f[0] & 0x80;
    int opcode = f[0] & 0x0f;
    if (f[0] & 0x70 || f[1] & 0x80) { /* no extension negotiated; servers never mask */
      conn_fail(c, &st.protocol_errors, "bad frame header");
      return off;
    }
    uint64_t len = f[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
      if (avail < 4)
        break;
      len = (uint64_t)f[2] << 8 | f[3];
      h = 4;
    } else if (len == 127) {
      if (avail < 10)
        break;
      len = 0;
      for (int i = 0; i < 8; i++)
        len = len << 8 | f[2 + i];
      h = 10;
    }
    if (len > (64u << 20)) {
      conn_fail(c, &st.protocol_errors, "frame too large");
      return off;
    }
    if (avail < h + len)
      break;
    const char *pl = (const char *)f + h;
    off += h + (size_t)len;
    if (storm_on && !c->poster && opcode <= 0x2)
      st.wire_bytes_storm += h + (size_t)len;
    switch (opcode) {
    case 0x1: /* text */
    case 0x2: /* binary */
    case 0x0: /* continuation */
      if (opcode != 0 && c->msg_opcode) {
        conn_fail(c, &st.protocol_errors, "new message inside a fragmented one");
        return off;
      }
      if (opcode != 0 && fin) {
        st.frames++;
        (opcode == 0x2 ? on_binary : on_message)(c, pl, (size_t)len);
        break;
      }
      if (opcode != 0)
        c->msg_opcode = opcode;
      if (!c->msg_opcode) {
        conn_fail(c, &st.protocol_errors, "continuation without a message");
        return off;
      }
      if (c->msg_len + len > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 4096;
        while (cap < c->msg_len + len)
          cap *= 2;
        char *m = realloc(c->msg, cap);
        if (!m)
          abort();
        c->msg = m;
        c->msg_cap = cap;
      }
      memcpy(c->msg + c->msg_len, pl, (size_t)len);
      c->msg_len += (size_t)len;
      if (fin) {
        st.frames++;
        (c->msg_opcode == 0x2 ? on_binary : on_message)(c, c->msg, c->msg_len);
        c->msg_len = 0;
        c->msg_opcode = 0;
        if (c->msg_cap > 65536) { /* do not keep a big buffer per viewer */
          free(c->msg);
          c->msg = NULL;
          c->msg_cap = 0;
        }
      }
      break;
    case 0x8: /* close: answer with the same code, then drop */
      ws_send(c, 0x8, pl, len >= 2 ? 2 : 0);
      conn_fail(c, &st.closed_by_server, "closed by server");
      return off;
    case 0x9: /* ping */
      st.pings++;
      ws_send(c, 0xA, pl, (size_t)len);
      break;
    case 0xA: /* pong */ break;
    default: conn_fail(c, &st.protocol_errors, "unknown opcode"); return off;
    }
  }
  return off;
}

static void send_hello(struct conn *c) {
  char m[96];
  int n = snprintf(m, sizeof(m), "{\"type\":\"hello\",\"name\":\"%c%d\"%s}", c->poster ? 'p' : 'v', c->id,
                   opt.compress && !c->poster ? ",\"compress\":\"deflate-raw\"" : "");
  ws_send(c, 0x1, m, (size_t)n);
}

/* The 101 answer; returns bytes used, 0 while incomplete. */
static size_t on_handshake(struct conn *c, const char *p, size_t n) {
  const char *end = memmem(p, n, "\r\n\r\n", 4);
  if (!end) {
    if (n > 8192)
      conn_fail(c, &st.handshake_errors, "handshake answer too long");
    return 0;
  }
  size_t hl = (size_t)(end - p) + 4;
  if (hl < 12 || memcmp(p, "HTTP/1.1 101", 12)) {
    char why[128];
    const char *eol = memchr(p, '\r', hl);
    snprintf(why, sizeof(why), "handshake refused: %.*s", (int)(eol ? eol - p : 40), p);
    conn_fail(c, &st.handshake_errors, why);
    return 0;
  }
  bool ok = false;
  for (const char *l = p; l < end;) {
    const char *eol = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
    if (!eol)
      break;
    static const char name[] = "sec-websocket-accept:";
    if ((size_t)(eol - l) > sizeof(name) && !strncasecmp(l, name, sizeof(name) - 1)) {
      const char *v = l + sizeof(name) - 1;
      while (*v == ' ')
        v++;
      size_t vl = (size_t)(eol - v);
      ok = vl == strlen(c->key_accept) && !memcmp(v, c->key_accept, vl);
    }
    l = eol + 2;
  }
  if (!ok) {
    conn_fail(c, &st.handshake_errors, "bad Sec-WebSocket-Accept");
    return 0;
  }
  c->state = C_OPEN;
  st.pending--;
  c->counted = true;
  if (c->poster)
    st.connected_posters++;
  else
    st.connected_viewers++;
  send_hello(c);
  return hl;
}

/* Everything goes through one static buffer; a connection keeps bytes only
 * while a frame is incomplete. */
static char rbuf[256 * 1024];
static bool rbuf_busy;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)h;
  (void)suggested;
  if (rbuf_busy) { /* not expected on one thread; be safe */
    b->base = malloc(65536);
    b->len = b->base ? 65536 : 0;
    return;
  }
  rbuf_busy = true;
  *b = uv_buf_init(rbuf, sizeof(rbuf));
}

static size_t consume(struct conn *c, const char *p, size_t n) {
  size_t used = 0;
  if (c->state == C_HANDSHAKE) {
    used = on_handshake(c, p, n);
    if (c->state != C_OPEN)
      return used;
  }
  return used + on_frames(c, p + used, n - used);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  struct conn *c = s->data;
  if (nread > 0 && c->state != C_CLOSED) {
    const char *p = b->base;
    size_t n = (size_t)nread;
    if (c->rx_len) { /* finish the frame begun earlier */
      if (c->rx_len + n > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 4096;
        while (cap < c->rx_len + n)
          cap *= 2;
        char *r = realloc(c->rx, cap);
        if (!r)
          abort();
        c->rx = r;
        c->rx_cap = cap;
      }
      memcpy(c->rx + c->rx_len, p, n);
      c->rx_len += n;
      p = c->rx;
      n = c->rx_len;
    }
    size_t used = consume(c, p, n);
    if (c->state != C_CLOSED) {
      size_t left = n - used;
      if (p == c->rx) {
        memmove(c->rx, c->rx + used, left);
        c->rx_len = left;
      } else if (left) {
        if (left > c->rx_cap) {
          char *r = realloc(c->rx, left < 4096 ? 4096 : left);
          if (!r)
            abort();
          c->rx = r;
          c->rx_cap = left < 4096 ? 4096 : left;
        }
        memcpy(c->rx, p + used, left);
        c->rx_len = left;
      }
      if (!c->rx_len && c->rx_cap > 65536) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
      }
    }
  } else if (nread < 0) {
    conn_fail(c, nread == UV_EOF ? &st.closed_by_server : &st.protocol_errors,
              nread == UV_EOF ? "server closed the connection" : uv_strerror((int)nread));
  }
  if (b->base == rbuf)
    rbuf_busy = false;
  else
    free(b->base);
}

static void b64(const unsigned char *in, size_t n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = 0;
}

static void on_connect(uv_connect_t *req, int status) {
  struct conn *c = req->handle->data;
  if (c->state == C_CLOSED)
    return;
  if (status < 0) {
    conn_fail(c, &st.connect_errors, uv_strerror(status));
    return;
  }
  unsigned char key[16];
  for (int i = 0; i < 16; i += 4) {
    uint32_t r = rng32();
    memcpy(key + i, &r, 4);
  }
  char key64[32];
  b64(key, 16, key64);
  char cat[80];
  int cl = snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key64);
  unsigned char dig[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)cat, (size_t)cl, dig);
  b64(dig, sizeof(dig), c->key_accept);
  char rq[512];
  int n = snprintf(rq, sizeof(rq),
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   opt.path, opt.host, opt.port, key64);
  c->state = C_HANDSHAKE;
  int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (r < 0) {
    conn_fail(c, &st.connect_errors, uv_strerror(r));
    return;
  }
  conn_write(c, rq, (size_t)n);
}

static void conn_start(struct conn *c, bool poster, int id) {
  memset(c, 0, sizeof(*c));
  c->poster = poster;
  c->id = id;
  c->state = C_CONNECTING;
  st.pending++;
  st.started++;
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  uv_tcp_nodelay(&c->tcp, 1);
  int r = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&server_addr, on_connect);
  if (r < 0)
    conn_fail(c, &st.connect_errors, uv_strerror(r));
}

/* ---- The server process, from /proc */

static double proc_cpu_s(void) {
  if (!opt.pid)
    return 0;
  char path[64], buf[2048];
  snprintf(path, sizeof(path), "/proc/%d/stat", opt.pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the name may hold spaces */
  if (!p)
    return 0;
  unsigned long long ut = 0, stt = 0;
  /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
    return 0;
  return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kb(void) {
  if (!opt.pid)
    return 0;
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", opt.pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  long kb = 0;
  while (fgets(line, sizeof(line), f))
    if (!strncmp(line, "VmRSS:", 6))
      kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

static double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

/* ---- Phases: ramp → settle (idle sample) → storm → drain → report */

enum phase { P_BASE, P_RAMP, P_SETTLE, P_STORM, P_DRAIN, P_DONE };
static enum phase phase = P_RAMP;
static uv_timer_t ramp_timer, phase_timer, post_timer, sample_timer;
static uint64_t phase_t0_us, t_start_us;
static long rss_base_kb, rss_idle_kb, rss_storm_peak_kb;
static double cpu_base_s, cpu_idle_s, cpu_storm0_s, cpu_storm1_s, self_cpu0, self_cpu1;
static double connect_s, storm_s, drain_s;
static uint64_t nonce_next;
static int post_rr;

/* --text cjk: the comments, one a line (no quote, backslash or control
 * character: they go into JSON as they are). */
#define CJK_MARK_EVERY 8
static char **cjk;
static size_t cjk_n;

static bool load_cjk(const char *path) {
  FILE *f = fopen(path, "r");
  char line[512];
  while (f && fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\r\n")] = 0;
    bool ok = line[0] != 0;
    for (const unsigned char *q = (const unsigned char *)line; *q; q++)
      ok = ok && *q >= 0x20 && *q != '"' && *q != '\\';
    char **grown = ok ? realloc(cjk, (cjk_n + 1) * sizeof(*cjk)) : cjk;
    if (ok && grown && (grown[cjk_n] = strdup(line)))
      cjk = grown, cjk_n++;
  }
  if (f)
    fclose(f);
  return cjk_n > 0;
}

static int comment_text(char *out, size_t cap, int poster, uint64_t k) {
  if (!opt.cjk)
    return snprintf(out, cap, "bench @T%" PRIu64 " from p%d #%" PRIu64 " 新年快乐", now_us(), poster, k);
  const char *line = cjk[rng32() % cjk_n];
  if (k % CJK_MARK_EVERY)
    return snprintf(out, cap, "%s", line);
  return snprintf(out, cap, "%s @T%" PRIu64, line, now_us());
}

static void on_post(uv_timer_t *t) {
  (void)t;
  if (phase != P_STORM)
    return;
  double el = (double)(now_us() - storm_t0_us) / 1e6;
  uint64_t due = (uint64_t)(el * opt.rate);
  for (int guard = 0; st.sent < due && guard < opt.posters * 64; guard++) {
    struct conn *c = &posters[post_rr++ % opt.posters];
    if (c->state != C_OPEN)
      continue;
    char m[768], text[600];
    uint64_t k = nonce_next++, t = now_us();
    comment_text(text, sizeof(text), c->id, k);
    int n = snprintf(m, sizeof(m), "{\"type\":\"comment\",\"text\":\"%s\",\"nonce\":\"n%" PRIu64 ".%" PRIu64 "\"}",
                     text, k, t);
    ws_send(c, 0x1, m, (size_t)n);
    st.sent++;
  }
}

static void on_sample(uv_timer_t *t) {
  (void)t;
  if (phase == P_STORM || phase == P_DRAIN) {
    long r = proc_rss_kb();
    if (r > rss_storm_peak_kb)
      rss_storm_peak_kb = r;
  }
}

static void report(void);

static void on_phase(uv_timer_t *t);
static void on_ramp(uv_timer_t *t);

static void enter(enum phase p, double seconds) {
  phase = p;
  phase_t0_us = now_us();
  if (seconds > 0)
    uv_timer_start(&phase_timer, on_phase, (uint64_t)(seconds * 1000), 0);
}

static void on_phase(uv_timer_t *t) {
  (void)t;
  switch (phase) {
  case P_BASE: /* the server has settled after its start: its RSS with no one connected */
    rss_base_kb = proc_rss_kb();
    cpu_base_s = proc_cpu_s();
    t_start_us = now_us();
    for (int i = 0; i < opt.posters; i++)
      conn_start(&posters[i], true, i);
    enter(P_RAMP, opt.connect_timeout);
    uv_timer_start(&ramp_timer, on_ramp, 0, (uint64_t)opt.ramp_ms);
    break;
  case P_RAMP: /* connect timeout: go on with who is there */
    fprintf(stderr, "chat_load: connect timeout, %d of %d viewers connected\n", st.connected_viewers, opt.viewers);
    uv_timer_stop(&ramp_timer);
    connect_s = (double)(now_us() - t_start_us) / 1e6;
    enter(P_SETTLE, opt.settle);
    break;
  case P_SETTLE:
    rss_idle_kb = proc_rss_kb();
    cpu_idle_s = proc_cpu_s() - cpu_base_s; /* connecting and welcoming everyone */
    fprintf(stderr, "chat_load: idle: viewers=%d posters=%d welcomed=%" PRIu64 " server_rss=%ld kB\n",
            st.connected_viewers, st.connected_posters, st.welcome, rss_idle_kb);
    cpu_storm0_s = proc_cpu_s();
    self_cpu0 = self_cpu_s();
    st.events_storm = 0;
    storm_on = true;
    storm_t0_us = now_us();
    enter(P_STORM, opt.duration);
    uv_timer_start(&post_timer, on_post, 0, 2);
    break;
  case P_STORM:
    uv_timer_stop(&post_timer);
    storm_s = (double)(now_us() - storm_t0_us) / 1e6;
    enter(P_DRAIN, opt.drain);
    break;
  case P_DRAIN: {
    /* Wait on while a server is still delivering its backlog (every comment
     * to every viewer), up to --drain-max: a server that falls behind is
     * then measured over all the work it was given. */
    uint64_t now = now_us();
    double expected = (double)st.sent * st.connected_viewers;
    if ((double)st.events_storm < expected && now - last_event_us < 1000000 &&
        (double)(now - storm_t0_us) / 1e6 < storm_s + opt.drain_max) {
      uv_timer_start(&phase_timer, on_phase, 250, 0);
      break;
    }
    drain_s = (double)(now - storm_t0_us) / 1e6 - storm_s;
    storm_on = false;
    storm_done = true;
    cpu_storm1_s = proc_cpu_s();
    self_cpu1 = self_cpu_s();
    phase = P_DONE;
    report();
    uv_timer_stop(&sample_timer);
    uv_timer_stop(&ramp_timer);
    for (int i = 0; i < opt.viewers; i++)
      conn_close(&viewers[i]);
    for (int i = 0; i < opt.posters; i++)
      conn_close(&posters[i]);
    uv_close((uv_handle_t *)&ramp_timer, NULL);
    uv_close((uv_handle_t *)&phase_timer, NULL);
    uv_close((uv_handle_t *)&post_timer, NULL);
    uv_close((uv_handle_t *)&sample_timer, NULL);
    break;
  }
  case P_DONE: break;
  }
}

static void on_ramp(uv_timer_t *t) {
  (void)t;
  for (int i = 0; i < opt.ramp_batch && ramp_next < opt.viewers && st.pending < opt.max_pending; i++) {
    conn_start(&viewers[ramp_next], false, ramp_next);
    ramp_next++;
  }
  bool all_tried = ramp_next >= opt.viewers;
  if (all_tried && !st.pending && phase == P_RAMP) {
    uv_timer_stop(&ramp_timer);
    connect_s = (double)(now_us() - t_start_us) / 1e6;
    fprintf(stderr,
            "chat_load: %d viewers + %d posters connected in %.1f s (errors: connect %" PRIu64 ", handshake %" PRIu64
            ")\n",
            st.connected_viewers, st.connected_posters, connect_s, st.connect_errors, st.handshake_errors);
    enter(P_SETTLE, opt.settle);
  }
}

static bool report_ok;

static void report(void) {
  report_ok = st.connected_viewers == opt.viewers && st.connected_posters == opt.posters && st.acks > 0 &&
              !st.connect_errors && !st.handshake_errors && !st.closed_by_server && !st.protocol_errors;
  double cpu = cpu_storm1_s - cpu_storm0_s;
  double window = storm_s + drain_s;
  double expected = (double)st.sent * st.connected_viewers;
  int nv = st.connected_viewers;
  char js[4096];
  int n =
      snprintf(js, sizeof(js),
               "{\"label\":\"%s\",\"viewers\":%d,\"viewers_wanted\":%d,\"posters\":%d,\"rate\":%g,"
               "\"duration_s\":%.3f,\"drain_s\":%.3f,\"connect_s\":%.3f,"
               "\"sent\":%" PRIu64 ",\"acks\":%" PRIu64 ",\"error_replies\":%" PRIu64 ",\"rate_limited\":%" PRIu64 ","
               "\"events\":%" PRIu64 ",\"events_per_s\":%.1f,\"expected_events\":%.0f,\"delivered_ratio\":%.4f,"
               "\"frames\":%" PRIu64 ",\"lat_samples\":%" PRIu64 ",\"lat_p50_ms\":%.2f,\"lat_p90_ms\":%.2f,"
               "\"lat_p99_ms\":%.2f,\"lat_max_ms\":%.2f,\"lat_mean_ms\":%.2f,"
               "\"ack_p50_ms\":%.2f,\"ack_p99_ms\":%.2f,\"ack_max_ms\":%.2f,"
               "\"connect_errors\":%" PRIu64 ",\"handshake_errors\":%" PRIu64 ",\"closed_by_server\":%" PRIu64
               ",\"protocol_errors\":%" PRIu64 ",\"pings\":%" PRIu64 ","
               "\"server_pid\":%d,\"server_cpu_s\":%.3f,\"server_cpu_idle_s\":%.3f,\"events_per_cpu_s\":%.1f,"
               "\"server_rss_base_kb\":%ld,\"server_rss_idle_kb\":%ld,\"server_rss_storm_peak_kb\":%ld,"
               "\"rss_per_idle_viewer_kb\":%.2f,\"client_cpu_s\":%.3f,\"compress\":%s,\"text\":\"%s\","
               "\"wire_bytes\":%" PRIu64 ",\"wire_bytes_per_event\":%.1f,\"binary_frames\":%" PRIu64 "}\n",
               opt.label, nv, opt.viewers, opt.posters, opt.rate, storm_s, drain_s, connect_s, st.sent, st.acks,
               st.error_replies, st.rate_limited, st.events_storm, window > 0 ? (double)st.events_storm / window : 0,
               expected, expected > 0 ? (double)st.events_storm / expected : 0, st.frames, lat.count,
               hist_pct(&lat, 0.50), hist_pct(&lat, 0.90), hist_pct(&lat, 0.99), (double)lat.max_us / 1000.0,
               lat.count ? (double)lat.sum_us / (double)lat.count / 1000.0 : -1, hist_pct(&ack_lat, 0.50),
               hist_pct(&ack_lat, 0.99), (double)ack_lat.max_us / 1000.0, st.connect_errors, st.handshake_errors,
               st.closed_by_server, st.protocol_errors, st.pings, opt.pid, cpu, cpu_idle_s,
               cpu > 0 ? (double)st.events_storm / cpu : 0, rss_base_kb, rss_idle_kb, rss_storm_peak_kb,
               nv > 0 && rss_idle_kb ? (double)(rss_idle_kb - rss_base_kb) / nv : 0, self_cpu1 - self_cpu0,
               opt.compress ? "true" : "false", opt.cjk ? "cjk" : "ascii", st.wire_bytes_storm,
               st.events_storm ? (double)st.wire_bytes_storm / (double)st.events_storm : 0, st.binary_frames);
  fwrite(js, 1, (size_t)n, stdout);
  fflush(stdout);
  if (opt.json_path) {
    FILE *f = fopen(opt.json_path, "w");
    if (f) {
      fwrite(js, 1, (size_t)n, f);
      fclose(f);
    }
  }
  fprintf(stderr,
          "chat_load[%s]: viewers=%d posters=%d sent=%" PRIu64 " acked=%" PRIu64 " events=%" PRIu64
          " (%.0f/s, %.1f%% of expected) p50=%.1f ms p99=%.1f ms max=%.1f ms ack_p99=%.1f ms server_cpu=%.2f s "
          "client_cpu=%.2f s\n",
          opt.label, nv, st.connected_posters, st.sent, st.acks, st.events_storm,
          window > 0 ? (double)st.events_storm / window : 0,
          expected > 0 ? 100.0 * (double)st.events_storm / expected : 0, hist_pct(&lat, 0.5), hist_pct(&lat, 0.99),
          (double)lat.max_us / 1000.0, hist_pct(&ack_lat, 0.99), cpu, self_cpu1 - self_cpu0);
}

/* ---- Main */

static void usage(void) {
  fprintf(stderr, "usage: chat_load [--url ws://HOST:PORT/chat/CHANNEL] [--viewers N] [--posters P]\n"
                  "                 [--rate R] [--duration S] [--settle S] [--drain S] [--drain-max S]\n"
                  "                 [--ramp-batch N] [--ramp-ms MS] [--connect-timeout S] [--base-settle S]\n"
                  "                 [--pid SERVER_PID] [--json FILE] [--label NAME]\n"
                  "                 [--compress 0|1] [--text ascii|cjk] [--cjk-file FILE]\n");
}

static bool parse_url(const char *u) {
  if (strncmp(u, "ws://", 5))
    return false;
  u += 5;
  const char *slash = strchr(u, '/');
  const char *colon = strchr(u, ':');
  if (!slash)
    return false;
  if (colon && colon < slash) {
    snprintf(opt.host, sizeof(opt.host), "%.*s", (int)(colon - u), u);
    opt.port = atoi(colon + 1);
  } else {
    snprintf(opt.host, sizeof(opt.host), "%.*s", (int)(slash - u), u);
    opt.port = 80;
  }
  snprintf(opt.path, sizeof(opt.path), "%s", slash);
  return opt.port > 0;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage();
      return 0;
    }
    if (!v) {
      usage();
      return 2;
    }
    i++;
    if (!strcmp(a, "--url")) {
      if (!parse_url(v)) {
        fprintf(stderr, "chat_load: bad url %s\n", v);
        return 2;
      }
    } else if (!strcmp(a, "--viewers"))
      opt.viewers = atoi(v);
    else if (!strcmp(a, "--posters"))
      opt.posters = atoi(v);
    else if (!strcmp(a, "--rate"))
      opt.rate = atof(v);
    else if (!strcmp(a, "--duration"))
      opt.duration = atof(v);
    else if (!strcmp(a, "--settle"))
      opt.settle = atof(v);
    else if (!strcmp(a, "--drain"))
      opt.drain = atof(v);
    else if (!strcmp(a, "--drain-max"))
      opt.drain_max = atof(v);
    else if (!strcmp(a, "--base-settle"))
      opt.base_settle = atof(v);
    else if (!strcmp(a, "--connect-timeout"))
      opt.connect_timeout = atof(v);
    else if (!strcmp(a, "--ramp-batch"))
      opt.ramp_batch = atoi(v);
    else if (!strcmp(a, "--ramp-ms"))
      opt.ramp_ms = atoi(v);
    else if (!strcmp(a, "--pid"))
      opt.pid = atoi(v);
    else if (!strcmp(a, "--json"))
      opt.json_path = v;
    else if (!strcmp(a, "--label"))
      opt.label = v;
    else if (!strcmp(a, "--compress"))
      opt.compress = atoi(v) != 0;
    else if (!strcmp(a, "--text") && (!strcmp(v, "cjk") || !strcmp(v, "ascii")))
      opt.cjk = !strcmp(v, "cjk");
    else if (!strcmp(a, "--cjk-file"))
      opt.cjk_file = v;
    else {
      usage();
      return 2;
    }
  }
  if (opt.viewers < 0 || opt.posters < 1 || opt.rate <= 0 || opt.duration <= 0 || opt.ramp_batch < 1 ||
      opt.ramp_ms < 1) {
    usage();
    return 2;
  }
  if (opt.cjk && !load_cjk(opt.cjk_file ? opt.cjk_file : "bench/cjk_comments.txt")) {
    fprintf(stderr, "chat_load: --text cjk needs --cjk-file with comments, one a line\n");
    return 2;
  }
  /* 10k sockets need more than the usual 1024 descriptors. */
  struct rlimit rl;
  if (!getrlimit(RLIMIT_NOFILE, &rl)) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)(opt.viewers + opt.posters + 64))
      fprintf(stderr, "chat_load: warning: RLIMIT_NOFILE %llu is below %d connections\n",
              (unsigned long long)rl.rlim_cur, opt.viewers + opt.posters);
  }
  if (uv_ip4_addr(opt.host, opt.port, &server_addr)) {
    fprintf(stderr, "chat_load: host must be a numeric IPv4 address: %s\n", opt.host);
    return 2;
  }
  rng_state ^= uv_hrtime() ^ ((uint64_t)getpid() << 32);
  lat.b = calloc(HIST_N, sizeof(*lat.b));
  ack_lat.b = calloc(HIST_N, sizeof(*ack_lat.b));
  viewers = calloc((size_t)opt.viewers + 1, sizeof(*viewers));
  posters = calloc((size_t)opt.posters, sizeof(*posters));
  if (!lat.b || !ack_lat.b || !viewers || !posters)
    return 1;
  loop = uv_default_loop();
  uv_timer_init(loop, &ramp_timer);
  uv_timer_init(loop, &phase_timer);
  uv_timer_init(loop, &post_timer);
  uv_timer_init(loop, &sample_timer);
  enter(P_BASE, opt.base_settle > 0 ? opt.base_settle : 0.001);
  uv_timer_start(&sample_timer, on_sample, 250, 250);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  free(lat.b);
  free(ack_lat.b);
  free(viewers);
  free(posters);
  return report_ok ? 0 : 1;
}
