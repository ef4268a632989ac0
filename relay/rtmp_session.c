/* rtmp_session: one RTMP server connection as a socket-free state machine.
 * See the header. Commands are dispatched through cmd_table; each handler
 * decodes its arguments with an amf_field table and answers. */
#include "relay/rtmp_session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/amf.h"
#include "core/buf.h"
#include "relay/rtmp_handshake.h"

struct rtmp_session {
  const struct rtmp_session_ops *ops;
  void *opaque;
  struct rtmp_session_limits lim;
  enum rtmp_session_state state;
  struct rtmp_handshake *hs; /* freed once done: 4.6 KB per connection */
  bool complex_handshake;
  struct rtmp_chunk_reader rd;
  uint32_t out_chunk_size;
  uint32_t peer_window; /* the peer's Window Acknowledgement Size, 0 = none */
  uint64_t acked;       /* bytes_in at our last Acknowledgement */
  double object_encoding;
  bool stream_created;
  char app[128];
  char tc_url[512];
  char name[256];
  char error[128];
  struct buf out; /* scratch for one outgoing message */
  struct buf body;
};

/* The chunk reader's limits follow the state: the small pre-publish
 * budget, or max_message_size while publishing. */
static void sess_apply_budget(struct rtmp_session *s) {
  uint32_t budget = s->lim.preauth_budget ? s->lim.preauth_budget : RTMP_PREAUTH_BUDGET;
  if (budget > s->lim.max_message_size)
    budget = s->lim.max_message_size;
  if (s->state == RTMP_SESSION_PUBLISHING)
    rtmp_chunk_reader_set_limits(&s->rd, s->lim.max_message_size, 2 * (size_t)s->lim.max_message_size);
  else
    rtmp_chunk_reader_set_limits(&s->rd, budget, budget);
}

static void sess_too_large_error(struct rtmp_session *s) {
  if (s->state == RTMP_SESSION_PUBLISHING)
    snprintf(s->error, sizeof s->error, "message of %u bytes over max_message_size %u", s->rd.refused_len,
             s->rd.max_message_size);
  else
    snprintf(s->error, sizeof s->error, "message of %u bytes before publish: over the %u-byte pre-publish budget",
             s->rd.refused_len, s->rd.max_message_size);
}

/* --- output --- */

static void sess_flush(struct rtmp_session *s) {
  if (s->out.len)
    s->ops->send(s->opaque, (const uint8_t *)s->out.data, s->out.len);
  buf_reset(&s->out);
}

static void sess_hs_send(void *opaque, const uint8_t *data, size_t len) {
  struct rtmp_session *s = opaque;
  s->ops->send(s->opaque, data, len);
}

int rtmp_session_send_message(struct rtmp_session *s, uint32_t csid, uint8_t type, uint32_t timestamp,
                              const uint8_t *body, size_t len) {
  int rc = rtmp_chunk_write(&s->out, csid, type, RTMP_STREAM_ID, timestamp, body, len, s->out_chunk_size);
  sess_flush(s);
  return rc;
}

/* Send the command in s->body on csid / stream. */
static void sess_send_body(struct rtmp_session *s, uint32_t csid, uint32_t stream_id) {
  rtmp_chunk_write(&s->out, csid, RTMP_MSG_COMMAND_AMF0, stream_id, 0, (const uint8_t *)s->body.data, s->body.len,
                   s->out_chunk_size);
  buf_reset(&s->body);
  sess_flush(s);
}

static void sess_result_null(struct rtmp_session *s, double txid) {
  amf_put_string(&s->body, "_result");
  amf_put_number(&s->body, txid);
  amf_put_null(&s->body);
  buf_append(&s->body, "\x06", 1); /* undefined */
  sess_send_body(s, RTMP_CSID_COMMAND, 0);
}

