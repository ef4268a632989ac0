/* main: the galarelay daemon's entry point and its one event loop.
 *
 * main owns the command line, the libuv loop, the current config, the
 * signal handlers and the systemd notifications. Every part of the daemon
 * (the libwebsockets context on our loop included) is started, reloaded
 * and stopped through the table in subsystems.c, which alone knows their
 * order. Shutdown: the parts stop, main's own handles close a loop turn
 * later, and once uv_run() has returned the parts free what outlived the
 * loop, so that uv_loop_close() returns 0 and nothing leaks. */
#include <errno.h>
#include <getopt.h>
#include <libwebsockets.h> /* lws_set_log_level: lws logs through ours */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <uv.h>

#include "config/config.h"
#include "daemon/app.h"
#include "core/log.h"
#include "daemon/subsystems.h"

#ifndef GALARELAY_VERSION
#define GALARELAY_VERSION "0.0.0"
#endif

/* Our own handles; tagged through their data pointer so the shutdown walk
 * closes these and never one of lws's. */
struct daemon {
  struct app app;
  struct config *cfg; /* owned; app.cfg points here */
  const char *config_path;
  uv_signal_t sig_term, sig_int, sig_hup;
  uv_timer_t watchdog; /* pets systemd's watchdog */
  uv_timer_t shutdown; /* second stage of a stop, then the deadline */
  int shutdown_stage;
  int exit_code;
};

static void usage(FILE *out) {
  fprintf(out, "usage: galarelay [-c FILE] [--check]\n"
               "  -c, --config FILE  run with this config (default: built-in demo defaults)\n"
               "      --check        validate the config and exit (0 ok, 2 with FILE:LINE errors)\n"
               "  -V, --version      print the version\n"
               "  -h, --help         this help\n");
}

static void lws_log_to_ours(int level, const char *line) {
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    n--;
  log_msg(level == LLL_ERR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN, "lws", "%.*s", (int)n, line);
}

static int mkdir_p(const char *path) {
  char tmp[512];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p == '/') {
      *p = '\0';
      if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
        return -errno;
      *p = '/';
    }
  }
  if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

/* Lots of viewers means lots of descriptors: take what the hard limit allows. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* ---- shutdown ----------------------------------------------------------- */

static void close_own_handles(struct daemon *d) {
  uv_handle_t *own[] = {(uv_handle_t *)&d->sig_term, (uv_handle_t *)&d->sig_int, (uv_handle_t *)&d->sig_hup,
                        (uv_handle_t *)&d->watchdog, (uv_handle_t *)&d->shutdown};
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
    if (!uv_is_closing(own[i]))
      uv_close(own[i], NULL);
}

static void on_shutdown_timer(uv_timer_t *t) {
  struct daemon *d = t->data;
  if (d->shutdown_stage == 1) {
    /* lws has had a loop turn to close its sockets; now ours. */
    d->shutdown_stage = 2;
    close_own_handles(d);
  }
}

/* The last resort if some part hangs on the way out: docs/protocol.md promises exit
 * within 5 s, and a non-zero code tells the test (and systemd) it was not
 * clean. Only async-signal-safe calls here. */
static void on_alarm(int signum) {
  (void)signum;
  static const char msg[] = "error main: shutdown did not finish in time, exiting\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  _exit(1);
}

static void begin_stop(struct daemon *d, const char *why) {
  if (d->app.stopping)
    return;
  d->app.stopping = 1;
  signal(SIGALRM, on_alarm);
  alarm((unsigned)(d->cfg->server.shutdown_timeout + 0.999));
  log_info("main", "stopping reason=%s", why);
  sd_notify(0, "STOPPING=1");
  subsystems_stop(&d->app);
  uv_timer_stop(&d->watchdog);
  d->shutdown_stage = 1;
  uv_timer_start(&d->shutdown, on_shutdown_timer, 50, 0);
}

/* ---- reload ------------------------------------------------------------- */

/* A refused reload: each error on its own line (FILE:LINE: what is
 * wrong), then why the running config stays. */
