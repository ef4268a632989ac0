/* rtmp_chunk: the RTMP chunk stream, reader and writer, socket-free.
 *
 * The reader is fed whatever bytes a read returned (one byte at a time
 * works) and calls back once per complete message. It handles all four
 * chunk header types, extended timestamps (also repeated in type-3
 * chunks, as Flash, ffmpeg and librtmp write them), and keeps per chunk
 * stream state for a bounded number of chunk streams. Protocol control
 * (Set Chunk Size, Abort) is applied by the caller through the setters
 * below, typically from inside the message callback: a new chunk size takes
 * effect for the very next chunk.
 *
 * The writer is stateless: every message starts with a type-0 header and
 * continues with type-3 chunks, so the bytes of one message are the same
 * for every receiver that uses the same chunk size. That is what lets one
 * chunked media message be shared by all players (rtmp_chunk_wire).
 *
 * A reader belongs to its caller (one connection; any thread, one at a
 * time); the writer's output buffers and wires belong to the caller.
 * Errors: enum rtmp_chunk_error (negative errno codes),
 * rtmp_chunk_strerror. */
#ifndef GALARELAY_RTMP_CHUNK_H
#define GALARELAY_RTMP_CHUNK_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct AVBufferRef;

/* Message types. */
enum {
  RTMP_MSG_SET_CHUNK_SIZE = 1,
  RTMP_MSG_ABORT = 2,
  RTMP_MSG_ACK = 3,
  RTMP_MSG_USER_CONTROL = 4,
  RTMP_MSG_WINDOW_ACK_SIZE = 5,
  RTMP_MSG_SET_PEER_BW = 6,
  RTMP_MSG_AUDIO = 8,
  RTMP_MSG_VIDEO = 9,
  RTMP_MSG_DATA_AMF3 = 15,
  RTMP_MSG_SHARED_OBJECT_AMF3 = 16,
  RTMP_MSG_COMMAND_AMF3 = 17,
  RTMP_MSG_DATA_AMF0 = 18,
  RTMP_MSG_SHARED_OBJECT_AMF0 = 19,
  RTMP_MSG_COMMAND_AMF0 = 20,
  RTMP_MSG_AGGREGATE = 22,
};

/* Chunk stream ids we write on. */
enum {
  RTMP_CSID_CONTROL = 2,
  RTMP_CSID_COMMAND = 3,
  RTMP_CSID_AUDIO = 4,
  RTMP_CSID_DATA = 5,
  RTMP_CSID_VIDEO = 6,
};

/* Chunk size we write with (sent to every peer in Set Chunk Size). */
#define RTMP_OUT_CHUNK_SIZE 4096
/* Chunk streams tracked at once per connection; a peer using more is
 * refused (real clients use fewer than ten). */
#define RTMP_MAX_CHUNK_STREAMS 32

struct rtmp_msg {
  uint32_t csid;
  uint8_t type;
  uint32_t stream_id;
  uint32_t timestamp; /* absolute, ms */
  const uint8_t *data;
  size_t len;
};

/* Return 0 to go on, < 0 to stop parsing (the error is passed up). */
typedef int (*rtmp_msg_fn)(void *opaque, const struct rtmp_msg *msg);

struct rtmp_chunk_stream {
  uint32_t csid; /* 0 = slot free */
  uint32_t timestamp;
  uint32_t ts_field; /* last timestamp field: delta (type 1/2) or absolute (type 0) */
  uint32_t len;
  uint32_t stream_id;
  uint8_t type;
  bool ext;     /* last header used an extended timestamp */
  uint8_t *buf; /* message being assembled (len bytes), NULL between messages */
  uint32_t have;
  uint32_t cap; /* allocated bytes of buf */
};

/* The reader's failures: negative errno codes, told apart (and from the
 * callback's own codes) by rtmp_chunk_strerror. */
enum rtmp_chunk_error {
  RTMP_CHUNK_E_TOO_MANY_STREAMS = -EMFILE,
  RTMP_CHUNK_E_TOO_LARGE = -EMSGSIZE,
  RTMP_CHUNK_E_NO_HEADER = -EPROTO, /* type 1/2/3 on a chunk stream never opened */
  RTMP_CHUNK_E_NOMEM = -ENOMEM,
};
const char *rtmp_chunk_strerror(int code);

