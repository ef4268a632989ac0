/* rtmp_push: restream a channel to an rtmp:// target. See the header.
 *
 * Each connection attempt has its own struct push_conn (the TCP handle
 * closes asynchronously, and a new attempt may start before the old handle
 * is gone). The push itself owns a timer (backoff) and at most one
 * getaddrinfo request; it is freed once stopped and all of them are done. */
#include "relay/rtmp_push.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "relay/amf.h"
#include "relay/channel.h"
#include "relay/rtmp_chunk.h"
#include "relay/rtmp_handshake.h"

enum push_state { PUSH_IDLE, PUSH_CONNECTING, PUSH_PUBLISHING, PUSH_BACKOFF };

struct push_conn;

struct rtmp_push {
  uv_loop_t *loop;
  const struct rtmp_push_limits *lim; /* the owner's, read at each use */
  struct channel *ch;
  int sink_id;
  char url[512]; /* for logs: without its stream key (config_redact_url) */
  char host[256];
  uint16_t port;
  char app_name[256];
  char stream[256];
  char tc_url[512];
  enum push_state state;
  bool live; /* the channel has a feed */
  bool stopping;
  int pending; /* timer handle + getaddrinfo in flight + conns alive */
  void (*stopped_cb)(void *arg);
  void *stopped_arg;
  uv_timer_t timer;
  uv_getaddrinfo_t gai;
  bool gai_busy;
  struct push_conn *conn;
  double backoff_s;
  uint64_t bytes_sent, reconnects;
};

struct push_conn {
  uv_tcp_t tcp;
  uv_connect_t connect;
  struct rtmp_push *p; /* alive until this connection's close callback */
  struct rtmp_handshake hs;
  struct rtmp_chunk_reader rd;
  uint32_t out_chunk;
  uint32_t stream_id;
  uint32_t peer_window;
  uint64_t acked;
  bool wait_key, has_video;
  struct buf out;
  uint8_t rbuf[16384];
};

struct push_write {
  uv_write_t req;
  struct rtmp_push *p; /* may be NULL */
  AVBufferRef *ref;
  uv_buf_t bufs[2];
  uint8_t hdr[20];
  uint8_t data[];
};

static void push_fail(struct rtmp_push *p, const char *why);
static void push_connect(struct rtmp_push *p);
static void pc_abandon(struct rtmp_push *p);

static void push_maybe_free(struct rtmp_push *p) {
  if (!p->stopping || p->pending != 0)
    return;
  void (*cb)(void *) = p->stopped_cb;
  void *arg = p->stopped_arg;
  free(p);
  if (cb)
    cb(arg);
}

/* --- URL --- */

int rtmp_push_parse_url(const char *url, char *host, size_t host_len, uint16_t *port, char *app, size_t app_len,
                        char *stream, size_t stream_len) {
  if (strncmp(url, "rtmp://", 7) != 0)
    return -EINVAL;
  const char *h = url + 7;
  const char *slash = strchr(h, '/');
  if (!slash)
    return -EINVAL;
  const char *hend = slash;
  *port = 1935;
  if (*h == '[') {
    const char *rb = memchr(h, ']', (size_t)(slash - h));
    if (!rb)
      return -EINVAL;
    if (rb + 1 < slash && rb[1] == ':')
      *port = (uint16_t)atoi(rb + 2);
    h++;
    hend = rb;
  } else {
    const char *colon = memchr(h, ':', (size_t)(slash - h));
    if (colon) {
      int pt = atoi(colon + 1);
      if (pt <= 0 || pt > 65535)
        return -EINVAL;
      *port = (uint16_t)pt;
      hend = colon;
    }
  }
  const char *last = strrchr(slash, '/');
  if (hend == h || (size_t)(hend - h) >= host_len || last == slash || !last[1])
    return -EINVAL;
  size_t al = (size_t)(last - slash - 1);
  if (al >= app_len || strlen(last + 1) >= stream_len)
    return -EINVAL;
  memcpy(host, h, (size_t)(hend - h));
  host[hend - h] = '\0';
  memcpy(app, slash + 1, al);
  app[al] = '\0';
  snprintf(stream, stream_len, "%s", last + 1);
  return 0;
}

/* --- writing --- */

static void push_on_written(uv_write_t *req, int status) {
  struct push_write *w = (struct push_write *)req;
  if (w->p && status == 0)
    w->p->bytes_sent += w->bufs[0].len + w->bufs[1].len;
  av_buffer_unref(&w->ref);
  free(w);
  (void)status; /* errors show up on read as well */
}

