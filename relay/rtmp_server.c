/* rtmp_server: RTMP connections on the loop. See the header.
 *
 * One struct rtmp_conn per TCP connection; it owns its session and, while
 * publishing, a channel feed, or while playing, a channel sink. Every error
 * path reaches conn_close(); memory goes in the uv_close callback. One
 * timer for the whole server checks the deadlines (handshake to publish or
 * play, idle, silent publisher, player of an offline channel). Who may hold
 * a slot, and who makes room for a newcomer, is relay/rtmp_door's: each
 * connection's class there follows what it does (conn_classify). */
#include "relay/rtmp_server.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "config/config.h"
#include "core/buf.h"
#include "relay/channel.h"
#include "relay/flv.h"
#include "core/log.h"
#include "core/memguard.h"
#include "core/netaddr.h"
#include "core/metrics.h"
#include "relay/rtmp_door.h"
#include "relay/rtmp_session.h"

#define SWEEP_MS 250
#define READ_BUF 65536
/* Media messages gathered per player within one loop iteration and then
 * written with one writev (fewer syscalls with 100 players). */
#define BATCH_MAX 32

/* Why a connection was closed by a deadline (metric label). */
enum conn_timeout {
  TIMEOUT_HANDSHAKE,        /* still in the handshake at the deadline */
  TIMEOUT_PUBLISH_OR_PLAY,  /* handshake done, no publish or play */
  TIMEOUT_IDLE,             /* no data for idle_timeout */
  TIMEOUT_SILENT_PUBLISHER, /* publishing, no media for idle_timeout */
  TIMEOUT_OFFLINE_PLAYER,   /* its channel not live for offline_player_timeout */
  TIMEOUT_FLUSH,            /* a refusal that never drained */
  TIMEOUT_REASONS
};

static const char *const timeout_reason[TIMEOUT_REASONS] = {
    "handshake", "publish_or_play", "idle", "silent_publisher", "offline_player", "flush",
};

struct rtmp_server {
  uv_loop_t *loop;
  struct channel_registry *channels;
  /* The running config's [rtmp] and channel list (their stream keys count
   * for admission), read at each use: replaced by every reload, never kept
   * past it. */
  const struct config_rtmp *rtmp;
  const struct config_channel *channel_cfg;
  int channel_count;
  uv_tcp_t listener;
  uv_timer_t sweep;
  uv_check_t flush; /* after each poll phase: write the players' batches */
  struct rtmp_conn *conns;
  struct rtmp_conn *dirty; /* players with a batch to write */
  int nconns;              /* allocated, closing ones included */
  struct rtmp_door door;   /* the slots: connections not closing */
  int handles;             /* open handles of the server itself */
  bool stopping;
  void (*stopped_cb)(void *arg);
  void *stopped_arg;
  int player_limit_logged; /* last player limit written to the log */
  uint64_t accepted, handshake_failures, protocol_errors, player_skips, codec_refusals, bytes_in, bytes_out;
  uint64_t verdicts[RTMP_DOOR_VERDICTS]; /* refusals and evictions by reason */
  uint64_t timeouts[TIMEOUT_REASONS];
  uint64_t output_limit_closes; /* conn_send_copy's hard limit */
  /* One read buffer for all connections: a read is consumed (copied into
   * the session's own buffers) before the next one is allocated. */
  uint8_t rbuf[READ_BUF];
};

#define RTMP_APP "live" /* the one RTMP application (docs/protocol.md) */

struct rtmp_conn {
  uv_tcp_t tcp;
  uv_shutdown_t shutdown;
  struct rtmp_server *srv;
  struct rtmp_conn *prev, *next;
  struct rtmp_session *sess;
  char addr[64];
  char ip[64];                 /* addr without the port (IPv6: its /64): the door groups by it */
  struct rtmp_door_entry door; /* its slot; RTMP_DOOR_NONE once closing */
  uint64_t accepted_ms, last_activity_ms, last_media_ms, closing_ms;
  bool closing;
  bool shutting_down; /* closing after a flush (uv_shutdown in flight) */
  size_t write_mem;   /* memory held by session output (copies) in flight */
  /* publisher */
  struct channel_feed *feed;
  bool have_config[2];
  AVPacket *pkt;
  int64_t arrival_ms;
  /* player */
  struct channel *play_ch;
  int sink_id;
  bool wait_key, has_video, skipping;
  bool offline; /* its channel was not live at the last sweep */
  uint64_t offline_since_ms;
  AVBufferRef *batch[BATCH_MAX]; /* shared media not yet handed to libuv */
  int nbatch;
  size_t batch_bytes;
  bool dirty;
  struct rtmp_conn *dirty_next;
};

/* One uv_write: shared media buffers (refs), or one private copy (data). */
struct conn_write {
  uv_write_t req;
  struct rtmp_conn *c;
  size_t len;
  size_t mem; /* counted in c->write_mem */
  int nrefs;
  AVBufferRef *refs[BATCH_MAX];
  uv_buf_t bufs[BATCH_MAX];
  uint8_t data[];
};

static void conn_close(struct rtmp_conn *c, const char *why, bool flush);
static void srv_maybe_free(struct rtmp_server *srv);

