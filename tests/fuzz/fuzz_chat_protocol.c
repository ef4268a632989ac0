/* libFuzzer target: one websocket text frame -> chat_protocol_parse. Every
 * accepted message is serialised back (as the room would echo parts of it)
 * so the borrowed strings are exercised; nothing may leak or overrun. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "chat/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct chat_msg msg;
  struct chat_parse_error err;
  enum chat_parse_result r = chat_protocol_parse(data, size, &msg, &err);
  if (r != CHAT_PARSE_OK) {
    json_t *e = chat_error_json(err.nonce, "bad_request", err.message, -1);
    json_decref(e);
    return 0;
  }
  json_t *out = NULL;
  switch (msg.type) {
  case CHAT_MSG_HELLO: out = chat_user_json("id", msg.name, "viewer"); break;
  case CHAT_MSG_COMMENT: out = chat_comment_event("id", chat_user_json("u", "n", "viewer"), msg.text, 0); break;
  case CHAT_MSG_MOD: out = chat_ack_json(msg.nonce, msg.id ? msg.id : msg.user); break;
  }
  size_t len;
  unsigned char *frame = out ? chat_json_frame(out, 16, &len) : NULL;
  if (frame && !chat_utf8_valid(frame + 16, len))
    abort(); /* we must never produce invalid UTF-8 */
  free(frame);
  json_decref(out);
  chat_msg_free(&msg);
  return 0;
}
