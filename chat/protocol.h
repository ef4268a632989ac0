/* protocol: the live comment wire format of docs/protocol.md, "Live comments".
 *
 * Parsing turns one complete websocket text frame into a validated
 * `struct chat_msg` (hello, comment or mod), or says why it is not one:
 * invalid UTF-8 (the caller closes with 1007) or not a valid message (the
 * caller answers an `error` with code `bad_request` and keeps the
 * connection). Validation is table-driven: each message type names the
 * fields it takes, their JSON type and whether they are required, and one
 * walker checks them, so a field is never read unchecked.
 *
 * Serialising builds the server's messages (welcome, ack, error, batch)
 * as jansson objects or as text; events are jansson objects too, because
 * they travel through the bus between nodes in the same form. Events
 * travel in their full form (moderators, the bus, the archive); viewers
 * get a lean copy (chat_event_for_viewers) without what their page does
 * not use. A batch's text may also be deflated once for every member
 * that asked for compressed batches (chat_deflate_frame). */
#ifndef GALARELAY_CHAT_PROTOCOL_H
#define GALARELAY_CHAT_PROTOCOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAT_NONCE_MAX 64    /* bytes */
#define CHAT_TOKEN_MAX 4096  /* bytes */
#define CHAT_WORDS_MAX 256   /* words in one words_add / words_remove */
#define CHAT_WORD_MAX 128    /* bytes per word */
#define CHAT_ID_MAX 96       /* bytes of a comment id or user id */
#define CHAT_COMPRESS_MAX 32 /* bytes of hello's compress */

/* The one compression a hello may ask for: raw DEFLATE (RFC 1951), which
 * a browser inflates with DecompressionStream('deflate-raw'). */
#define CHAT_COMPRESS_DEFLATE_RAW "deflate-raw"

enum chat_msg_type {
  CHAT_MSG_HELLO,
  CHAT_MSG_COMMENT,
  CHAT_MSG_MOD,
};

enum chat_mod_action {
  CHAT_MOD_DELETE,
  CHAT_MOD_TIMEOUT,
  CHAT_MOD_BAN,
  CHAT_MOD_UNBAN,
  CHAT_MOD_SLOW,
  CHAT_MOD_HOLD,
  CHAT_MOD_APPROVE,
  CHAT_MOD_REJECT,
  CHAT_MOD_WORDS_ADD,
  CHAT_MOD_WORDS_REMOVE,
  CHAT_MOD_CLEAR,
  CHAT_MOD_PIN,
};

/* A parsed client message. Strings are borrowed from `root` (owned by the
 * message; chat_msg_free releases it) and are NUL-free, valid UTF-8. */
struct chat_msg {
  enum chat_msg_type type;
  const char *nonce; /* NULL if the message had none */
  /* hello */
  const char *name;     /* NULL = keep */
  const char *token;    /* NULL = none */
  const char *compress; /* NULL = not given (keep); else "deflate-raw" or anything (off) */
  /* comment */
  const char *text;
  /* mod */
  enum chat_mod_action action;
  const char *id;   /* delete, approve, reject, pin (pin: NULL = unpin) */
  const char *user; /* timeout, ban, unban */
  int64_t seconds;  /* timeout (1..), slow (0 = off) */
  bool on;          /* hold */
  json_t *words;    /* words_add / words_remove: array of strings (borrowed) */
  json_t *root;
};

enum chat_parse_result {
  CHAT_PARSE_OK = 0,
  CHAT_PARSE_BAD_UTF8 = -1,    /* close with 1007 */
  CHAT_PARSE_BAD_REQUEST = -2, /* error bad_request, stay open */
};

struct chat_parse_error {
  char message[128];
  /* the nonce of the offending message when it could be read, "" if not:
   * the error reply still carries it (one reply per nonce). */
  char nonce[CHAT_NONCE_MAX + 1];
};

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool chat_utf8_valid(const void *data, size_t len);
/* Code points in valid UTF-8. */
size_t chat_utf8_length(const char *s, size_t len);

/* Parse one text frame. On CHAT_PARSE_OK *out owns a reference to the
 * document: release it with chat_msg_free. */
enum chat_parse_result chat_protocol_parse(const void *data, size_t len, struct chat_msg *out,
                                           struct chat_parse_error *err);
void chat_msg_free(struct chat_msg *msg);

const char *chat_mod_action_name(enum chat_mod_action a);

/* ---- Server messages. Each returns a new reference. */

/* {"id","name","role"}: the full form (moderators, the bus, the archive) */
json_t *chat_user_json(const char *id, const char *name, const char *role);
/* The form viewers get of an event (a new reference): a comment's user is
 * {"name"} plus "role" only when it is not "viewer" (the watch page shows
 * the name and a moderator's badge; it knows its own comments by the id
 * its ack carried); the same for a state's pinned comment. Other events
 * are returned as they are (one more reference). NULL on no memory. */
json_t *chat_event_for_viewers(json_t *ev);
/* comment event: {"type":"comment","id","user":{…},"text","ts"} */
json_t *chat_comment_event(const char *id, json_t *user /* stolen */, const char *text, int64_t ts_ms);
/* {"type":"state","slow":N,"hold":bool,"pinned":comment|null} (pinned borrowed, copied) */
json_t *chat_state_json(int slow_seconds, bool hold, const json_t *pinned);
json_t *chat_ack_json(const char *nonce, const char *id /* NULL = none */);
/* retry_after_ms < 0: omitted. nonce NULL or "": omitted. */
json_t *chat_error_json(const char *nonce, const char *code, const char *message, int64_t retry_after_ms);

/* Serialise a message compactly into a new malloc'd buffer that starts
 * with `headroom` unused bytes (LWS_PRE), so that lws can write the frame
 * header in front without a copy. *len excludes the headroom. NULL on
 * allocation failure. */
unsigned char *chat_json_frame(const json_t *msg, size_t headroom, size_t *len);

/* zlib level of compressed batches. Measured on batches of realistic CJK
 * comments (bench/cjk_comments.txt, 10 a batch as at 200 comments/s and
 * 50 ms ticks): level 6 makes the same bytes as level 9 (memLevel 9 too)
 * and 2 % fewer than level 1; the time is mostly the stream's set-up,
 * the same at every level. One deflate per room and tick costs less than
 * the bytes it saves on every send (docs/benchmarks.md). */
#define CHAT_DEFLATE_LEVEL 6
/* Deflate len bytes of payload (a batch's JSON text) as raw DEFLATE with
 * a fresh stream (windowBits -15), so each frame inflates on its own, into
 * a new malloc'd buffer that starts with `headroom` unused bytes (as
 * chat_json_frame). *out_len excludes the headroom. NULL on failure. */
unsigned char *chat_deflate_frame(const unsigned char *payload, size_t len, size_t headroom, size_t *out_len);

#endif