static uint64_t srv_now(const struct rtmp_server *srv) { return uv_now(srv->loop); }

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- writing --- */

static void conn_write_free(struct conn_write *w) {
  for (int i = 0; i < w->nrefs; i++)
    av_buffer_unref(&w->refs[i]);
  free(w);
}

static void on_written(uv_write_t *req, int status) {
  struct conn_write *w = (struct conn_write *)req;
  struct rtmp_conn *c = w->c;
  if (status == 0) {
    c->srv->bytes_out += w->len;
    c->last_activity_ms = srv_now(c->srv);
  }
  c->write_mem -= w->mem;
  conn_write_free(w);
  if (status < 0 && status != UV_ECANCELED)
    conn_close(c, uv_strerror(status), false);
}

static void conn_submit(struct rtmp_conn *c, struct conn_write *w, int nbufs) {
  w->c = c;
  w->mem = w->nrefs ? 0 : sizeof *w + w->len; /* media has its own bound */
  c->write_mem += w->mem;
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, (unsigned)nbufs, on_written);
  if (rc < 0) {
    c->write_mem -= w->mem;
    conn_write_free(w);
    conn_close(c, uv_strerror(rc), false);
  }
}

/* Hand the player's batch to libuv (one writev). */
static void conn_flush(struct rtmp_conn *c) {
  if (c->nbatch == 0)
    return;
  struct conn_write *w = calloc(1, sizeof *w);
  if (!w) {
    conn_close(c, "out of memory", false);
    return;
  }
  for (int i = 0; i < c->nbatch; i++) {
    w->refs[i] = c->batch[i];
    w->bufs[i] = uv_buf_init((char *)c->batch[i]->data, (unsigned)c->batch[i]->size);
  }
  w->nrefs = c->nbatch;
  w->len = c->batch_bytes;
  c->nbatch = 0;
  c->batch_bytes = 0;
  conn_submit(c, w, w->nrefs);
}

static void conn_drop_batch(struct rtmp_conn *c) {
  for (int i = 0; i < c->nbatch; i++)
    av_buffer_unref(&c->batch[i]);
  c->nbatch = 0;
  c->batch_bytes = 0;
}

static void srv_flush_dirty(uv_check_t *h) {
  struct rtmp_server *srv = h->data;
  while (srv->dirty) {
    struct rtmp_conn *c = srv->dirty;
    srv->dirty = c->dirty_next;
    c->dirty = false;
    c->dirty_next = NULL;
    if (!c->closing)
      conn_flush(c);
  }
}

/* Session output (commands, control, headers): after the batch, in order.
 * Hard limit: a peer that makes us answer (pings, commands) but never
 * reads would grow libuv's write queue without end; past twice the player
 * bound it is disconnected (media alone never passes the bound itself).
 * Before it publishes or plays, the bound is RTMP_PREAUTH_BUDGET, like its
 * input: the answers a real client waits for take a few KiB.
 * Counted in memory held, not bytes: each small answer costs a request. */
static void conn_send_copy(void *opaque, const uint8_t *data, size_t len) {
  struct rtmp_conn *c = opaque;
  if (c->closing || len == 0)
    return;
  conn_flush(c);
  if (c->closing)
    return;
  size_t bound = c->feed || c->play_ch ? 2 * c->srv->rtmp->player_queue_bytes : RTMP_PREAUTH_BUDGET;
  if (c->write_mem > bound) {
    c->srv->output_limit_closes++;
    conn_close(c, "peer does not read (output over limit)", false);
    return;
  }
  struct conn_write *w = calloc(1, sizeof *w + len);
  if (!w) {
    conn_close(c, "out of memory", false);
    return;
  }
  memcpy(w->data, data, len);
  w->len = len;
  w->bufs[0] = uv_buf_init((char *)w->data, (unsigned)len);
  conn_submit(c, w, 1);
}

static void conn_queue_ref(struct rtmp_conn *c, AVBufferRef *wire) {
  if (c->nbatch == BATCH_MAX)
    conn_flush(c);
  if (c->closing)
    return;
  AVBufferRef *ref = av_buffer_ref(wire);
  if (!ref) {
    conn_close(c, "out of memory", false);
    return;
  }
  c->batch[c->nbatch++] = ref;
  c->batch_bytes += (size_t)wire->size;
  if (!c->dirty) {
    c->dirty = true;
    c->dirty_next = c->srv->dirty;
    c->srv->dirty = c;
  }
}

/* --- player: a channel sink --- */

/* What a player is written before media. Any send may close the
 * connection (its output limit), and conn_detach then clears c->play_ch:
 * hence the channel kept here and the check before each send. Metadata
 * goes at timestamp 0 (see channel_header_timestamp). */