static int push_write(struct push_conn *pc, struct push_write *w, int nbufs) {
  w->p = pc->p;
  int rc = uv_write(&w->req, (uv_stream_t *)&pc->tcp, w->bufs, (unsigned)nbufs, push_on_written);
  if (rc < 0) {
    av_buffer_unref(&w->ref);
    free(w);
  }
  return rc;
}

static void push_flush(struct push_conn *pc) {
  if (!pc->out.len)
    return;
  struct push_write *w = calloc(1, sizeof *w + pc->out.len);
  if (w) {
    memcpy(w->data, pc->out.data, pc->out.len);
    w->bufs[0] = uv_buf_init((char *)w->data, (unsigned)pc->out.len);
    push_write(pc, w, 1);
  }
  buf_reset(&pc->out);
}

static void push_hs_send(void *opaque, const uint8_t *d, size_t n) {
  struct push_conn *pc = opaque;
  buf_append(&pc->out, d, n);
  push_flush(pc);
}

/* Shared wire bytes, with the first header patched when the target handed
 * out another stream id than the 1 players get. */
static void push_send_wire(struct push_conn *pc, AVBufferRef *wire) {
  struct push_write *w = calloc(1, sizeof *w);
  if (!w || !(w->ref = av_buffer_ref(wire))) {
    free(w);
    return;
  }
  size_t hl = rtmp_chunk_first_header_len(wire->data, (size_t)wire->size);
  if (pc->stream_id == 1 || hl == 0 || hl > sizeof w->hdr) {
    w->bufs[0] = uv_buf_init((char *)wire->data, (unsigned)wire->size);
    w->bufs[1] = uv_buf_init(NULL, 0);
    push_write(pc, w, 1);
    return;
  }
  memcpy(w->hdr, wire->data, hl);
  rtmp_chunk_patch_stream_id(w->hdr, hl, pc->stream_id);
  w->bufs[0] = uv_buf_init((char *)w->hdr, (unsigned)hl);
  w->bufs[1] = uv_buf_init((char *)wire->data + hl, (unsigned)((size_t)wire->size - hl));
  push_write(pc, w, 2);
}

static void push_command(struct push_conn *pc, const char *name, double txid, const char *arg, uint32_t sid) {
  struct rtmp_push *p = pc->p;
  struct buf b;
  buf_init(&b);
  amf_put_string(&b, name);
  amf_put_number(&b, txid);
  if (strcmp(name, "connect") == 0) {
    amf_put_object_start(&b);
    amf_put_prop_string(&b, "app", p->app_name);
    amf_put_prop_string(&b, "type", "nonprivate");
    amf_put_prop_string(&b, "flashVer", "FMLE/3.0 (compatible; galarelay)");
    amf_put_prop_string(&b, "tcUrl", p->tc_url);
    amf_put_object_end(&b);
  } else {
    amf_put_null(&b);
    if (arg)
      amf_put_string(&b, arg);
    if (strcmp(name, "publish") == 0)
      amf_put_string(&b, "live");
  }
  rtmp_chunk_write(&pc->out, RTMP_CSID_COMMAND, RTMP_MSG_COMMAND_AMF0, sid, 0, (uint8_t *)b.data, b.len, pc->out_chunk);
  buf_free(&b);
  push_flush(pc);
}

/* --- media from the channel --- */

static void push_send_start(struct push_conn *pc) {
  struct channel *ch = pc->p->ch;
  size_t len;
  uint32_t ts = channel_header_timestamp(ch);
  const uint8_t *meta = channel_metadata(ch, &len);
  if (meta) {
    struct buf b;
    buf_init(&b);
    amf_put_string(&b, "@setDataFrame");
    buf_append(&b, meta, len);
    /* at timestamp 0: see channel_header_timestamp */
    rtmp_chunk_write(&pc->out, RTMP_CSID_DATA, RTMP_MSG_DATA_AMF0, pc->stream_id, 0, (uint8_t *)b.data, b.len,
                     pc->out_chunk);
    buf_free(&b);
  }
  const uint8_t *seq = channel_sequence_header(ch, CHANNEL_VIDEO, &len);
  pc->has_video = seq != NULL;
  if (seq)
    rtmp_chunk_write(&pc->out, RTMP_CSID_VIDEO, RTMP_MSG_VIDEO, pc->stream_id, ts, seq, len, pc->out_chunk);
  seq = channel_sequence_header(ch, CHANNEL_AUDIO, &len);
  if (seq)
    rtmp_chunk_write(&pc->out, RTMP_CSID_AUDIO, RTMP_MSG_AUDIO, pc->stream_id, ts, seq, len, pc->out_chunk);
  push_flush(pc);
  pc->wait_key = pc->has_video;
}

