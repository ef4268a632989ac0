/* subsystems: see subsystems.h.
 *
 * The order of the table is the order of the house. The API routes and the
 * memory ceiling come first (they call into nothing). Then the media path,
 * consumers before their producers: the channels (the fan-out points every
 * other part subscribes to), the HLS store, the transcoder that subscribes
 * to channels and feeds the store, the RTMP server that feeds channels.
 * Then the chat, the static files (the "/" route, which must come after
 * every other prefix) and last the libwebsockets context, created once
 * every route and websocket protocol is known. Stopping walks back: lws
 * first, so its connections (parked HLS requests, chat members) close
 * while the parts they call into are alive, and nothing is fed after its
 * consumer has gone.
 *
 * Each part's calls are in small wrappers, one line each where possible,
 * so that a part's signature can change in one place. */
#include "daemon/subsystems.h"

#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <string.h>

#include "chat/chat.h"
#include "config/config.h"
#include "daemon/app.h"
#include "core/buf.h"
#include "core/http.h"
#include "core/log.h"
#include "core/memguard.h"
#include "daemon/api.h"
#include "daemon/webroot.h"
#include "relay/channel.h"
#include "relay/restream.h"
#include "relay/rtmp_server.h"
#include "transcoder/hls/hls_http.h"
#include "transcoder/hls/hls_store.h"
#include "transcoder/transcoder.h"

struct subsystem {
  const char *name;
  /* 0 or a negative code; a part that fails cleans up after itself. A
   * module whose start returns NULL has logged why: its wrapper says -EIO
   * (-ENOMEM where allocation is all it does). */
  int (*start)(struct app *app);
  /* Begin an asynchronous teardown; a part that did not start is skipped. */
  void (*stop)(struct app *app);
  /* Synchronous release of what outlives the loop, after uv_run(). */
  void (*free)(struct app *app);
  void (*reload)(struct app *app);
  void (*metrics)(const struct app *app, struct buf *out);
  void (*api)(const struct app *app, const char *channel, json_t *obj);
  /* Fills in a websocket protocol, for the lws context created by the last row. */
  void (*ws_protocol)(struct app *app, struct lws_protocols *out);
};

/* ---- api: /healthz, /metrics, /api/v1/channels --------------------------- */

static int start_api(struct app *app) {
  (void)app;
  static const struct api_sources every_part = {subsystems_metrics, subsystems_channel_api};
  api_register_routes(&every_part);
  return 0;
}

/* ---- memguard: the memory ceiling ---------------------------------------- */

static int start_memguard(struct app *app) {
  return memguard_start(app->loop, (size_t)app->cfg->server.memory_limit_mb);
}

static void stop_memguard(struct app *app) {
  (void)app;
  memguard_stop();
}

static void reload_memguard(struct app *app) { memguard_set_limit((size_t)app->cfg->server.memory_limit_mb); }

static void metrics_memguard(const struct app *app, struct buf *out) {
  (void)app;
  memguard_metrics(out);
}

/* ---- channels: the registry, fan-out points of the media path ------------- */

static int start_channels(struct app *app) {
  const struct config *cfg = app->cfg;
  app->channels = channel_registry_new(app->loop, &cfg->rtmp, cfg->channels, cfg->channel_count);
  return app->channels ? 0 : -ENOMEM;
}

static void stop_channels(struct app *app) {
  channel_registry_stop(app->channels, NULL, NULL);
  app->channels = NULL;
}

/* After the transcoder and the restream manager (the table reloads
 * backwards): they observe channels coming and going. */
static void reload_channels(struct app *app) {
  const struct config *cfg = app->cfg;
  channel_registry_reload(app->channels, &cfg->rtmp, cfg->channels, cfg->channel_count);
}

static void metrics_channels(const struct app *app, struct buf *out) { channel_registry_metrics(app->channels, out); }

static void api_channels(const struct app *app, const char *channel, json_t *obj) {
  struct channel *ch = channel_registry_find(app->channels, channel);
  if (ch)
    channel_api_fill(ch, obj);
}

/* ---- restream: the pushes of every channel, observing the registry -------- */