static void player_on_start(void *opaque, const struct channel_feed_info *info) {
  struct rtmp_conn *c = opaque;
  if (c->closing)
    return;
  struct channel *ch = c->play_ch;
  c->has_video = info->video != NULL;
  c->wait_key = c->has_video;
  uint32_t ts = channel_header_timestamp(ch);
  size_t len;
  const uint8_t *body = channel_metadata(ch, &len);
  if (body)
    rtmp_session_send_message(c->sess, RTMP_CSID_DATA, RTMP_MSG_DATA_AMF0, 0, body, len);
  body = channel_sequence_header(ch, CHANNEL_VIDEO, &len);
  if (body && info->video && !c->closing)
    rtmp_session_send_message(c->sess, RTMP_CSID_VIDEO, RTMP_MSG_VIDEO, ts, body, len);
  body = channel_sequence_header(ch, CHANNEL_AUDIO, &len);
  if (body && info->audio && !c->closing)
    rtmp_session_send_message(c->sess, RTMP_CSID_AUDIO, RTMP_MSG_AUDIO, ts, body, len);
}

static void player_on_packet(void *opaque, const AVPacket *pkt, int64_t arrival_ms) {
  (void)arrival_ms;
  struct rtmp_conn *c = opaque;
  if (c->closing || !pkt->opaque_ref)
    return;
  bool key = pkt->stream_index == CHANNEL_VIDEO && (pkt->flags & AV_PKT_FLAG_KEY);
  if (c->wait_key) {
    if (!key)
      return;
    c->wait_key = false;
    if (c->skipping)
      log_debug("rtmp", "player caught up at keyframe addr=%s", c->addr);
    c->skipping = false;
  }
  size_t queued = c->tcp.write_queue_size + c->batch_bytes;
  size_t bound = c->srv->rtmp->player_queue_bytes;
  if (queued + (size_t)pkt->opaque_ref->size > bound) {
    /* Drop policy: never queue past the bound; skip to the next keyframe. */
    c->srv->player_skips++;
    if (!c->skipping)
      log_info("rtmp", "slow player skips to next keyframe addr=%s queued=%zu", c->addr, queued);
    c->skipping = true;
    c->wait_key = c->has_video;
    return;
  }
  conn_queue_ref(c, pkt->opaque_ref);
}

static void player_on_stop(void *opaque) {
  struct rtmp_conn *c = opaque;
  if (!c->closing)
    rtmp_session_play_unpublished(c->sess);
}

static void player_on_removed(void *opaque) {
  struct rtmp_conn *c = opaque;
  c->play_ch = NULL;
  c->sink_id = 0;
  conn_close(c, "channel removed", false);
}

static const struct channel_sink_ops player_ops = {
    .on_start = player_on_start,
    .on_packet = player_on_packet,
    .on_stop = player_on_stop,
};

/* --- admission (relay/rtmp_door) --- */

static struct rtmp_door_limits srv_limits(const struct rtmp_server *srv) {
  const struct config_rtmp *rtmp = srv->rtmp;
  struct rtmp_door_limits lim = {
      .max_connections = rtmp->max_connections,
      .per_address = rtmp->max_unauthenticated_per_address,
      .reserve = rtmp->publisher_reserve,
      .over_memory = memguard_over_limit(),
  };
  for (int i = 0; i < srv->channel_count; i++)
    lim.stream_keys += (srv->channel_cfg[i].key[0] != '\0') + (srv->channel_cfg[i].backup_key[0] != '\0');
  return lim;
}

/* Said once at start and again whenever a reload changes it: an operator
 * who sets a small max_connections sees why players are refused. */
static void srv_log_player_limit(struct rtmp_server *srv) {
  struct rtmp_door_limits lim = srv_limits(srv);
  int n = rtmp_door_player_limit(&lim);
  if (n == srv->player_limit_logged)
    return;
  srv->player_limit_logged = n;
  if (n == 0)
    log_warn("rtmp",
             "no RTMP player can be admitted: max_connections=%d leaves nothing after publisher_reserve=%d "
             "and stream_keys=%d",
             lim.max_connections, lim.reserve, lim.stream_keys);
  else
    log_info("rtmp", "players at most %d (max_connections=%d publisher_reserve=%d stream_keys=%d)", n,
             lim.max_connections, lim.reserve, lim.stream_keys);
}

static struct rtmp_conn *conn_of_entry(struct rtmp_door_entry *e) {
  return (struct rtmp_conn *)((char *)e - offsetof(struct rtmp_conn, door));
}

/* The class follows what the connection does: publishing, playing, or
 * neither (unauthenticated again, with a fresh deadline). */
static void conn_classify(struct rtmp_conn *c) {
  if (c->closing || c->door.cls == RTMP_DOOR_NONE)
    return;
  enum rtmp_door_class cls = c->feed ? RTMP_DOOR_PUBLISHER : c->play_ch ? RTMP_DOOR_PLAYER : RTMP_DOOR_UNAUTH;
  if (rtmp_door_set(&c->srv->door, &c->door, cls, c->ip, srv_now(c->srv)) < 0)
    conn_close(c, "out of memory", false);
}

static const char *evict_why(enum rtmp_door_verdict v) {
  switch (v) {
  case RTMP_DOOR_EVICT_PER_ADDRESS:
    return "evicted: its address reached max_unauthenticated_per_address before it published or played";
  case RTMP_DOOR_EVICT_MEMORY: return "evicted: over the memory ceiling before it published or played";
  default: return "evicted: max_connections reached before it published or played";
  }
}

