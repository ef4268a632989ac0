/* log: see log.h. The level is read without a lock: a stale read after a
 * reload only means one line more or less.
 *
 * Messages carry what clients sent (stream and app names, user names, ids,
 * paths). A newline in one would start a line of the client's making
 * ("error main: ..."), a carriage return or an ESC sequence could hide
 * one on a terminal. So every line is escaped here, in the one place all
 * of them pass, after formatting: control bytes (below 0x20, 0x7f and the
 * C1 controls U+0080..U+009F) become \n, \r, \t or \xNN; bytes that are not
 * valid UTF-8 become \xNN too, so a line is always valid UTF-8; valid UTF-8
 * text (names in any script) is written as it is. */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What one line may take, escaped, with its '\n'. Longer lines are cut
 * at a whole character or escape. */
#define LOG_LINE_MAX 2048

static _Atomic int current_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level) { atomic_store(&current_level, (int)level); }

enum log_level log_get_level(void) { return (enum log_level)atomic_load(&current_level); }

int log_level_parse(const char *name, enum log_level *out) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(name, level_names[i]) == 0) {
      *out = (enum log_level)i;
      return 0;
    }
  }
  return -EINVAL;
}

/* Length of the valid UTF-8 sequence of 2 to 4 bytes at s (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char lo = 0x80, hi = 0xbf;
  size_t len;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    len = 2;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    len = 3;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    len = 4;
  else
    return 0;
  if (s[0] == 0xe0)
    lo = 0xa0;
  else if (s[0] == 0xed)
    hi = 0x9f;
  else if (s[0] == 0xf0)
    lo = 0x90;
  else if (s[0] == 0xf4)
    hi = 0x8f;
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xbf)
      return 0;
  return len;
}

/* Escapes in[0..n) into out (at most cap bytes, never a unit cut in
 * half); returns the bytes written. */
static size_t escape_line(const unsigned char *in, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    char unit[16];
    size_t ulen, take = 1;
    unsigned char c = in[i];
    if (c == '\n' || c == '\r' || c == '\t') {
      ulen = (size_t)snprintf(unit, sizeof unit, "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
    } else if (c < 0x20 || c == 0x7f) {
      ulen = (size_t)snprintf(unit, sizeof unit, "\\x%02x", c);
    } else if (c < 0x80) {
      unit[0] = (char)c;
      ulen = 1;
    } else if ((take = utf8_seq(in + i, n - i)) == 0) {
      take = 1;
      ulen = (size_t)snprintf(unit, sizeof unit, "\\x%02x", c);
    } else if (c == 0xc2 && in[i + 1] < 0xa0) { /* C1 control: \xc2\xNN */
      ulen = (size_t)snprintf(unit, sizeof unit, "\\x%02x\\x%02x", c, in[i + 1]);
    } else {
      memcpy(unit, in + i, take);
      ulen = take;
    }
    if (o + ulen > cap)
      break; /* truncated: still whole characters */
    memcpy(out + o, unit, ulen);
    o += ulen;
    i += take;
  }
  return o;
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...) {
  if ((int)level < atomic_load(&current_level))
    return;
  char raw[LOG_LINE_MAX];
  int n = snprintf(raw, sizeof raw, "%s %s: ", level_names[level], component);
  if (n < 0 || (size_t)n >= sizeof raw)
    return;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(raw + n, sizeof raw - (size_t)n, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
  if (len > sizeof raw - 1)
    len = sizeof raw - 1; /* vsnprintf cut it */
  char line[LOG_LINE_MAX];
  size_t out = escape_line((const unsigned char *)raw, len, line, sizeof line - 1);
  line[out++] = '\n';
  /* One write per line keeps lines whole across threads. */
  ssize_t w = write(STDERR_FILENO, line, out);
  (void)w;
}
