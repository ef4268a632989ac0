/* log: see log.h. The level is read without a lock: a stale read after a
 * reload only means one line more or less. */
#include "relay/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
  return -1;
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...) {
  if ((int)level < atomic_load(&current_level))
    return;
  char line[2048];
  int n = snprintf(line, sizeof line, "%s %s: ", level_names[level], component);
  if (n < 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
  if (len > sizeof line - 2)
    len = sizeof line - 2; /* truncated: still one whole line */
  line[len++] = '\n';
  /* One write per line keeps lines whole across threads. */
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