/* A newcomer, already in the door as unauthenticated: make room for it
 * (each round closes one connection that has not published or played) or
 * refuse it. */
static bool srv_admit(struct rtmp_server *srv, struct rtmp_conn *c) {
  struct rtmp_door_limits lim = srv_limits(srv);
  for (;;) {
    struct rtmp_door_entry *victim;
    enum rtmp_door_verdict v = rtmp_door_check(&srv->door, &c->door, &lim, &victim);
    if (v == RTMP_DOOR_ADMIT)
      return true;
    srv->verdicts[v]++;
    if (!victim) {
      log_warn("rtmp", "connection refused: max_connections=%d all publishing or playing addr=%s", lim.max_connections,
               c->addr);
      return false;
    }
    conn_close(conn_of_entry(victim), evict_why(v), false);
  }
}

/* Before the play itself (sess_on_play): players leave the publisher
 * reserve free, and none starts over the memory ceiling. */
static int sess_on_play(void *opaque, const char *app, const char *name);
static int conn_admit_play(void *opaque, const char *app, const char *name) {
  struct rtmp_conn *c = opaque;
  struct rtmp_server *srv = c->srv;
  struct rtmp_door_limits lim = srv_limits(srv);
  enum rtmp_door_verdict v = c->door.cls == RTMP_DOOR_UNAUTH ? rtmp_door_check_play(&srv->door, &lim) : RTMP_DOOR_ADMIT;
  if (v != RTMP_DOOR_ADMIT) {
    srv->verdicts[v]++;
    log_warn("rtmp", "play refused: %s players=%d player_limit=%d name=%s addr=%s",
             v == RTMP_DOOR_REFUSE_MEMORY ? "over the memory ceiling" : "player limit reached",
             rtmp_door_count(&srv->door, RTMP_DOOR_PLAYER), rtmp_door_player_limit(&lim), name, c->addr);
    return RTMP_REFUSE_NOTFOUND;
  }
  int rc = sess_on_play(opaque, app, name);
  conn_classify(c);
  return rc;
}

/* --- session callbacks --- */

static void feed_kicked(void *opaque, const char *why) {
  struct rtmp_conn *c = opaque;
  c->feed = NULL;
  conn_close(c, why, false);
}

static const struct channel_feed_ops feed_ops = {.kick = feed_kicked};

/* The server URL is rtmp://HOST:1935/live (docs/protocol.md). Another application is
 * a typo in an encoder's settings: refused and said so, rather than
 * working by accident (the session already dropped ?query and a trailing
 * slash). */
static bool known_app(struct rtmp_conn *c, const char *app, const char *what) {
  if (strcmp(app, RTMP_APP) == 0)
    return true;
  log_warn("rtmp", "%s refused: unknown application app=\"%s\" (the URL is rtmp://HOST/%s) addr=%s", what, app,
           RTMP_APP, c->addr);
  return false;
}

static int sess_on_publish(void *opaque, const char *app, const char *name) {
  struct rtmp_conn *c = opaque;
  if (!known_app(c, app, "publish"))
    return RTMP_REFUSE_BADNAME;
  /* closing: conn_close ran while the rest of the read is still parsed; a
   * feed opened now would outlive the connection. */
  if (c->closing || c->feed || c->play_ch)
    return RTMP_REFUSE_BADNAME;
  int rc = channel_feed_open(c->srv->channels, name, c->addr, &feed_ops, c, &c->feed);
  if (rc == CHANNEL_OPEN_UNKNOWN_KEY) {
    log_warn("rtmp", "publish refused: unknown stream key addr=%s", c->addr);
    return RTMP_REFUSE_BADNAME;
  }
  if (rc != CHANNEL_OPEN_OK)
    return RTMP_REFUSE_BADNAME;
  c->last_media_ms = srv_now(c->srv);
  c->have_config[0] = c->have_config[1] = false;
  log_info("rtmp", "publish accepted channel=%s addr=%s handshake=%s", channel_name(channel_feed_channel(c->feed)),
           c->addr, rtmp_session_complex_handshake(c->sess) ? "digest" : "plain");
  conn_classify(c);
  return RTMP_ACCEPT;
}

static void sess_on_unpublish(void *opaque) {
  struct rtmp_conn *c = opaque;
  if (c->feed) {
    channel_feed_close(c->feed);
    c->feed = NULL;
  }
  conn_classify(c);
}

static void sess_on_metadata(void *opaque, const uint8_t *body, size_t len) {
  struct rtmp_conn *c = opaque;
  if (c->feed)
    channel_feed_metadata(c->feed, body, len);
}