static void sink_on_start(void *opaque, const struct channel_feed_info *info) {
  (void)info;
  struct rtmp_push *p = opaque;
  p->live = true;
  if (p->state == PUSH_PUBLISHING)
    push_send_start(p->conn); /* a new timeline: headers again */
  else if (p->state == PUSH_IDLE)
    push_connect(p);
}

static void sink_on_packet(void *opaque, const AVPacket *pkt, int64_t arrival_ms) {
  (void)arrival_ms;
  struct rtmp_push *p = opaque;
  if (p->state != PUSH_PUBLISHING || !pkt->opaque_ref)
    return;
  struct push_conn *pc = p->conn;
  bool key = pkt->stream_index == CHANNEL_VIDEO && (pkt->flags & AV_PKT_FLAG_KEY);
  if (pc->wait_key && !key)
    return;
  pc->wait_key = false;
  /* Same bound and drop policy as a slow player: skip to the next keyframe. */
  if (pc->tcp.write_queue_size + (size_t)pkt->opaque_ref->size > p->lim->queue_bytes) {
    pc->wait_key = pc->has_video;
    return;
  }
  push_send_wire(pc, pkt->opaque_ref);
}

static void sink_on_stop(void *opaque) {
  struct rtmp_push *p = opaque;
  p->live = false;
  if (p->conn)
    log_info("rtmp", "push stops: channel offline channel=%s url=%s", channel_name(p->ch), p->url);
  pc_abandon(p);
  uv_timer_stop(&p->timer);
  p->state = PUSH_IDLE;
}

static const struct channel_sink_ops push_sink_ops = {
    .on_start = sink_on_start,
    .on_packet = sink_on_packet,
    .on_stop = sink_on_stop,
};

/* --- connection --- */

static void pc_on_close(uv_handle_t *h) {
  struct push_conn *pc = h->data;
  struct rtmp_push *p = pc->p;
  rtmp_chunk_reader_free(&pc->rd);
  buf_free(&pc->out);
  free(pc);
  p->pending--;
  push_maybe_free(p);
}

static void pc_abandon(struct rtmp_push *p) {
  struct push_conn *pc = p->conn;
  if (!pc)
    return;
  p->conn = NULL;
  uv_close((uv_handle_t *)&pc->tcp, pc_on_close);
}

static void push_on_timer(uv_timer_t *t) {
  struct rtmp_push *p = t->data;
  if (p->live)
    push_connect(p);
  else
    p->state = PUSH_IDLE;
}

static void push_fail(struct rtmp_push *p, const char *why) {
  if (p->conn)
    log_warn("rtmp", "push failed channel=%s url=%s why=%s retry_in=%.1fs", channel_name(p->ch), p->url, why,
             p->backoff_s);
  pc_abandon(p);
  if (p->stopping)
    return;
  p->state = PUSH_BACKOFF;
  p->reconnects++;
  uv_timer_start(&p->timer, push_on_timer, (uint64_t)(p->backoff_s * 1000), 0);
  double cap = p->lim->retry_max_s;
  p->backoff_s = p->backoff_s * 2 > cap ? cap : p->backoff_s * 2;
}

