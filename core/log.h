/* log: one line per event on stderr, `level component: message key=value…`.
 *
 * Safe to call from any thread: each line is formatted into a local buffer
 * and written with a single write(2), so lines from the transcoder and
 * archive threads never interleave with the loop thread's.
 *
 * A message may carry what clients sent (names, ids, paths) through %s:
 * the whole line is escaped before it is written (control bytes as \n,
 * \t, \xNN; bytes that are not UTF-8 as \xNN; valid UTF-8 as it is), so
 * nothing a client sends can start a line of its own or hide one. */
#ifndef GALARELAY_LOG_H
#define GALARELAY_LOG_H

enum log_level {
  LOG_LEVEL_DEBUG,
  LOG_LEVEL_INFO,
  LOG_LEVEL_WARN,
  LOG_LEVEL_ERROR,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "debug", "info", "warn", "error" -> 0; anything else -> -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);

void log_msg(enum log_level level, const char *component, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_debug(component, ...) log_msg(LOG_LEVEL_DEBUG, component, __VA_ARGS__)
#define log_info(component, ...) log_msg(LOG_LEVEL_INFO, component, __VA_ARGS__)
#define log_warn(component, ...) log_msg(LOG_LEVEL_WARN, component, __VA_ARGS__)
#define log_error(component, ...) log_msg(LOG_LEVEL_ERROR, component, __VA_ARGS__)

#endif