static int sess_on_media(void *opaque, const struct rtmp_msg *msg) {
  struct rtmp_conn *c = opaque;
  if (!c->feed)
    return 0;
  bool video = msg->type == RTMP_MSG_VIDEO;
  int idx = video ? CHANNEL_VIDEO : CHANNEL_AUDIO;
  struct flv_media m;
  int rc = video ? flv_parse_video(msg->data, msg->len, msg->timestamp, &m)
                 : flv_parse_audio(msg->data, msg->len, msg->timestamp, &m);
  if (rc == FLV_E_UNSUPPORTED) {
    c->srv->codec_refusals++;
    log_warn("rtmp", "publish refused: unsupported %s codec=\"%s\" channel=%s addr=%s", video ? "video" : "audio",
             m.codec_name, channel_name(channel_feed_channel(c->feed)), c->addr);
    return RTMP_REFUSE_CODEC;
  }
  if (rc < 0) {
    log_debug("rtmp", "malformed %s tag ignored addr=%s len=%zu", video ? "video" : "audio", c->addr, msg->len);
    return 0;
  }
  c->last_media_ms = srv_now(c->srv);
  if (m.kind == FLV_CONFIG) {
    AVCodecParameters *par = flv_codecpar(&m);
    if (!par)
      return 0;
    c->have_config[idx] = true;
    channel_feed_config(c->feed, idx, par, msg->data, msg->len);
    return 0;
  }
  if (m.kind != FLV_FRAME || !c->have_config[idx])
    return 0; /* a frame before its sequence header cannot be decoded */
  AVPacket *pkt = c->pkt;
  if (av_new_packet(pkt, (int)m.len) < 0)
    return 0;
  memcpy(pkt->data, m.data, m.len);
  pkt->pts = m.pts;
  pkt->dts = m.dts;
  pkt->stream_index = idx;
  pkt->time_base = (AVRational){1, 1000};
  if (m.keyframe)
    pkt->flags |= AV_PKT_FLAG_KEY;
  pkt->opaque_ref =
      rtmp_chunk_wire(video ? RTMP_CSID_VIDEO : RTMP_CSID_AUDIO, msg->type, msg->timestamp, msg->data, msg->len);
  channel_feed_packet(c->feed, pkt, c->arrival_ms);
  av_packet_unref(pkt);
  return 0;
}

static int sess_on_play(void *opaque, const char *app, const char *name) {
  struct rtmp_conn *c = opaque;
  if (!known_app(c, app, "play"))
    return RTMP_REFUSE_NOTFOUND;
  if (c->closing || c->feed || c->play_ch)
    return RTMP_REFUSE_NOTFOUND;
  struct channel *ch = channel_registry_find(c->srv->channels, name);
  if (!ch) {
    log_info("rtmp", "play refused: no channel name=%s addr=%s", name, c->addr);
    return RTMP_REFUSE_NOTFOUND;
  }
  log_info("rtmp", "play channel=%s addr=%s live=%d handshake=%s", name, c->addr, channel_is_live(ch),
           rtmp_session_complex_handshake(c->sess) ? "digest" : "plain");
  /* The connection may close inside the subscription: on_start and the
   * GOP write to it, and past its output limit conn_close runs from there.
   * The channel writes c->sink_id before it calls back, so that close
   * unsubscribes on the one ordinary path (conn_detach) like any other,
   * and the channel, told so, stops the catch-up and answers LEFT. Nothing
   * here has to undo a half-done subscription. */
  c->play_ch = ch;
  if (channel_subscribe_player(ch, &player_ops, c, player_on_removed, &c->sink_id) != CHANNEL_SUBSCRIBED) {
    c->play_ch = NULL; /* LEFT: conn_detach has unsubscribed already */
    c->sink_id = 0;
    return RTMP_REFUSE_NOTFOUND;
  }
  return RTMP_ACCEPT;
}

static void sess_on_play_stop(void *opaque) {
  struct rtmp_conn *c = opaque;
  if (c->play_ch && c->sink_id > 0)
    channel_unsubscribe(c->play_ch, c->sink_id);
  c->play_ch = NULL;
  c->sink_id = 0;
}

static const struct rtmp_session_ops session_ops = {
    .send = conn_send_copy,
    .on_publish = sess_on_publish,
    .on_unpublish = sess_on_unpublish,
    .on_metadata = sess_on_metadata,
    .on_media = sess_on_media,
    .on_play = conn_admit_play,
    .on_play_stop = sess_on_play_stop,
};

/* --- connection lifetime --- */

static void conn_on_close(uv_handle_t *h) {
  struct rtmp_conn *c = h->data;
  struct rtmp_server *srv = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  srv->nconns--;
  if (c->dirty) {
    struct rtmp_conn **pp = &srv->dirty;
    while (*pp && *pp != c)
      pp = &(*pp)->dirty_next;
    if (*pp)
      *pp = c->dirty_next;
  }
  rtmp_session_free(c->sess);
  av_packet_free(&c->pkt);
  free(c);
  srv_maybe_free(srv);
}

static void conn_on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  struct rtmp_conn *c = req->data;
  c->shutting_down = false;
  /* The sweep may have closed it already (a peer that never reads). */
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
}

static void conn_detach(struct rtmp_conn *c) {
  if (c->feed) {
    channel_feed_close(c->feed);
    c->feed = NULL;
  }
  if (c->play_ch && c->sink_id > 0)
    channel_unsubscribe(c->play_ch, c->sink_id);
  c->play_ch = NULL;
  c->sink_id = 0;
}