static int pc_on_message(void *opaque, const struct rtmp_msg *m) {
  struct push_conn *pc = opaque;
  struct rtmp_push *p = pc->p;
  uint32_t v = m->len >= 4
                   ? (uint32_t)m->data[0] << 24 | (uint32_t)m->data[1] << 16 | (uint32_t)m->data[2] << 8 | m->data[3]
                   : 0;
  switch (m->type) {
  case RTMP_MSG_SET_CHUNK_SIZE: return rtmp_chunk_reader_set_chunk_size(&pc->rd, v & 0x7fffffffu);
  case RTMP_MSG_ABORT: rtmp_chunk_reader_abort(&pc->rd, v); return 0;
  case RTMP_MSG_WINDOW_ACK_SIZE: pc->peer_window = v; return 0;
  case RTMP_MSG_USER_CONTROL:
    if (m->len >= 6 && (m->data[0] << 8 | m->data[1]) == RTMP_UC_PING_REQUEST) {
      uint32_t ts = (uint32_t)m->data[2] << 24 | (uint32_t)m->data[3] << 16 | (uint32_t)m->data[4] << 8 | m->data[5];
      rtmp_chunk_write_user_control(&pc->out, RTMP_UC_PING_RESPONSE, ts, pc->out_chunk);
      push_flush(pc);
    }
    return 0;
  case RTMP_MSG_COMMAND_AMF0: break;
  default: return 0;
  }
  struct amf_reader r;
  amf_reader_init(&r, m->data, m->len);
  char name[32] = "", code[128] = "", level[32] = "";
  double txid = 0, sid = 0;
  struct amf_field info[] = {{AMF_STRING, "code", code, sizeof code}, {AMF_STRING, "level", level, sizeof level}};
  struct amf_field_table t = {info, 2};
  struct amf_field f[] = {
      {AMF_STRING, NULL, name, sizeof name},
      {AMF_NUMBER, NULL, &txid, sizeof txid},
      {AMF_OBJECT, NULL, &t, 0},
      {AMF_OBJECT, NULL, &t, 0},
  };
  if (amf_decode_seq(&r, f, 4) < 0)
    return 0;
  if (strcmp(name, "_result") == 0 && txid == 1) {
    push_command(pc, "releaseStream", 2, p->stream, 0);
    push_command(pc, "FCPublish", 3, p->stream, 0);
    push_command(pc, "createStream", 4, NULL, 0);
  } else if (strcmp(name, "_result") == 0 && txid == 4) {
    /* _result, 4, null, stream id */
    amf_reader_init(&r, m->data, m->len);
    struct amf_field g[] = {{AMF_NULL, NULL, NULL, 0},
                            {AMF_NULL, NULL, NULL, 0},
                            {AMF_NULL, NULL, NULL, 0},
                            {AMF_NUMBER, NULL, &sid, sizeof sid}};
    if (amf_decode_seq(&r, g, 4) < 0 || sid < 1 || sid > 0xffffff)
      return -EPROTO;
    pc->stream_id = (uint32_t)sid;
    push_command(pc, "publish", 5, p->stream, pc->stream_id);
  } else if (strcmp(name, "_error") == 0 || strcmp(level, "error") == 0) {
    log_warn("rtmp", "push refused channel=%s url=%s code=%s", channel_name(p->ch), p->url, code);
    return -EPROTO;
  } else if (strcmp(name, "onStatus") == 0 && strcmp(code, "NetStream.Publish.Start") == 0) {
    log_info("rtmp", "push publishing channel=%s url=%s", channel_name(p->ch), p->url);
    p->state = PUSH_PUBLISHING;
    p->backoff_s = 1;
    push_send_start(pc);
  }
  return 0;
}

static void pc_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  (void)s;
  struct push_conn *pc = h->data;
  *b = uv_buf_init((char *)pc->rbuf, sizeof pc->rbuf);
}

static void pc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  struct push_conn *pc = s->data;
  struct rtmp_push *p = pc->p;
  if (p->conn != pc)
    return;
  if (n < 0) {
    push_fail(p, n == UV_EOF ? "target closed the connection" : uv_strerror((int)n));
    return;
  }
  const uint8_t *d = pc->rbuf;
  size_t len = (size_t)n;
  if (pc->hs.state != RTMP_HS_DONE) {
    long used = rtmp_handshake_feed(&pc->hs, d, len, push_hs_send, pc);
    if (used < 0) {
      push_fail(p, "bad handshake");
      return;
    }
    d += used;
    len -= (size_t)used;
    if (pc->hs.state != RTMP_HS_DONE)
      return;
    rtmp_chunk_write_set_chunk_size(&pc->out, RTMP_OUT_CHUNK_SIZE, pc->out_chunk);
    pc->out_chunk = RTMP_OUT_CHUNK_SIZE;
    push_flush(pc);
    push_command(pc, "connect", 1, NULL, 0);
  }
  if (rtmp_chunk_reader_feed(&pc->rd, d, len, pc_on_message, pc) < 0) {
    if (p->conn == pc)
      push_fail(p, "protocol error");
    return;
  }
  if (pc->peer_window && pc->rd.bytes_in - pc->acked >= pc->peer_window) {
    pc->acked = pc->rd.bytes_in;
    rtmp_chunk_write_ack(&pc->out, (uint32_t)pc->rd.bytes_in, pc->out_chunk);
    push_flush(pc);
  }
}