static void reload_refused(struct daemon *d, struct config_errors *errs, const char *why) {
  char *save = NULL;
  for (char *line = strtok_r(errs->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
    log_error("config", "%s", line);
  log_error("main", "reload failed: kept the running config errors=%d why=%s", errs->count, why);
  d->app.config_reload_failures++;
}

static void reload(struct daemon *d) {
  if (!d->config_path) {
    log_info("main", "reload skipped: running on built-in defaults (no -c FILE)");
    return;
  }
  struct config *next = malloc(sizeof *next);
  struct config_errors errs;
  if (!next) {
    log_error("main", "reload failed: out of memory");
    d->app.config_reload_failures++;
    return;
  }
  if (config_load(next, d->config_path, &errs) < 0) {
    reload_refused(d, &errs, "invalid"); /* keep serving on the old config */
    free(next);
    return;
  }
  /* Listeners and the state folder are bound at start: keep them. */
  if (memcmp(&next->server.http_listen, &d->cfg->server.http_listen, sizeof next->server.http_listen) ||
      memcmp(&next->server.rtmp_listen, &d->cfg->server.rtmp_listen, sizeof next->server.rtmp_listen) ||
      strcmp(next->server.state_dir, d->cfg->server.state_dir))
    log_warn("main", "reload: listen addresses and state_dir change only at restart");
  next->server.http_listen = d->cfg->server.http_listen;
  next->server.rtmp_listen = d->cfg->server.rtmp_listen;
  memcpy(next->server.state_dir, d->cfg->server.state_dir, sizeof next->server.state_dir);
  /* The file was validated against its own listen lines, which apply only
   * at restart: judge it again against the listeners that are bound, or a
   * file saying 127.0.0.1 would bring the public demo secrets to a daemon
   * that listens on every interface. */
  memset(&errs, 0, sizeof errs);
  if (config_validate(next, &errs) < 0) {
    reload_refused(d, &errs, "demo-secrets-beyond-loopback");
    free(next);
    return;
  }

  struct config *old = d->cfg;
  d->cfg = next;
  d->app.cfg = next;
  log_set_level((enum log_level)next->server.log_level);
  subsystems_reload(&d->app);
  free(old);
  d->app.config_reloads++;
  log_info("main", "config reloaded path=%s channels=%d", next->path, next->channel_count);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct daemon *d = h->data;
  if (signum == SIGHUP)
    reload(d);
  else
    begin_stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_watchdog(uv_timer_t *t) {
  (void)t;
  sd_notify(0, "WATCHDOG=1");
}

/* ---- start -------------------------------------------------------------- */

static int start(struct daemon *d) {
  uv_loop_t *loop = d->app.loop;
  d->app.cfg = d->cfg;
  d->app.started_ms = uv_now(loop);

  int rc = mkdir_p(d->cfg->server.state_dir);
  if (rc < 0) {
    log_error("main", "cannot create state_dir path=%s error=%s", d->cfg->server.state_dir, strerror(-rc));
    return rc;
  }
  rc = subsystems_start(&d->app); /* on failure, what started is stopping */
  if (rc < 0)
    return rc;

  uv_signal_t *sigs[] = {&d->sig_term, &d->sig_int, &d->sig_hup};
  int nums[] = {SIGTERM, SIGINT, SIGHUP};
  for (int i = 0; i < 3; i++) {
    uv_signal_init(loop, sigs[i]);
    sigs[i]->data = d;
    uv_signal_start(sigs[i], on_signal, nums[i]);
  }
  uv_timer_init(loop, &d->shutdown);
  d->shutdown.data = d;
  uv_timer_init(loop, &d->watchdog);
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    uint64_t ms = usec / 2000; /* pet twice per period */
    uv_timer_start(&d->watchdog, on_watchdog, ms ? ms : 1, ms ? ms : 1);
  }

  char http[96], rtmp[96];
  config_addr_format(&d->cfg->server.http_listen, http, sizeof http);
  config_addr_format(&d->cfg->server.rtmp_listen, rtmp, sizeof rtmp);
  log_info("main", "ready version=%s http=%s rtmp=%s config=%s channels=%d", GALARELAY_VERSION, http, rtmp,
           d->cfg->path[0] ? d->cfg->path : "(defaults)", d->cfg->channel_count);
  sd_notify(0, "READY=1");
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"check", no_argument, NULL, 'k'},
                                       {"version", no_argument, NULL, 'V'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *config_path = NULL;
  int check = 0, c;
  while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
    switch (c) {
    case 'c': config_path = optarg; break;
    case 'k': check = 1; break;
    case 'V': printf("galarelay %s\n", GALARELAY_VERSION); return 0;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    usage(stderr);
    return 2;
  }

  static struct daemon d; /* large (configs): not on the stack */
  d.cfg = malloc(sizeof *d.cfg);
  if (!d.cfg)
    return 1;
  struct config_errors errs;
  int rc = config_path ? config_load(d.cfg, config_path, &errs)
                       : (config_defaults(d.cfg), memset(&errs, 0, sizeof errs), config_validate(d.cfg, &errs));
  if (rc < 0) {
    fputs(errs.text, stderr);
    free(d.cfg);
    return 2;
  }
  if (check) {
    printf("%s: ok\n", config_path ? config_path : "(defaults)");
    free(d.cfg);
    return 0;
  }
  d.config_path = config_path;
  log_set_level((enum log_level)d.cfg->server.log_level);
  lws_set_log_level(LLL_ERR | (log_get_level() <= LOG_LEVEL_DEBUG ? LLL_WARN : 0), lws_log_to_ours);
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) {
    free(d.cfg);
    return 1;
  }
  d.app.loop = &loop;
  if (start(&d) < 0)
    d.exit_code = 1;
  /* Runs until every handle is closed; after a failed start, that lets
   * whatever did start close its handles. */
  uv_run(&loop, UV_RUN_DEFAULT);
  subsystems_free(&d.app);
  int closed = uv_loop_close(&loop);
  if (closed != 0) {
    log_error("main", "loop still had handles at exit: %s", uv_strerror(closed));
    uv_print_all_handles(&loop, stderr);
    d.exit_code = 1;
  }
  /* Everything is closed: what is left is the C library's exit (and, in a
   * sanitizer build, the leak check), which must not be cut short by the
   * alarm meant for a hanging teardown. */
  alarm(0);
  log_info("main", "stopped exit=%d", d.exit_code);
  free(d.cfg);
  return d.exit_code;
}