static int start_restream(struct app *app) {
  const struct config *cfg = app->cfg;
  app->restream = restream_start(app->loop, &cfg->rtmp, cfg->channels, cfg->channel_count, app->channels);
  return app->restream ? 0 : -ENOMEM;
}

static void stop_restream(struct app *app) {
  restream_stop(app->restream, NULL, NULL);
  app->restream = NULL;
}

static void reload_restream(struct app *app) {
  const struct config *cfg = app->cfg;
  restream_reload(app->restream, &cfg->rtmp, cfg->channels, cfg->channel_count);
}

/* ---- hls: the store and the /hls/ route (registered before lws exists) ---- */

static int start_hls(struct app *app) {
  app->hls = hls_http_start(app->loop, &app->cfg->hls, app->cfg->server.state_dir);
  return app->hls ? 0 : -EIO;
}

static void stop_hls(struct app *app) { /* answers what is still parked */
  hls_http_stop(app->hls, NULL, NULL);
  app->hls = NULL;
}

static void reload_hls(struct app *app) { hls_server_reload(app->hls, &app->cfg->hls, app->cfg->server.state_dir); }

static void metrics_hls(const struct app *app, struct buf *out) {
  hls_server_metrics(app->hls, out);
  hls_http_metrics(app->hls, app->cfg->channels, app->cfg->channel_count, out);
}

/* Distinct addresses fetching its HLS in the last 30 s (behind edges: the edges). */
static void api_hls(const struct app *app, const char *channel, json_t *obj) {
  json_object_set_new(obj, "viewers", json_integer(hls_http_viewers(app->hls, channel, NULL)));
}

/* ---- transcoder: the ladder's worker threads ------------------------------ */

static int start_transcoder(struct app *app) {
  const struct config *cfg = app->cfg;
  app->transcoder = transcoder_start(app->loop, app->channels, app->hls, &cfg->transcoder, &cfg->hls, cfg->channels,
                                     cfg->channel_count);
  return app->transcoder ? 0 : -EIO;
}

static void stop_transcoder(struct app *app) { /* joins the encoder threads, ends HLS timelines */
  transcoder_stop(app->transcoder, NULL, NULL);
  app->transcoder = NULL;
}

static void reload_transcoder(struct app *app) {
  const struct config *cfg = app->cfg;
  transcoder_reload(app->transcoder, &cfg->transcoder, &cfg->hls, cfg->channels, cfg->channel_count);
}

static void metrics_transcoder(const struct app *app, struct buf *out) { transcoder_metrics(app->transcoder, out); }

static void api_transcoder(const struct app *app, const char *channel, json_t *obj) {
  transcoder_api_fill(app->transcoder, channel, obj);
}

/* ---- rtmp: ingest and players ---------------------------------------------- */

static int start_rtmp(struct app *app) {
  const struct config *cfg = app->cfg;
  app->rtmp = rtmp_server_start(app->loop, &cfg->server.rtmp_listen, &cfg->rtmp, cfg->channels, cfg->channel_count,
                                app->channels);
  return app->rtmp ? 0 : -EIO; /* the server logged why */
}

static void stop_rtmp(struct app *app) { /* publishers and players go: channels end their feeds */
  rtmp_server_stop(app->rtmp, NULL, NULL);
  app->rtmp = NULL;
}

static void reload_rtmp(struct app *app) {
  const struct config *cfg = app->cfg;
  rtmp_server_reload(app->rtmp, &cfg->rtmp, cfg->channels, cfg->channel_count);
}

static void metrics_rtmp(const struct app *app, struct buf *out) { rtmp_server_metrics(app->rtmp, out); }

/* ---- chat: rooms, archive, bus ------------------------------------------- */

/* The config sections the chat reads. */
static struct chat_sections chat_sections(const struct config *cfg) {
  return (struct chat_sections){&cfg->chat, &cfg->server, &cfg->redis, cfg->channels, cfg->channel_count};
}

static int start_chat(struct app *app) {
  struct chat_sections sections = chat_sections(app->cfg);
  app->chat = chat_start(app->loop, &sections);
  return app->chat ? 0 : -EIO;
}

static void stop_chat(struct app *app) { /* finishes archive writes; its websocket callback reads the handle: NULL */
  chat_stop(app->chat, NULL, NULL);
  app->chat = NULL;
}