/* flush: let what was queued (a refusal's onStatus) reach the peer first. */
static void conn_close(struct rtmp_conn *c, const char *why, bool flush) {
  if (c->closing)
    return;
  c->closing = true;
  log_info("rtmp", "close addr=%s why=%s", c->addr, why);
  rtmp_door_set(&c->srv->door, &c->door, RTMP_DOOR_NONE, NULL, 0);
  conn_detach(c);
  conn_drop_batch(c);
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->shutdown.data = c;
  c->closing_ms = srv_now(c->srv);
  if (flush && uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, conn_on_shutdown) == 0) {
    c->shutting_down = true;
    return;
  }
  uv_close((uv_handle_t *)&c->tcp, conn_on_close);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)suggested;
  struct rtmp_conn *c = h->data;
  *b = uv_buf_init((char *)c->srv->rbuf, sizeof c->srv->rbuf);
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct rtmp_conn *c = s->data;
  (void)b;
  if (c->closing)
    return;
  if (n < 0) {
    conn_close(c, n == UV_EOF ? "peer closed" : uv_strerror((int)n), false);
    return;
  }
  if (n == 0)
    return;
  c->srv->bytes_in += (uint64_t)n;
  c->last_activity_ms = srv_now(c->srv);
  c->arrival_ms = wall_ms();
  bool was_handshake = rtmp_session_state(c->sess) == RTMP_SESSION_HANDSHAKE;
  int rc = rtmp_session_feed(c->sess, c->srv->rbuf, (size_t)n);
  if (rc < 0) {
    if (was_handshake && rtmp_session_state(c->sess) == RTMP_SESSION_HANDSHAKE)
      c->srv->handshake_failures++;
    else
      c->srv->protocol_errors++;
    conn_close(c, rtmp_session_error(c->sess), false);
  } else if (rc > 0) {
    conn_close(c, "refused", true);
  } else {
    conn_classify(c); /* a play or publish that ended makes it unauthenticated again */
  }
}

