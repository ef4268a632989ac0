/* rtmp_session: the server side of one RTMP connection as a state machine
 * with no socket: bytes in (rtmp_session_feed), bytes out (ops->send), and
 * callbacks when the peer publishes, plays or sends media.
 *
 * It runs the handshake, the chunk stream, protocol control (Set Chunk
 * Size both ways, Abort, Window Acknowledgement Size, Acknowledgement, Set
 * Peer Bandwidth, User Control StreamBegin/Ping) and the command sequence
 * connect -> releaseStream/FCPublish -> createStream -> publish ->
 * FCUnpublish/deleteStream, or play, answering each with the _result and
 * onStatus messages real clients wait for. Commands come as AMF0 (type 20)
 * or AMF3 command messages (type 17, AMF0 inside), and are decoded by
 * table (see cmd_table in the .c).
 *
 * What to do with a publish or a play is the caller's: on_publish and
 * on_play decide, and the session answers the peer accordingly. Media
 * after an accepted publish goes to on_media untouched (FLV bodies).
 *
 * The caller owns the session (rtmp_session_new / rtmp_session_free, both
 * synchronous) and calls it from one thread (the server: the loop's). A
 * protocol error is -EPROTO, with rtmp_session_error saying why. */
#ifndef GALARELAY_RTMP_SESSION_H
#define GALARELAY_RTMP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/rtmp_chunk.h"

/* on_publish / on_play answers. */
enum rtmp_verdict {
  RTMP_ACCEPT = 0,
  RTMP_REFUSE_BADNAME = -1,  /* NetStream.Publish.BadName, then close */
  RTMP_REFUSE_NOTFOUND = -2, /* NetStream.Play.StreamNotFound, then close */
  RTMP_REFUSE_CODEC = -3,    /* media refused (codec): close */
};

struct rtmp_session_ops {
  /* Bytes for the peer; the callee copies them. */
  void (*send)(void *opaque, const uint8_t *data, size_t len);
  int (*on_publish)(void *opaque, const char *app, const char *name);
  void (*on_unpublish)(void *opaque);
  /* The onMetaData message body as players get it: AMF "onMetaData"
   * followed by the object (an @setDataFrame wrapper removed). */
  void (*on_metadata)(void *opaque, const uint8_t *body, size_t len);
  /* Audio (8) or video (9) message; return RTMP_REFUSE_CODEC to close. */
  int (*on_media)(void *opaque, const struct rtmp_msg *msg);
  int (*on_play)(void *opaque, const char *app, const char *name);
  void (*on_play_stop)(void *opaque);
};

/* Until a publish is accepted (players included: they send only
 * commands) a message may be at most this large, and so may all the
 * messages being assembled on its chunk streams together: a connection
 * that has not proven a stream key holds little memory. From the accepted
 * publish on, max_message_size applies. */
#define RTMP_PREAUTH_BUDGET 65536

struct rtmp_session_limits {
  uint32_t max_chunk_size;
  uint32_t max_message_size;
  uint32_t preauth_budget; /* 0 = RTMP_PREAUTH_BUDGET; never above max_message_size */
};

enum rtmp_session_state {
  RTMP_SESSION_HANDSHAKE,
  RTMP_SESSION_CONNECTING, /* handshake done, waiting for connect */
  RTMP_SESSION_CONNECTED,
  RTMP_SESSION_PUBLISHING,
  RTMP_SESSION_PLAYING,
  RTMP_SESSION_CLOSING, /* refused: flush what was sent, then close */
};

#define RTMP_STREAM_ID 1    /* the one message stream we hand out */
#define RTMP_WINDOW 2500000 /* our Window Acknowledgement Size */

struct rtmp_session;

struct rtmp_session *rtmp_session_new(const struct rtmp_session_limits *lim, const struct rtmp_session_ops *ops,
                                      void *opaque);
void rtmp_session_free(struct rtmp_session *s);

/* Feed bytes read from the socket. Returns 0 to go on, 1 when the session
 * wants the connection closed after what was sent is flushed (a refusal),
 * -EPROTO on a protocol error (close now; rtmp_session_error says why). */
int rtmp_session_feed(struct rtmp_session *s, const uint8_t *data, size_t len);

enum rtmp_session_state rtmp_session_state(const struct rtmp_session *s);
const char *rtmp_session_error(const struct rtmp_session *s);
const char *rtmp_session_app(const struct rtmp_session *s);
const char *rtmp_session_stream_name(const struct rtmp_session *s);
bool rtmp_session_complex_handshake(const struct rtmp_session *s);
uint64_t rtmp_session_bytes_in(const struct rtmp_session *s);

/* Strip "?query" from a stream name (OBS and ffmpeg pass tokens there). */
void rtmp_session_strip_query(char *name);

/* Messages the server sends to players on start, written with the
 * session's output chunk size (RTMP_OUT_CHUNK_SIZE once connected):
 * |RtmpSampleAccess, and any data/media body as one message. */
int rtmp_session_send_message(struct rtmp_session *s, uint32_t csid, uint8_t type, uint32_t timestamp,
                              const uint8_t *body, size_t len);
/* StreamEOF + NetStream.Play.UnpublishNotify to a player whose feed ended. */
void rtmp_session_play_unpublished(struct rtmp_session *s);

#endif