static void pc_on_connect(uv_connect_t *req, int status) {
  struct push_conn *pc = req->data;
  struct rtmp_push *p = pc->p;
  if (p->conn != pc || status == UV_ECANCELED)
    return;
  if (status < 0) {
    push_fail(p, uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(&pc->tcp, 1);
  uv_read_start((uv_stream_t *)&pc->tcp, pc_alloc, pc_read);
  rtmp_handshake_client_init(&pc->hs, push_hs_send, pc);
}

static void push_connect_addr(struct rtmp_push *p, const struct sockaddr *sa) {
  struct push_conn *pc = calloc(1, sizeof *pc);
  if (!pc) {
    push_fail(p, "out of memory");
    return;
  }
  pc->p = p;
  pc->out_chunk = 128;
  pc->stream_id = 1;
  buf_init(&pc->out);
  rtmp_chunk_reader_init(&pc->rd, 16u << 20, 16u << 20);
  uv_tcp_init(p->loop, &pc->tcp);
  pc->tcp.data = pc;
  pc->connect.data = pc;
  p->pending++;
  p->conn = pc;
  int rc = uv_tcp_connect(&pc->connect, &pc->tcp, sa, pc_on_connect);
  if (rc < 0)
    push_fail(p, uv_strerror(rc));
}

static void push_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct rtmp_push *p = req->data;
  p->gai_busy = false;
  p->pending--;
  if (p->stopping) {
    uv_freeaddrinfo(res);
    push_maybe_free(p);
    return;
  }
  if (status < 0 || !res) {
    uv_freeaddrinfo(res);
    push_fail(p, status < 0 ? uv_strerror(status) : "no address");
    return;
  }
  push_connect_addr(p, res->ai_addr);
  uv_freeaddrinfo(res);
}

static void push_connect(struct rtmp_push *p) {
  if (p->stopping || p->gai_busy)
    return;
  p->state = PUSH_CONNECTING;
  struct sockaddr_storage ss;
  if (uv_ip4_addr(p->host, p->port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(p->host, p->port, (struct sockaddr_in6 *)&ss) == 0) {
    push_connect_addr(p, (struct sockaddr *)&ss);
    return;
  }
  char port[8];
  snprintf(port, sizeof port, "%u", p->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  p->gai.data = p;
  if (uv_getaddrinfo(p->loop, &p->gai, push_on_resolved, p->host, port, &hints) == 0) {
    p->gai_busy = true;
    p->pending++;
  } else {
    push_fail(p, "cannot resolve");
  }
}

/* --- lifetime --- */

static void push_timer_closed(uv_handle_t *h) {
  struct rtmp_push *p = h->data;
  p->pending--;
  push_maybe_free(p);
}

struct rtmp_push *rtmp_push_start(uv_loop_t *loop, const struct rtmp_push_limits *lim, struct channel *ch,
                                  const char *url) {
  struct rtmp_push *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  /* The key is the target's password: the full URL lives only in the
   * config and in p->stream (the publish command). */
  config_redact_url(url, p->url, sizeof p->url);
  if (rtmp_push_parse_url(url, p->host, sizeof p->host, &p->port, p->app_name, sizeof p->app_name, p->stream,
                          sizeof p->stream) < 0) {
    log_error("rtmp", "push url not usable channel=%s url=%s", channel_name(ch), p->url);
    free(p);
    return NULL;
  }
  p->loop = loop;
  p->lim = lim;
  p->ch = ch;
  p->backoff_s = 1;
  /* tcUrl = the URL without the stream name */
  snprintf(p->tc_url, sizeof p->tc_url, "%.*s", (int)(strrchr(url, '/') - url), url);
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  p->pending = 1;
  p->sink_id = channel_subscribe(ch, &push_sink_ops, p);
  log_info("rtmp", "push target channel=%s url=%s", channel_name(ch), p->url);
  return p;
}

void rtmp_push_stop(struct rtmp_push *p, void (*cb)(void *arg), void *arg) {
  if (!p || p->stopping)
    return;
  p->stopping = true;
  p->stopped_cb = cb;
  p->stopped_arg = arg;
  if (p->sink_id > 0)
    channel_unsubscribe(p->ch, p->sink_id);
  p->sink_id = 0;
  pc_abandon(p); /* p stays allocated until the connection's close callback */
  if (p->gai_busy)
    uv_cancel((uv_req_t *)&p->gai);
  uv_timer_stop(&p->timer);
  uv_close((uv_handle_t *)&p->timer, push_timer_closed);
}

const char *rtmp_push_state(const struct rtmp_push *p) {
  static const char *const names[] = {"idle", "connecting", "publishing", "backoff"};
  return names[p->state];
}
const char *rtmp_push_url(const struct rtmp_push *p) { return p->url; }
uint64_t rtmp_push_bytes_sent(const struct rtmp_push *p) { return p->bytes_sent; }
uint64_t rtmp_push_reconnects(const struct rtmp_push *p) { return p->reconnects; }