static void srv_on_connection(uv_stream_t *server, int status) {
  struct rtmp_server *srv = server->data;
  if (status < 0 || srv->stopping)
    return;
  struct rtmp_conn *c = calloc(1, sizeof *c);
  if (!c)
    return;
  c->srv = srv;
  uv_tcp_init(srv->loop, &c->tcp);
  c->tcp.data = c;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->nconns++;
  snprintf(c->addr, sizeof c->addr, "?");
  snprintf(c->ip, sizeof c->ip, "?");
  c->accepted_ms = c->last_activity_ms = srv_now(srv);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
      snprintf(c->addr, sizeof c->addr, "[%s]:%d", ip, port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
      snprintf(c->addr, sizeof c->addr, "%s:%d", ip, port);
    }
    /* the door groups an IPv6 peer by its /64, as every per-address
     * rule does: a peer choosing among its 2^64 addresses is one address */
    netaddr_client_key(ip, c->ip, sizeof c->ip);
  }
  if (rtmp_door_set(&srv->door, &c->door, RTMP_DOOR_UNAUTH, c->ip, srv_now(srv)) < 0 || !srv_admit(srv, c)) {
    rtmp_door_set(&srv->door, &c->door, RTMP_DOOR_NONE, NULL, 0);
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
    return;
  }
  srv->accepted++;
  struct rtmp_session_limits lim = {srv->rtmp->max_chunk_size, srv->rtmp->max_message_size, RTMP_PREAUTH_BUDGET};
  c->sess = rtmp_session_new(&lim, &session_ops, c);
  c->pkt = av_packet_alloc();
  if (!c->sess || !c->pkt) {
    conn_close(c, "out of memory", false);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_tcp_keepalive(&c->tcp, 1, 60);
  log_debug("rtmp", "accept addr=%s", c->addr);
  uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

/* A player of a channel that is not live waits at most
 * offline_player_timeout; the clock restarts whenever the channel is live. */
static bool player_waited_too_long(struct rtmp_conn *c, uint64_t now, uint64_t limit_ms) {
  if (!c->play_ch || channel_is_live(c->play_ch)) {
    c->offline = false;
    return false;
  }
  if (!c->offline) {
    c->offline = true;
    c->offline_since_ms = now;
  }
  return now - c->offline_since_ms > limit_ms;
}

static void conn_timeout(struct rtmp_conn *c, enum conn_timeout why, const char *text) {
  c->srv->timeouts[why]++;
  conn_close(c, text, false);
}

static void srv_sweep(uv_timer_t *t) {
  struct rtmp_server *srv = t->data;
  const struct config_rtmp *rtmp = srv->rtmp;
  uint64_t now = srv_now(srv);
  uint64_t hs_ms = (uint64_t)(rtmp->handshake_timeout * 1000);
  uint64_t idle_ms = (uint64_t)(rtmp->idle_timeout * 1000);
  uint64_t offline_ms = (uint64_t)(rtmp->offline_player_timeout * 1000);
  srv_log_player_limit(srv);
  for (struct rtmp_conn *c = srv->conns, *next; c; c = next) {
    next = c->next;
    /* A flush that never ends (the peer reads nothing) must not hold the
     * connection forever: close it after handshake_timeout. */
    if (c->shutting_down && !uv_is_closing((uv_handle_t *)&c->tcp) && now - c->closing_ms > hs_ms) {
      srv->timeouts[TIMEOUT_FLUSH]++;
      uv_close((uv_handle_t *)&c->tcp, conn_on_close);
      continue;
    }
    if (c->closing || !c->sess)
      continue;
    /* A player with nothing to send (its channel is offline) is waiting,
     * not idle: offline_player_timeout bounds that wait. A player whose
     * queue does not drain for idle_timeout is dropped. */
    if (c->play_ch && c->tcp.write_queue_size == 0 && c->nbatch == 0)
      c->last_activity_ms = now;
    /* handshake_timeout runs from the accept (or the end of a publish or
     * play) to the next publish or play, not just to the handshake's end. */
    if (c->door.cls == RTMP_DOOR_UNAUTH && now - c->door.since > hs_ms) {
      bool in_handshake = rtmp_session_state(c->sess) == RTMP_SESSION_HANDSHAKE;
      srv->handshake_failures += in_handshake;
      if (in_handshake)
        conn_timeout(c, TIMEOUT_HANDSHAKE, "handshake timeout");
      else
        conn_timeout(c, TIMEOUT_PUBLISH_OR_PLAY, "no publish or play within handshake_timeout");
    } else if (now - c->last_activity_ms > idle_ms) {
      conn_timeout(c, TIMEOUT_IDLE, "idle timeout");
    } else if (c->feed && now - c->last_media_ms > idle_ms) {
      conn_timeout(c, TIMEOUT_SILENT_PUBLISHER, "publisher sent no media (idle timeout)");
    } else if (player_waited_too_long(c, now, offline_ms)) {
      conn_timeout(c, TIMEOUT_OFFLINE_PLAYER, "channel not live for offline_player_timeout");
    }
  }
}

/* --- server lifetime --- */

static void srv_maybe_free(struct rtmp_server *srv) {
  if (!srv->stopping || srv->handles != 0 || srv->nconns != 0)
    return;
  void (*cb)(void *) = srv->stopped_cb;
  void *arg = srv->stopped_arg;
  rtmp_door_free(&srv->door);
  free(srv);
  if (cb)
    cb(arg);
}

static void srv_handle_closed(uv_handle_t *h) {
  struct rtmp_server *srv = h->data;
  srv->handles--;
  srv_maybe_free(srv);
}

struct rtmp_server *rtmp_server_start(uv_loop_t *loop, const struct config_addr *listen, const struct config_rtmp *rtmp,
                                      const struct config_channel *channels, int channel_count,
                                      struct channel_registry *reg) {
  const struct config_addr *a = listen;
  struct rtmp_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return NULL;
  srv->loop = loop;
  srv->channels = reg;
  srv->rtmp = rtmp;
  srv->channel_cfg = channels;
  srv->channel_count = channel_count;
  rtmp_door_init(&srv->door);
  srv->player_limit_logged = -1;
  struct sockaddr_storage ss;
  int rc = strchr(a->host, ':') ? uv_ip6_addr(a->host, a->port, (struct sockaddr_in6 *)&ss)
                                : uv_ip4_addr(a->host, a->port, (struct sockaddr_in *)&ss);
  if (rc < 0) {
    log_error("rtmp", "bad rtmp_listen host=%s: %s", a->host, uv_strerror(rc));
    free(srv);
    return NULL;
  }
  uv_tcp_init(loop, &srv->listener);
  srv->listener.data = srv;
  srv->handles = 1;
  rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&srv->listener, 128, srv_on_connection);
  if (rc < 0) {
    log_error("rtmp", "cannot listen on %s:%u: %s", a->host, a->port, uv_strerror(rc));
    srv->stopping = true;
    uv_close((uv_handle_t *)&srv->listener, srv_handle_closed);
    return NULL;
  }
  uv_timer_init(loop, &srv->sweep);
  srv->sweep.data = srv;
  srv->handles++;
  uv_timer_start(&srv->sweep, srv_sweep, SWEEP_MS, SWEEP_MS);
  uv_check_init(loop, &srv->flush);
  srv->flush.data = srv;
  srv->handles++;
  uv_check_start(&srv->flush, srv_flush_dirty);
  log_info("rtmp", "listening on %s:%u", a->host, a->port);
  srv_log_player_limit(srv);
  return srv;
}

void rtmp_server_reload(struct rtmp_server *srv, const struct config_rtmp *rtmp, const struct config_channel *channels,
                        int channel_count) {
  srv->rtmp = rtmp;
  srv->channel_cfg = channels;
  srv->channel_count = channel_count;
}

void rtmp_server_stop(struct rtmp_server *srv, void (*cb)(void *arg), void *arg) {
  if (!srv || srv->stopping)
    return;
  srv->stopping = true;
  srv->stopped_cb = cb;
  srv->stopped_arg = arg;
  uv_close((uv_handle_t *)&srv->listener, srv_handle_closed);
  uv_timer_stop(&srv->sweep);
  uv_close((uv_handle_t *)&srv->sweep, srv_handle_closed);
  uv_check_stop(&srv->flush);
  uv_close((uv_handle_t *)&srv->flush, srv_handle_closed);
  for (struct rtmp_conn *c = srv->conns, *next; c; c = next) {
    next = c->next;
    conn_close(c, "shutdown", false);
    /* A refusal still flushing to a peer that reads nothing: stop waiting. */
    if (c->shutting_down && !uv_is_closing((uv_handle_t *)&c->tcp))
      uv_close((uv_handle_t *)&c->tcp, conn_on_close);
  }
}