static void sess_on_status(struct rtmp_session *s, const char *level, const char *code, const char *desc) {
  amf_put_string(&s->body, "onStatus");
  amf_put_number(&s->body, 0);
  amf_put_null(&s->body);
  amf_put_object_start(&s->body);
  amf_put_prop_string(&s->body, "level", level);
  amf_put_prop_string(&s->body, "code", code);
  amf_put_prop_string(&s->body, "description", desc);
  if (s->name[0])
    amf_put_prop_string(&s->body, "details", s->name);
  amf_put_prop_string(&s->body, "clientid", "galarelay");
  amf_put_object_end(&s->body);
  sess_send_body(s, RTMP_CSID_DATA, RTMP_STREAM_ID);
}

static void sess_user_control(struct rtmp_session *s, uint16_t ev, uint32_t v) {
  rtmp_chunk_write_user_control(&s->out, ev, v, s->out_chunk_size);
  sess_flush(s);
}

/* --- commands --- */

struct cmd_args {
  double txid;
  char name[256]; /* publish/play stream name, releaseStream's argument */
  char type[32];  /* publish type: live, record, append */
};

typedef int (*cmd_fn)(struct rtmp_session *s, struct amf_reader *r, struct cmd_args *a);

/* Positional arguments after the command name: txid, command object
 * (null for all but connect), then the stream name. */
static int sess_decode_args(struct amf_reader *r, struct cmd_args *a) {
  struct amf_field f[] = {
      {AMF_NUMBER, NULL, &a->txid, sizeof a->txid},
      {AMF_NULL, NULL, NULL, 0},
      {AMF_STRING, NULL, a->name, sizeof a->name},
      {AMF_STRING, NULL, a->type, sizeof a->type},
  };
  return amf_decode_seq(r, f, sizeof f / sizeof f[0]);
}

static int cmd_connect(struct rtmp_session *s, struct amf_reader *r, struct cmd_args *a) {
  struct amf_field obj[] = {
      {AMF_STRING, "app", s->app, sizeof s->app},
      {AMF_STRING, "tcUrl", s->tc_url, sizeof s->tc_url},
      {AMF_NUMBER, "objectEncoding", &s->object_encoding, sizeof(double)},
  };
  struct amf_field_table t = {obj, sizeof obj / sizeof obj[0]};
  struct amf_field f[] = {
      {AMF_NUMBER, NULL, &a->txid, sizeof a->txid},
      {AMF_OBJECT, NULL, &t, 0},
  };
  if (amf_decode_seq(r, f, 2) < 0)
    return -EPROTO;
  rtmp_session_strip_query(s->app);
  size_t al = strlen(s->app);
  while (al > 0 && s->app[al - 1] == '/')
    s->app[--al] = '\0';
  if (s->state != RTMP_SESSION_CONNECTING)
    return 0; /* a second connect: ignore */
  rtmp_chunk_write_window_ack(&s->out, RTMP_WINDOW, s->out_chunk_size);
  rtmp_chunk_write_peer_bw(&s->out, RTMP_WINDOW, 2, s->out_chunk_size);
  rtmp_chunk_write_set_chunk_size(&s->out, RTMP_OUT_CHUNK_SIZE, s->out_chunk_size);
  s->out_chunk_size = RTMP_OUT_CHUNK_SIZE;
  sess_flush(s);
  amf_put_string(&s->body, "_result");
  amf_put_number(&s->body, a->txid);
  amf_put_object_start(&s->body);
  amf_put_prop_string(&s->body, "fmsVer", "FMS/3,0,1,123");
  amf_put_prop_number(&s->body, "capabilities", 31);
  amf_put_object_end(&s->body);
  amf_put_object_start(&s->body);
  amf_put_prop_string(&s->body, "level", "status");
  amf_put_prop_string(&s->body, "code", "NetConnection.Connect.Success");
  amf_put_prop_string(&s->body, "description", "Connection succeeded.");
  amf_put_prop_number(&s->body, "objectEncoding", s->object_encoding);
  amf_put_object_end(&s->body);
  sess_send_body(s, RTMP_CSID_COMMAND, 0);
  s->state = RTMP_SESSION_CONNECTED;
  return 0;
}

