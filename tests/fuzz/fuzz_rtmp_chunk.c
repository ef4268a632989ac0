/* libFuzzer: the chunk stream reader, fed the input in pieces whose sizes
 * come from the input itself (so one-byte reads and mid-header splits are
 * covered), applying Set Chunk Size and Abort as the session does. */
#include <stddef.h>
#include <stdint.h>

#include "relay/rtmp_chunk.h"

static int on_msg(void *opaque, const struct rtmp_msg *msg) {
  struct rtmp_chunk_reader *rd = opaque;
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < msg->len; i++)
    sink ^= msg->data[i];
  (void)sink;
  if (msg->len >= 4) {
    uint32_t v =
        (uint32_t)msg->data[0] << 24 | (uint32_t)msg->data[1] << 16 | (uint32_t)msg->data[2] << 8 | msg->data[3];
    if (msg->type == RTMP_MSG_SET_CHUNK_SIZE)
      rtmp_chunk_reader_set_chunk_size(rd, v);
    else if (msg->type == RTMP_MSG_ABORT)
      rtmp_chunk_reader_abort(rd, v);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  struct rtmp_chunk_reader rd;
  rtmp_chunk_reader_init(&rd, 65536, 1 << 20);
  size_t step = data[0] % 17 + 1;
  data++, size--;
  for (size_t i = 0; i < size; i += step) {
    size_t n = size - i < step ? size - i : step;
    if (rtmp_chunk_reader_feed(&rd, data + i, n, on_msg, &rd) < 0)
      break;
  }
  rtmp_chunk_reader_free(&rd);
  return 0;
}