int rtmp_server_connections(const struct rtmp_server *srv) { return srv ? srv->nconns : 0; }

/* Refusals and evictions by reason: one labelled family each. */
static void srv_verdict_metrics(const struct rtmp_server *srv, struct buf *out) {
  static const struct metric refused = METRIC_FAMILY(
      "galarelay_rtmp_refused_total", METRIC_COUNTER,
      "connections or plays refused (max_connections: every slot publishes or plays; memory: a play over the "
      "memory ceiling; player_limit: a play past the publisher reserve)");
  static const struct metric evicted =
      METRIC_FAMILY("galarelay_rtmp_evicted_total", METRIC_COUNTER,
                    "connections that had not published or played, closed to make room for a newcomer");
  static const struct metric timeouts =
      METRIC_FAMILY("galarelay_rtmp_timeouts_total", METRIC_COUNTER, "connections closed by a deadline");
  char label[64];
  metrics_head(out, &refused);
  for (int v = RTMP_DOOR_REFUSE_FULL; v <= RTMP_DOOR_REFUSE_PLAYERS; v++) {
    snprintf(label, sizeof label, "reason=\"%s\"", rtmp_door_reason(v));
    metrics_count(out, &refused, label, srv->verdicts[v]);
  }
  metrics_head(out, &evicted);
  for (int v = RTMP_DOOR_EVICT_PER_ADDRESS; v <= RTMP_DOOR_EVICT_FULL; v++) {
    snprintf(label, sizeof label, "reason=\"%s\"", rtmp_door_reason(v));
    metrics_count(out, &evicted, label, srv->verdicts[v]);
  }
  metrics_head(out, &timeouts);
  for (int r = 0; r < TIMEOUT_REASONS; r++) {
    snprintf(label, sizeof label, "reason=\"%s\"", timeout_reason[r]);
    metrics_count(out, &timeouts, label, srv->timeouts[r]);
  }
}

static double get_publishers(const void *srv) {
  return rtmp_door_count(&((const struct rtmp_server *)srv)->door, RTMP_DOOR_PUBLISHER);
}

static double get_players(const void *srv) {
  return rtmp_door_count(&((const struct rtmp_server *)srv)->door, RTMP_DOOR_PLAYER);
}

static double get_unauthenticated(const void *srv) {
  return rtmp_door_count(&((const struct rtmp_server *)srv)->door, RTMP_DOOR_UNAUTH);
}

static double get_player_limit(const void *srv) {
  struct rtmp_door_limits lim = srv_limits(srv);
  return rtmp_door_player_limit(&lim);
}

void rtmp_server_metrics(const struct rtmp_server *srv, struct buf *out) {
  if (!srv)
    return;
#define SRV(NAME, TYPE, HELP, FIELD) METRIC_FIELD(NAME, TYPE, HELP, struct rtmp_server, FIELD)
  static const struct metric rows[] = {
      SRV("galarelay_rtmp_connections", METRIC_GAUGE, "open RTMP connections", nconns),
      METRIC_GETTER("galarelay_rtmp_publishers", METRIC_GAUGE, "connections publishing", get_publishers),
      METRIC_GETTER("galarelay_rtmp_players", METRIC_GAUGE, "connections playing", get_players),
      METRIC_GETTER("galarelay_rtmp_unauthenticated", METRIC_GAUGE,
                    "connections that have not (yet) published or played", get_unauthenticated),
      METRIC_GETTER("galarelay_rtmp_player_limit", METRIC_GAUGE,
                    "players at most (max_connections less the publisher reserve)", get_player_limit),
      SRV("galarelay_rtmp_accepted_total", METRIC_COUNTER, "connections accepted", accepted),
      SRV("galarelay_rtmp_handshake_failures_total", METRIC_COUNTER, "bad or timed out handshakes", handshake_failures),
      SRV("galarelay_rtmp_protocol_errors_total", METRIC_COUNTER, "connections closed on a protocol error",
          protocol_errors),
      SRV("galarelay_rtmp_codec_refusals_total", METRIC_COUNTER, "publishes refused for their codec", codec_refusals),
      SRV("galarelay_rtmp_player_skips_total", METRIC_COUNTER, "messages skipped by slow players", player_skips),
      SRV("galarelay_rtmp_output_limit_closes_total", METRIC_COUNTER,
          "connections closed with more than twice player_queue_bytes of answers and headers unsent",
          output_limit_closes),
      SRV("galarelay_rtmp_received_bytes_total", METRIC_COUNTER, "bytes read", bytes_in),
      SRV("galarelay_rtmp_sent_bytes_total", METRIC_COUNTER, "bytes written", bytes_out),
  };
#undef SRV
  metrics_write(out, rows, METRICS_COUNT(rows), srv);
  srv_verdict_metrics(srv, out);
}