static int cmd_simple_result(struct rtmp_session *s, struct amf_reader *r, struct cmd_args *a) {
  if (sess_decode_args(r, a) < 0)
    return -EPROTO;
  if (a->txid > 0)
    sess_result_null(s, a->txid);
  return 0;
}

static int cmd_fcpublish(struct rtmp_session *s, struct amf_reader *r, struct cmd_args *a) {
  if (cmd_simple_result(s, r, a) < 0)
    return -EPROTO;
  amf_put_string(&s->body, "onFCPublish");
  amf_put_number(&s->body, 0);
  amf_put_null(&s->body);
  amf_put_object_start(&s->body);
  amf_put_prop_string(&s->body, "code", "NetStream.Publish.Start");
  amf_put_prop_string(&s->body, "description", a->name);
  amf_put_object_end(&s->body);
  sess_send_body(s, RTMP_CSID_COMMAND, 0);
  return 0;
}

static int cmd_create_stream(struct rtmp_session *s, struct amf_reader *r, struct cmd_args *a) {
  if (sess_decode_args(r, a) < 0)
    return -EPROTO;
  s->stream_created = true;
  amf_put_string(&s->body, "_result");
  amf_put_number(&s->body, a->txid);
  amf_put_null(&s->body);
  amf_put_number(&s->body, RTMP_STREAM_ID);
  sess_send_body(s, RTMP_CSID_COMMAND, 0);
  return 0;
}

static int cmd_publish(struct rtmp_session *s, struct amf_reader *r, struct cmd_args *a) {
  if (sess_decode_args(r, a) < 0)
    return -EPROTO;
  if (s->state != RTMP_SESSION_CONNECTED)
    return 0;
  snprintf(s->name, sizeof s->name, "%s", a->name);
  rtmp_session_strip_query(s->name);
  int v = s->ops->on_publish ? s->ops->on_publish(s->opaque, s->app, s->name) : RTMP_ACCEPT;
  if (v != RTMP_ACCEPT) {
    sess_on_status(s, "error", "NetStream.Publish.BadName", "Publishing refused.");
    s->state = RTMP_SESSION_CLOSING;
    return 0;
  }
  sess_user_control(s, RTMP_UC_STREAM_BEGIN, RTMP_STREAM_ID);
  sess_on_status(s, "status", "NetStream.Publish.Start", "Start publishing.");
  s->state = RTMP_SESSION_PUBLISHING;
  sess_apply_budget(s);
  return 0;
}

static int cmd_play(struct rtmp_session *s, struct amf_reader *r, struct cmd_args *a) {
  if (sess_decode_args(r, a) < 0)
    return -EPROTO;
  if (s->state != RTMP_SESSION_CONNECTED)
    return 0;
  snprintf(s->name, sizeof s->name, "%s", a->name);
  rtmp_session_strip_query(s->name);
  /* Answer before on_play: it may start sending the stream at once. */
  sess_user_control(s, RTMP_UC_STREAM_IS_RECORDED, RTMP_STREAM_ID);
  sess_user_control(s, RTMP_UC_STREAM_BEGIN, RTMP_STREAM_ID);
  s->state = RTMP_SESSION_PLAYING;
  sess_on_status(s, "status", "NetStream.Play.Reset", "Playing and resetting.");
  sess_on_status(s, "status", "NetStream.Play.Start", "Started playing.");
  /* |RtmpSampleAccess: lets Flash-era players read the stream. */
  amf_put_string(&s->body, "|RtmpSampleAccess");
  amf_put_boolean(&s->body, true);
  amf_put_boolean(&s->body, true);
  rtmp_session_send_message(s, RTMP_CSID_DATA, RTMP_MSG_DATA_AMF0, 0, (const uint8_t *)s->body.data, s->body.len);
  buf_reset(&s->body);
  int v = s->ops->on_play ? s->ops->on_play(s->opaque, s->app, s->name) : RTMP_ACCEPT;
  if (v != RTMP_ACCEPT) {
    s->state = RTMP_SESSION_CLOSING;
    sess_on_status(s, "error", "NetStream.Play.StreamNotFound", "No such stream.");
  }
  return 0;
}

