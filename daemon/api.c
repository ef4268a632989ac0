/* api: see api.h. Answers are built on the loop thread from state the loop
 * owns, so they are consistent snapshots without locks. */
#include "daemon/api.h"

#include <jansson.h>
#include <string.h>

#include "chat/chat.h"
#include "config/config.h"
#include "daemon/app.h"
#include "core/buf.h"
#include "relay/rtmp_server.h"
#include "core/http.h"
#include "core/metrics.h"

#ifndef GALARELAY_VERSION
#define GALARELAY_VERSION "0.0.0"
#endif

static const struct api_sources *sources; /* set once, before any request */

static const char json_headers[] = "Cache-Control: no-cache\r\nAccess-Control-Allow-Origin: *\r\n";

static int healthz_route(struct http_request *req) {
  return http_respond_copy(req->wsi, 200, "text/plain", "Cache-Control: no-cache\r\n", "ok\n", 3);
}

/* Websocket connections: the chat's room members (the only websocket
 * protocol; a handshake not yet joined to a room is not counted). */
static int websocket_connections(const struct app *app) {
  int total = 0, members;
  for (int i = 0; app->chat && app->cfg && i < app->cfg->channel_count; i++)
    if (chat_room_counts(app->chat, app->cfg->channels[i].name, &members) == 0)
      total += members;
  return total;
}

static double uptime_seconds(const void *obj) {
  const struct app *app = obj;
  return (double)(uv_now(app->loop) - app->started_ms) / 1000.0;
}

void api_metrics(const struct app *app, struct buf *out) {
  static const struct metric build = METRIC_FAMILY("galarelay_build_info", METRIC_GAUGE, "Build information.");
  static const struct metric uptime =
      METRIC_GETTER("galarelay_uptime_seconds", METRIC_GAUGE, "Seconds since the daemon started.", uptime_seconds);
  static const struct metric reloads =
      METRIC_FAMILY("galarelay_config_reloads_total", METRIC_COUNTER, "Configuration reloads by result.");
  static const struct metric open =
      METRIC_FAMILY("galarelay_open_connections", METRIC_GAUGE, "Open connections by kind.");

  metrics_head(out, &build);
  metrics_value(out, &build, "version=\"" GALARELAY_VERSION "\"", 1);
  metrics_write(out, &uptime, 1, app);
  metrics_head(out, &reloads);
  metrics_count(out, &reloads, "result=\"ok\"", app->config_reloads);
  metrics_count(out, &reloads, "result=\"failed\"", app->config_reload_failures);
  metrics_head(out, &open);
  metrics_value(out, &open, "kind=\"http\"", http_open_connections());
  metrics_value(out, &open, "kind=\"websocket\"", websocket_connections(app));
  metrics_value(out, &open, "kind=\"rtmp\"", rtmp_server_connections(app->rtmp));
}

static int metrics_route(struct http_request *req) {
  struct buf out;
  buf_init(&out);
  sources->metrics(req->app, &out);
  if (out.failed) {
    buf_free(&out);
    return http_respond_text(req->wsi, 500, "out of memory\n");
  }
  size_t len;
  char *text = buf_steal(&out, &len);
  return http_respond(req->wsi, 200, "text/plain; version=0.0.4; charset=utf-8", "Cache-Control: no-cache\r\n", text,
                      len, free, text);
}

static int channels_route(struct http_request *req) {
  struct app *app = req->app;
  const struct config *cfg = app->cfg;
  json_t *list = json_array();
  for (int i = 0; i < cfg->channel_count; i++) {
    const struct config_channel *ch = &cfg->channels[i];
    json_t *obj = json_object();
    json_object_set_new(obj, "name", json_string(ch->name));
    json_object_set_new(obj, "title", json_string(ch->title));
    json_object_set_new(obj, "live", json_false());
    json_object_set_new(obj, "watch_url", json_sprintf("/watch/%s", ch->name));
    json_object_set_new(obj, "hls_url", json_sprintf("/hls/%s/master.m3u8", ch->name));
    json_object_set_new(obj, "chat_url", json_sprintf("/chat/%s", ch->name));
    sources->channel_fields(app, ch->name, obj);
    json_array_append_new(list, obj);
  }
  json_t *root = json_pack("{s:o}", "channels", list);
  char *text = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(root);
  if (!text)
    return http_respond_text(req->wsi, 500, "out of memory\n");
  return http_respond(req->wsi, 200, "application/json", json_headers, text, strlen(text), free, text);
}

void api_register_routes(const struct api_sources *from) {
  sources = from;
  http_add_route("/healthz", healthz_route);
  http_add_route("/metrics", metrics_route);
  http_add_route("/api/v1/channels", channels_route);
}
