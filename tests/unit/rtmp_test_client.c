/* rtmp_test_client: see the header. */
#include "tests/unit/rtmp_test_client.h"

#include <string.h>

#include "relay/amf.h"
#include "core/buf.h"
#include "relay/rtmp_chunk.h"
#include "relay/rtmp_handshake.h"

void rtmp_test_client_handshake(struct buf *out) {
  uint8_t c0c1[1 + RTMP_HANDSHAKE_SIZE] = {3};
  buf_append(out, c0c1, sizeof c0c1);
  uint8_t c2[RTMP_HANDSHAKE_SIZE] = {0};
  buf_append(out, c2, sizeof c2);
}

void rtmp_test_client_command(struct buf *out, const char *name, double txid, const char *arg, uint32_t sid) {
  struct buf b;
  buf_init(&b);
  amf_put_string(&b, name);
  amf_put_number(&b, txid);
  if (strcmp(name, "connect") == 0) {
    amf_put_object_start(&b);
    amf_put_prop_string(&b, "app", "live");
    amf_put_prop_string(&b, "tcUrl", "rtmp://127.0.0.1/live");
    amf_put_prop_number(&b, "objectEncoding", 0);
    amf_put_object_end(&b);
  } else {
    amf_put_null(&b);
    if (arg)
      amf_put_string(&b, arg);
  }
  rtmp_chunk_write(out, RTMP_CSID_COMMAND, RTMP_MSG_COMMAND_AMF0, sid, 0, (uint8_t *)b.data, b.len, 128);
  buf_free(&b);
}