static void reload_chat(struct app *app) {
  struct chat_sections sections = chat_sections(app->cfg);
  chat_reload(app->chat, &sections);
}

/* The chat's websocket callback finds the service through app->chat. */
static void ws_chat(struct app *app, struct lws_protocols *out) { chat_protocol(out, &app->chat); }

static void metrics_chat(const struct app *app, struct buf *out) { chat_metrics(app->chat, out); }

static void api_chat(const struct app *app, const char *channel, json_t *obj) {
  int members;
  if (chat_room_counts(app->chat, channel, &members) == 0)
    json_object_set_new(obj, "chat_members", json_integer(members));
}

/* ---- webroot: static files, the "/" route (last: every other prefix wins) - */

static int start_webroot(struct app *app) {
  (void)app;
  return http_add_route("/", webroot_route);
}

/* Every answer that borrowed a file has gone with its connection. */
static void free_webroot(struct app *app) {
  (void)app;
  webroot_free();
}

static void metrics_webroot(const struct app *app, struct buf *out) {
  (void)app;
  webroot_metrics(out);
}

/* ---- http: the libwebsockets context on our loop --------------------------- */

#define MAX_PROTOCOLS 8

/* Websocket protocols first (a client naming no subprotocol is bound to
 * protocols[0]: the chat), then HTTP, then the terminator. lws keeps a
 * pointer to this array for the context's life. */
static struct lws_protocols protocols[MAX_PROTOCOLS];

/* The HTTP side's share of [server]: applies at start and on every reload. */
static void reload_http(struct app *app) {
  struct http_settings hs = {.max_connections = app->cfg->server.max_http_connections};
  snprintf(hs.trusted_proxy, sizeof hs.trusted_proxy, "%s", app->cfg->server.trusted_proxy);
  http_configure(&hs);
}

static int collect_ws_protocols(struct app *app, struct lws_protocols *out, int max); /* below the table */

static int create_lws(struct app *app) {
  int n = collect_ws_protocols(app, protocols, MAX_PROTOCOLS - 2);
  protocols[n++] = *http_protocol();
  memset(&protocols[n], 0, sizeof protocols[n]);

  static const struct lws_protocol_vhost_options extra_mime = {NULL, NULL, ".m4s", "video/iso.segment"};
  static struct lws_http_mount mount;
  memset(&mount, 0, sizeof mount);
  mount.mountpoint = "/";
  mount.mountpoint_len = 1;
  mount.origin = "http";
  mount.origin_protocol = LWSMPRO_CALLBACK;
  mount.extra_mimetypes = &extra_mime;

  void *foreign_loops[] = {app->loop};
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  /* VALIDATE_UTF8: lws fails a text frame that is not UTF-8 with 1007.
   * EXPLICIT_VHOSTS: the listening vhost is created below, where a failed
   * bind is seen (lws 4.1 returns a context even when its default vhost
   * could not listen). */
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  info.foreign_loops = foreign_loops;
  info.protocols = protocols;
  info.user = app;
  info.pcontext = &app->lws;
  info.timeout_secs = 30;
  /* A viewer whose network vanished silently is found by a ping (lws 4.1
   * sends it after 30 s without traffic, hangs up 20 s later). */
  static const lws_retry_bo_t idle_policy = {.secs_since_valid_ping = 30, .secs_since_valid_hangup = 50};
  info.retry_and_idle_policy = &idle_policy;
  app->lws = lws_create_context(&info);
  if (!app->lws)
    return -ENOMEM;
  info.port = app->cfg->server.http_listen.port;
  info.iface = app->cfg->server.http_listen.host;
  info.mounts = &mount;
  info.keepalive_timeout = 30;
  if (!lws_create_vhost(app->lws, &info))
    return -EADDRINUSE;
  return 0;
}

static int start_http(struct app *app) {
  reload_http(app);
  int rc = create_lws(app);
  if (rc < 0) {
    char addr[96];
    config_addr_format(&app->cfg->server.http_listen, addr, sizeof addr);
    log_error("main", "cannot listen for HTTP addr=%s", addr);
    if (app->lws)
      lws_context_destroy(app->lws); /* first stage; http_free finishes it */
  }
  return rc;
}