static void sess_stop(struct rtmp_session *s) {
  if (s->state == RTMP_SESSION_PUBLISHING) {
    s->state = RTMP_SESSION_CONNECTED;
    sess_apply_budget(s);
    if (s->ops->on_unpublish)
      s->ops->on_unpublish(s->opaque);
  } else if (s->state == RTMP_SESSION_PLAYING) {
    s->state = RTMP_SESSION_CONNECTED;
    if (s->ops->on_play_stop)
      s->ops->on_play_stop(s->opaque);
  }
}

static int cmd_unpublish(struct rtmp_session *s, struct amf_reader *r, struct cmd_args *a) {
  if (sess_decode_args(r, a) < 0)
    return -EPROTO;
  bool was_publishing = s->state == RTMP_SESSION_PUBLISHING;
  sess_stop(s);
  if (a->txid > 0)
    sess_result_null(s, a->txid);
  if (was_publishing)
    sess_on_status(s, "status", "NetStream.Unpublish.Success", "Stopped publishing.");
  return 0;
}

static int cmd_delete_stream(struct rtmp_session *s, struct amf_reader *r, struct cmd_args *a) {
  if (sess_decode_args(r, a) < 0)
    return -EPROTO;
  sess_stop(s);
  return 0;
}

static int cmd_ignore(struct rtmp_session *s, struct amf_reader *r, struct cmd_args *a) {
  (void)s, (void)r, (void)a;
  return 0;
}

static const struct {
  const char *name;
  cmd_fn fn;
} cmd_table[] = {
    {"connect", cmd_connect},           {"releaseStream", cmd_simple_result},
    {"FCPublish", cmd_fcpublish},       {"createStream", cmd_create_stream},
    {"publish", cmd_publish},           {"play", cmd_play},
    {"FCUnpublish", cmd_unpublish},     {"deleteStream", cmd_delete_stream},
    {"closeStream", cmd_delete_stream}, {"FCSubscribe", cmd_simple_result},
    {"_checkbw", cmd_simple_result},    {"receiveAudio", cmd_ignore},
    {"receiveVideo", cmd_ignore},       {"getStreamLength", cmd_ignore},
};

static int sess_command(struct rtmp_session *s, const uint8_t *data, size_t len) {
  struct amf_reader r;
  amf_reader_init(&r, data, len);
  const char *name;
  size_t nl;
  if (amf_read_string(&r, &name, &nl) < 0)
    return 0; /* not a command we can read: ignore, as servers do */
  for (size_t i = 0; i < sizeof cmd_table / sizeof cmd_table[0]; i++) {
    if (strlen(cmd_table[i].name) == nl && memcmp(cmd_table[i].name, name, nl) == 0) {
      struct cmd_args a = {0};
      if (cmd_table[i].fn(s, &r, &a) < 0) {
        snprintf(s->error, sizeof s->error, "malformed %s command", cmd_table[i].name);
        return -EPROTO;
      }
      return 0;
    }
  }
  return 0;
}

static void sess_data(struct rtmp_session *s, const uint8_t *data, size_t len) {
  struct amf_reader r;
  amf_reader_init(&r, data, len);
  const char *name;
  size_t nl;
  if (amf_read_string(&r, &name, &nl) < 0)
    return;
  if (nl == 13 && memcmp(name, "@setDataFrame", 13) == 0) {
    size_t body = r.pos;
    if (amf_read_string(&r, &name, &nl) < 0)
      return;
    data += body;
    len -= body;
  }
  if (nl == 10 && memcmp(name, "onMetaData", 10) == 0 && s->state == RTMP_SESSION_PUBLISHING && s->ops->on_metadata)
    s->ops->on_metadata(s->opaque, data, len);
}