struct rtmp_chunk_reader {
  uint32_t chunk_size;
  uint32_t max_chunk_size;
  uint32_t max_message_size;
  size_t assembly_cap;  /* declared bytes of all partial messages together */
  uint32_t refused_len; /* the length that gave RTMP_CHUNK_E_TOO_LARGE */
  uint64_t bytes_in;    /* for Acknowledgement */
  /* header being read */
  uint8_t hdr[18];
  size_t hdr_have;
  size_t hdr_need;
  struct rtmp_chunk_stream *cur; /* stream whose payload is being read */
  uint32_t chunk_left;           /* payload bytes left in the current chunk */
  int error;
  struct rtmp_chunk_stream streams[RTMP_MAX_CHUNK_STREAMS];
};

/* The assembly cap starts at twice max_message_size. */
void rtmp_chunk_reader_init(struct rtmp_chunk_reader *r, uint32_t max_chunk_size, uint32_t max_message_size);
/* New limits for messages that start from now on (a message already being
 * assembled keeps its buffer): the largest message, and the declared bytes
 * of all partial messages together. */
void rtmp_chunk_reader_set_limits(struct rtmp_chunk_reader *r, uint32_t max_message_size, size_t assembly_cap);
void rtmp_chunk_reader_free(struct rtmp_chunk_reader *r);
/* Returns 0, or a negative error (enum rtmp_chunk_error or the callback's);
 * after an error the reader stays failed. */
int rtmp_chunk_reader_feed(struct rtmp_chunk_reader *r, const uint8_t *data, size_t len, rtmp_msg_fn cb, void *opaque);
/* Set Chunk Size from the peer: 1..max_chunk_size, else -EINVAL. */
int rtmp_chunk_reader_set_chunk_size(struct rtmp_chunk_reader *r, uint32_t size);
/* Abort: drop the partly received message on csid. */
void rtmp_chunk_reader_abort(struct rtmp_chunk_reader *r, uint32_t csid);

/* Writer: append one whole message as chunks. Returns 0 or -ENOMEM; so do
 * the rtmp_chunk_write_* below. */
int rtmp_chunk_write(struct buf *out, uint32_t csid, uint8_t type, uint32_t stream_id, uint32_t timestamp,
                     const uint8_t *payload, size_t len, uint32_t chunk_size);
/* Bytes rtmp_chunk_write would produce. */
size_t rtmp_chunk_size(uint32_t csid, uint32_t timestamp, size_t len, uint32_t chunk_size);
/* The same bytes in a refcounted buffer (shared by all players), written
 * with RTMP_OUT_CHUNK_SIZE and message stream id 1. NULL on no memory. */
struct AVBufferRef *rtmp_chunk_wire(uint32_t csid, uint8_t type, uint32_t timestamp, const uint8_t *payload,
                                    size_t len);
/* A copy of a wire from rtmp_chunk_wire with another timestamp (the
 * channel's output clock after a feed switch). NULL when wire is not one
 * whole message as rtmp_chunk_wire writes it, or on no memory. */
struct AVBufferRef *rtmp_chunk_wire_retimed(const uint8_t *wire, size_t len, uint32_t timestamp);
/* Length of the type-0 header at the start of a written message, and a
 * copy of it with another message stream id (players get stream 1 baked
 * in; a push target may have handed out another). */
size_t rtmp_chunk_first_header_len(const uint8_t *wire, size_t len);
void rtmp_chunk_patch_stream_id(uint8_t *hdr, size_t hdr_len, uint32_t stream_id);

/* Protocol control messages, written on csid 2. */
int rtmp_chunk_write_set_chunk_size(struct buf *out, uint32_t size, uint32_t chunk_size);
int rtmp_chunk_write_window_ack(struct buf *out, uint32_t size, uint32_t chunk_size);
int rtmp_chunk_write_ack(struct buf *out, uint32_t seq, uint32_t chunk_size);
int rtmp_chunk_write_peer_bw(struct buf *out, uint32_t size, uint8_t limit, uint32_t chunk_size);
/* User Control: event type + one 32-bit value (StreamBegin = 0, PingRequest
 * = 6, PingResponse = 7, StreamEOF = 1, StreamIsRecorded = 4). */
int rtmp_chunk_write_user_control(struct buf *out, uint16_t event, uint32_t value, uint32_t chunk_size);

enum {
  RTMP_UC_STREAM_BEGIN = 0,
  RTMP_UC_STREAM_EOF = 1,
  RTMP_UC_STREAM_DRY = 2,
  RTMP_UC_SET_BUFFER_LENGTH = 3,
  RTMP_UC_STREAM_IS_RECORDED = 4,
  RTMP_UC_PING_REQUEST = 6,
  RTMP_UC_PING_RESPONSE = 7,
};

#endif
