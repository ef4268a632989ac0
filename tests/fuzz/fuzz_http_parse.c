/* fuzz_http_parse: the socket-free parsers of HTTP requests from outside:
 * the X-Forwarded-For header (core/http_xff.c) and the "/hls/" path and
 * query (transcoder/hls/hls_url.c).
 *
 * Input: first byte picks the parser (and, for X-Forwarded-For, the size
 * of the output buffer); the rest is the text, NUL-terminated as lws hands
 * it over. Checked: outputs stay within their buffers, are strings, and
 * keep the promises of the headers (no blank around an address, no '/'
 * in a path part, numbers in range). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/http_xff.h"
#include "tests/fuzz/fuzz_text.h"
#include "transcoder/hls/hls_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_xff(const char *text, size_t len) {
  char out[65], before[65];
  memset(out, 'z', sizeof out);
  out[len] = '\0'; /* what was there before: the peer's address */
  memcpy(before, out, sizeof out);
  if (http_xff_last(text, out, len) != 0) {
    if (memcmp(out, before, sizeof out) != 0)
      abort(); /* untouched on failure */
    return;
  }
  size_t n = strlen(out);
  if (n == 0 || n >= len || out[0] == ' ' || out[0] == '\t' || out[n - 1] == ' ' || out[n - 1] == '\t' ||
      strchr(out, ','))
    abort();
}

static void fuzz_split(const char *text) {
  char parts[3][HLS_URL_PART];
  int n = hls_url_split(text, parts);
  if (n < 0 || n > 4)
    abort();
  for (int i = 0; n <= 3 && i < n; i++) {
    size_t len = strnlen(parts[i], HLS_URL_PART);
    if (len == 0 || len >= HLS_URL_PART || strchr(parts[i], '/') || !strstr(text, parts[i]))
      abort();
  }
}

static void fuzz_query(const char *text) {
  int64_t msn, part;
  hls_url_query(text, &msn, &part);
  if (msn < -2 || part < -2 || msn > (INT64_C(1) << 52) || part > (INT64_C(1) << 52))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = size ? fuzz_text(data + 1, size - 1) : NULL; /* data[0] picks the mode */
  if (!text)
    return 0;
  switch (data[0] % 3) {
  case 0: fuzz_xff(text, (size_t)(data[0] / 3) % 65); break;
  case 1: fuzz_split(text); break;
  default: fuzz_query(text); break;
  }
  free(text);
  return 0;
}