static int sess_media(struct rtmp_session *s, const struct rtmp_msg *msg) {
  if (s->state != RTMP_SESSION_PUBLISHING || !s->ops->on_media)
    return 0;
  if (s->ops->on_media(s->opaque, msg) == RTMP_REFUSE_CODEC) {
    snprintf(s->error, sizeof s->error, "codec refused");
    return -EPROTO;
  }
  return 0;
}

/* Aggregate: FLV tags back to back (11-byte header, body, 4-byte size);
 * timestamps are made relative to the first tag's and added to the
 * message's. */
static int sess_aggregate(struct rtmp_session *s, const struct rtmp_msg *msg) {
  size_t pos = 0;
  bool first = true;
  uint32_t base = 0;
  while (msg->len - pos >= 11) {
    const uint8_t *t = msg->data + pos;
    size_t sz = (size_t)t[1] << 16 | (size_t)t[2] << 8 | t[3];
    uint32_t ts = (uint32_t)t[7] << 24 | (uint32_t)t[4] << 16 | (uint32_t)t[5] << 8 | t[6];
    if (sz > msg->len - pos - 11)
      return -EPROTO;
    if (first)
      base = ts, first = false;
    struct rtmp_msg sub = *msg;
    sub.type = t[0];
    sub.timestamp = msg->timestamp + (ts - base);
    sub.data = t + 11;
    sub.len = sz;
    if ((sub.type == RTMP_MSG_AUDIO || sub.type == RTMP_MSG_VIDEO) && sess_media(s, &sub) < 0)
      return -EPROTO;
    pos += 11 + sz;
    pos += msg->len - pos >= 4 ? 4 : msg->len - pos;
  }
  return 0;
}

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int sess_on_message(void *opaque, const struct rtmp_msg *msg) {
  struct rtmp_session *s = opaque;
  if (s->state == RTMP_SESSION_CLOSING)
    return 0; /* refused: read and drop until the connection closes */
  switch (msg->type) {
  case RTMP_MSG_SET_CHUNK_SIZE:
    if (msg->len < 4 || rtmp_chunk_reader_set_chunk_size(&s->rd, rd32(msg->data) & 0x7fffffffu) < 0) {
      snprintf(s->error, sizeof s->error, "bad chunk size");
      return -EPROTO;
    }
    return 0;
  case RTMP_MSG_ABORT:
    if (msg->len >= 4)
      rtmp_chunk_reader_abort(&s->rd, rd32(msg->data));
    return 0;
  case RTMP_MSG_WINDOW_ACK_SIZE:
    if (msg->len >= 4)
      s->peer_window = rd32(msg->data);
    return 0;
  case RTMP_MSG_USER_CONTROL:
    if (msg->len >= 6 && (msg->data[0] << 8 | msg->data[1]) == RTMP_UC_PING_REQUEST)
      sess_user_control(s, RTMP_UC_PING_RESPONSE, rd32(msg->data + 2));
    return 0;
  case RTMP_MSG_ACK:
  case RTMP_MSG_SET_PEER_BW: return 0;
  case RTMP_MSG_COMMAND_AMF3:
    /* An AMF3 command message is AMF0 after a format byte of 0. */
    if (msg->len < 1 || msg->data[0] != 0)
      return 0;
    return sess_command(s, msg->data + 1, msg->len - 1);
  case RTMP_MSG_COMMAND_AMF0: return sess_command(s, msg->data, msg->len);
  case RTMP_MSG_DATA_AMF3:
    if (msg->len >= 1 && msg->data[0] == 0)
      sess_data(s, msg->data + 1, msg->len - 1);
    return 0;
  case RTMP_MSG_DATA_AMF0: sess_data(s, msg->data, msg->len); return 0;
  case RTMP_MSG_AUDIO:
  case RTMP_MSG_VIDEO: return sess_media(s, msg);
  case RTMP_MSG_AGGREGATE:
    if (sess_aggregate(s, msg) < 0) {
      if (!s->error[0])
        snprintf(s->error, sizeof s->error, "malformed aggregate message");
      return -EPROTO;
    }
    return 0;
  default: return 0;
  }
}

