/* main: the galarelay daemon's entry point and its one event loop.
 *
 * main owns the libuv loop, the current config, the libwebsockets context
 * (created on our loop as a foreign loop, so uv_run drives both), the
 * signal handlers and the systemd notifications. Everything else is started
 * and stopped through subsystems.c. Shutdown follows the order written
 * below (lws first, our handles after, a second lws destroy outside the
 * loop), so that uv_loop_close() returns 0 and nothing leaks. */
#include <errno.h>
#include <getopt.h>
#include <libwebsockets.h>
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
#include "daemon/api.h"
#include "core/app.h"
#include "core/http.h"
#include "core/log.h"
#include "core/memguard.h"
#include "daemon/subsystems.h"
#include "daemon/webroot.h"

#ifndef GALARELAY_VERSION
#define GALARELAY_VERSION "0.0.0"
#endif

#define MAX_PROTOCOLS 8

/* Our own handles; tagged through their data pointer so the shutdown walk
 * closes these and never one of lws's. */
struct daemon {
  struct app app;
  struct config *cfg; /* owned; app.cfg points here */
  const char *config_path;
  uv_signal_t sig_term, sig_int, sig_hup;
  uv_timer_t watchdog;   /* pets systemd's watchdog */
  uv_timer_t shutdown;   /* second stage of a stop, then the deadline */
  int shutdown_stage;
  struct lws_protocols protocols[MAX_PROTOCOLS];
  int exit_code;
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: galarelay [-c FILE] [--check]\n"
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
        return -1;
      *p = '/';
    }
  }
  if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
    return -1;
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
  memguard_stop();
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

/* The HTTP side's share of [server]: applies at start and on every reload. */
static void configure_http(const struct config *cfg) {
  struct http_settings hs = {.max_connections = cfg->server.max_http_connections};
  snprintf(hs.trusted_proxy, sizeof hs.trusted_proxy, "%s", cfg->server.trusted_proxy);
  http_configure(&hs);
}

static void begin_stop(struct daemon *d, const char *why) {
  if (d->app.stopping)
    return;
  d->app.stopping = 1;
  http_set_stopping();
  signal(SIGALRM, on_alarm);
  alarm((unsigned)(d->cfg->server.shutdown_timeout + 0.999));
  log_info("main", "stopping reason=%s", why);
  sd_notify(0, "STOPPING=1");
  /* lws first: its connections close while the subsystems they call into
   * are still alive (parked HLS requests, chat members). */
  if (d->app.lws)
    lws_context_destroy(d->app.lws);
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
  configure_http(next);
  log_set_level((enum log_level)next->server.log_level);
  memguard_set_limit((size_t)next->server.memory_limit_mb);
  subsystems_reload(&d->app, old);
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

static int create_lws(struct daemon *d) {
  int n = subsystems_ws_protocols(d->protocols, MAX_PROTOCOLS - 2);
  d->protocols[n++] = *http_protocol();
  memset(&d->protocols[n], 0, sizeof d->protocols[n]);

  static const struct lws_protocol_vhost_options extra_mime = {NULL, NULL, ".m4s", "video/iso.segment"};
  static struct lws_http_mount mount;
  memset(&mount, 0, sizeof mount);
  mount.mountpoint = "/";
  mount.mountpoint_len = 1;
  mount.origin = "http";
  mount.origin_protocol = LWSMPRO_CALLBACK;
  mount.extra_mimetypes = &extra_mime;

  void *foreign_loops[] = {d->app.loop};
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  /* VALIDATE_UTF8: lws fails a text frame that is not UTF-8 with 1007.
   * EXPLICIT_VHOSTS: the listening vhost is created below, where a failed
   * bind is seen (lws 4.1 returns a context even when its default vhost
   * could not listen). */
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  info.foreign_loops = foreign_loops;
  info.protocols = d->protocols;
  info.user = &d->app;
  info.pcontext = &d->app.lws;
  info.timeout_secs = 30;
  /* A viewer whose network vanished silently is found by a ping (lws 4.1
   * sends it after 30 s without traffic, hangs up 20 s later). */
  static const lws_retry_bo_t idle_policy = {.secs_since_valid_ping = 30, .secs_since_valid_hangup = 50};
  info.retry_and_idle_policy = &idle_policy;
  d->app.lws = lws_create_context(&info);
  if (!d->app.lws)
    return -1;
  info.port = d->cfg->server.http_listen.port;
  info.iface = d->cfg->server.http_listen.host;
  info.mounts = &mount;
  info.keepalive_timeout = 30;
  if (!lws_create_vhost(d->app.lws, &info))
    return -1;
  return 0;
}

static int start(struct daemon *d) {
  uv_loop_t *loop = d->app.loop;
  d->app.cfg = d->cfg;
  configure_http(d->cfg);
  d->app.started_ms = uv_now(loop);

  if (mkdir_p(d->cfg->server.state_dir) < 0) {
    log_error("main", "cannot create state_dir path=%s error=%s", d->cfg->server.state_dir, strerror(errno));
    return -1;
  }
  api_register_routes();
  if (memguard_start(loop, (size_t)d->cfg->server.memory_limit_mb) < 0)
    return -1;
  if (subsystems_start(&d->app) < 0) {
    subsystems_stop(&d->app); /* whatever did start */
    return -1;
  }
  http_add_route("/", webroot_route); /* last: every other prefix wins */
  if (create_lws(d) < 0) {
    char addr[96];
    config_addr_format(&d->cfg->server.http_listen, addr, sizeof addr);
    log_error("main", "cannot listen for HTTP addr=%s", addr);
    if (d->app.lws)
      lws_context_destroy(d->app.lws); /* first stage; main finishes it */
    subsystems_stop(&d->app);
    return -1;
  }

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
  int rc = config_path ? config_load(d.cfg, config_path, &errs) : (config_defaults(d.cfg), memset(&errs, 0, sizeof errs),
                                                                    config_validate(d.cfg, &errs));
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
  if (start(&d) < 0) {
    d.exit_code = 1;
    memguard_stop();
    /* Let whatever started close its handles. */
    uv_run(&loop, UV_RUN_DEFAULT);
  } else {
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  /* The second destroy, outside the loop, frees the context (the first,
   * inside it, only starts closing lws's handles). */
  if (d.app.lws)
    lws_context_destroy(d.app.lws);
  webroot_free(); /* every answer that borrowed a file has gone with its connection */
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
