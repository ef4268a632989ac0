/* libFuzzer: a whole server session (handshake, chunk stream, commands,
 * metadata, media) fed the input in pieces, accepting every publish and
 * play, so the deepest states are reached. */
#include <stddef.h>
#include <stdint.h>

#include "relay/rtmp_session.h"

static void f_send(void *o, const uint8_t *d, size_t n) { (void)o, (void)d, (void)n; }
static int f_accept(void *o, const char *app, const char *name) {
  (void)o, (void)app, (void)name;
  return RTMP_ACCEPT;
}
static void f_void(void *o) { (void)o; }
static void f_meta(void *o, const uint8_t *b, size_t n) { (void)o, (void)b, (void)n; }
static int f_media(void *o, const struct rtmp_msg *m) {
  (void)o, (void)m;
  return 0;
}

static const struct rtmp_session_ops ops = {f_send, f_accept, f_void, f_meta, f_media, f_accept, f_void};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  struct rtmp_session_limits lim = {65536, 1 << 20, 0};
  struct rtmp_session *s = rtmp_session_new(&lim, &ops, NULL);
  size_t step = (size_t)(data[0] % 64) * 37 + 1;
  data++, size--;
  for (size_t i = 0; i < size; i += step) {
    size_t n = size - i < step ? size - i : step;
    if (rtmp_session_feed(s, data + i, n) != 0)
      break;
  }
  rtmp_session_free(s);
  return 0;
}