/* lws's first destroy, inside the loop, only starts closing its handles. */
static void stop_http(struct app *app) {
  http_set_stopping();
  if (app->lws)
    lws_context_destroy(app->lws);
}

/* The second destroy, outside the loop, frees the context. */
static void free_http(struct app *app) {
  if (app->lws)
    lws_context_destroy(app->lws);
  app->lws = NULL;
}

static void metrics_http(const struct app *app, struct buf *out) {
  (void)app;
  http_metrics(out);
}

/* ---- the table ------------------------------------------------------------- */

/* Forwards to start; backwards to stop, free and reload. */
static const struct subsystem parts[] = {
    {.name = "api", .start = start_api, .metrics = api_metrics},
    {.name = "memguard",
     .start = start_memguard,
     .stop = stop_memguard,
     .reload = reload_memguard,
     .metrics = metrics_memguard},
    {.name = "channels",
     .start = start_channels,
     .stop = stop_channels,
     .reload = reload_channels,
     .metrics = metrics_channels,
     .api = api_channels},
    {.name = "restream", .start = start_restream, .stop = stop_restream, .reload = reload_restream},
    {.name = "hls", .start = start_hls, .stop = stop_hls, .reload = reload_hls, .metrics = metrics_hls, .api = api_hls},
    {.name = "transcoder",
     .start = start_transcoder,
     .stop = stop_transcoder,
     .reload = reload_transcoder,
     .metrics = metrics_transcoder,
     .api = api_transcoder},
    {.name = "rtmp", .start = start_rtmp, .stop = stop_rtmp, .reload = reload_rtmp, .metrics = metrics_rtmp},
    {.name = "chat",
     .start = start_chat,
     .stop = stop_chat,
     .reload = reload_chat,
     .metrics = metrics_chat,
     .api = api_chat,
     .ws_protocol = ws_chat},
    {.name = "webroot", .start = start_webroot, .free = free_webroot, .metrics = metrics_webroot},
    {.name = "http",
     .start = start_http,
     .stop = stop_http,
     .free = free_http,
     .reload = reload_http,
     .metrics = metrics_http},
};

static const int part_count = (int)(sizeof parts / sizeof parts[0]);

static int collect_ws_protocols(struct app *app, struct lws_protocols *out, int max) {
  int n = 0;
  for (int i = 0; i < part_count && n < max; i++)
    if (parts[i].ws_protocol)
      parts[i].ws_protocol(app, &out[n++]);
  return n;
}

/* How many rows started (from the top), for stop and free: a part that
 * did not start is never stopped, a stop is never run twice. */
static int started;
static int stopped_from = -1;

int subsystems_start(struct app *app) {
  started = 0;
  stopped_from = -1;
  for (int i = 0; i < part_count; i++) {
    int rc = parts[i].start(app);
    if (rc < 0) {
      log_error("main", "start failed part=%s", parts[i].name);
      subsystems_stop(app); /* whatever did start */
      return rc;
    }
    started = i + 1;
  }
  return 0;
}

void subsystems_stop(struct app *app) {
  int from = stopped_from < 0 ? started : stopped_from;
  for (int i = from - 1; i >= 0; i--)
    if (parts[i].stop)
      parts[i].stop(app);
  stopped_from = 0;
}

void subsystems_free(struct app *app) {
  for (int i = part_count - 1; i >= 0; i--)
    if (parts[i].free)
      parts[i].free(app);
}

void subsystems_reload(struct app *app) {
  if (stopped_from >= 0)
    return;
  for (int i = started - 1; i >= 0; i--)
    if (parts[i].reload)
      parts[i].reload(app);
}

void subsystems_metrics(const struct app *app, struct buf *out) {
  for (int i = 0; i < started && stopped_from < 0; i++)
    if (parts[i].metrics)
      parts[i].metrics(app, out);
}

void subsystems_channel_api(const struct app *app, const char *channel, json_t *obj) {
  for (int i = 0; i < started && stopped_from < 0; i++)
    if (parts[i].api)
      parts[i].api(app, channel, obj);
}
