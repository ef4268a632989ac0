/* hls_url: see hls_url.h. */
#include "transcoder/hls/hls_url.h"

#include <stdlib.h>
#include <string.h>

int hls_url_split(const char *rest, char parts[3][HLS_URL_PART]) {
  int n = 0;
  for (const char *p = rest; *p && n < 4;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (len == 0 || len >= HLS_URL_PART || n == 3)
      return 4;
    memcpy(parts[n], p, len);
    parts[n++][len] = 0;
    p = slash ? slash + 1 : p + len;
  }
  return n;
}

/* "_HLS_msn=12&_HLS_part=3": -1 where absent, -2 where malformed. lws
 * hands the arguments over joined by ',' rather than '&': both separate. */
void hls_url_query(const char *q, int64_t *msn, int64_t *part) {
  *msn = *part = -1;
  while (q && *q) {
    const char *amp = q + strcspn(q, "&,");
    if (!*amp)
      amp = NULL;
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    int64_t *dst = NULL;
    size_t klen = 0;
    if (len > 9 && strncmp(q, "_HLS_msn=", 9) == 0) {
      dst = msn;
      klen = 9;
    } else if (len > 10 && strncmp(q, "_HLS_part=", 10) == 0) {
      dst = part;
      klen = 10;
    }
    if (dst) {
      char num[24];
      size_t n = len - klen;
      char *end;
      if (n >= sizeof num) {
        *dst = -2;
      } else {
        memcpy(num, q + klen, n);
        num[n] = 0;
        long long v = strtoll(num, &end, 10);
        *dst = (*end || n == 0 || v < 0 || v > (1LL << 52)) ? -2 : v;
      }
    }
    q = amp ? amp + 1 : NULL;
  }
}
