/* http_xff: see http_xff.h. Only the last entry is read: the ones before
 * it are whatever the client wrote into its own header. */
#include "core/http_xff.h"

#include <errno.h>
#include <string.h>

int http_xff_last(const char *xff, char *out, size_t len) {
  const char *last = strrchr(xff, ',');
  last = last ? last + 1 : xff;
  while (*last == ' ' || *last == '\t')
    last++;
  size_t n = strlen(last);
  while (n && (last[n - 1] == ' ' || last[n - 1] == '\t'))
    n--;
  if (!n || n >= len)
    return -EINVAL;
  memcpy(out, last, n);
  out[n] = '\0';
  return 0;
}