struct rtmp_session *rtmp_session_new(const struct rtmp_session_limits *lim, const struct rtmp_session_ops *ops,
                                      void *opaque) {
  struct rtmp_session *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->ops = ops;
  s->opaque = opaque;
  s->lim = *lim;
  s->out_chunk_size = 128;
  s->state = RTMP_SESSION_HANDSHAKE;
  buf_init(&s->out);
  buf_init(&s->body);
  s->hs = malloc(sizeof *s->hs);
  if (!s->hs) {
    free(s);
    return NULL;
  }
  rtmp_handshake_server_init(s->hs);
  rtmp_chunk_reader_init(&s->rd, lim->max_chunk_size, lim->max_message_size);
  s->lim.max_message_size = s->rd.max_message_size; /* 0 = the reader's default */
  sess_apply_budget(s);
  return s;
}

void rtmp_session_free(struct rtmp_session *s) {
  if (!s)
    return;
  rtmp_chunk_reader_free(&s->rd);
  free(s->hs);
  buf_free(&s->out);
  buf_free(&s->body);
  free(s);
}

int rtmp_session_feed(struct rtmp_session *s, const uint8_t *data, size_t len) {
  if (s->state == RTMP_SESSION_HANDSHAKE) {
    long used = rtmp_handshake_feed(s->hs, data, len, sess_hs_send, s);
    if (used < 0) {
      snprintf(s->error, sizeof s->error, "bad handshake version");
      return -EPROTO;
    }
    data += used;
    len -= (size_t)used;
    if (s->hs->state != RTMP_HS_DONE)
      return 0;
    s->complex_handshake = s->hs->complex;
    free(s->hs);
    s->hs = NULL;
    s->state = RTMP_SESSION_CONNECTING;
  }
  if (s->state == RTMP_SESSION_CLOSING)
    return 1;
  int rc = rtmp_chunk_reader_feed(&s->rd, data, len, sess_on_message, s);
  if (rc < 0) {
    if (!s->error[0] && rc == RTMP_CHUNK_E_TOO_LARGE)
      sess_too_large_error(s);
    if (!s->error[0])
      snprintf(s->error, sizeof s->error, "chunk stream error: %s", rtmp_chunk_strerror(rc));
    return -EPROTO;
  }
  if (s->peer_window && s->rd.bytes_in - s->acked >= s->peer_window) {
    s->acked = s->rd.bytes_in;
    rtmp_chunk_write_ack(&s->out, (uint32_t)s->rd.bytes_in, s->out_chunk_size);
    sess_flush(s);
  }
  return s->state == RTMP_SESSION_CLOSING ? 1 : 0;
}

void rtmp_session_play_unpublished(struct rtmp_session *s) {
  if (s->state != RTMP_SESSION_PLAYING)
    return;
  sess_on_status(s, "status", "NetStream.Play.UnpublishNotify", "Stream unpublished.");
}

void rtmp_session_strip_query(char *name) {
  char *q = strchr(name, '?');
  if (q)
    *q = '\0';
}

enum rtmp_session_state rtmp_session_state(const struct rtmp_session *s) { return s->state; }
const char *rtmp_session_error(const struct rtmp_session *s) { return s->error[0] ? s->error : "closed"; }
const char *rtmp_session_app(const struct rtmp_session *s) { return s->app; }
const char *rtmp_session_stream_name(const struct rtmp_session *s) { return s->name; }
bool rtmp_session_complex_handshake(const struct rtmp_session *s) { return s->complex_handshake; }
uint64_t rtmp_session_bytes_in(const struct rtmp_session *s) { return s->rd.bytes_in; }
