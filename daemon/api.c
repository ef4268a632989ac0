/* api: see api.h. Answers are built on the loop thread from state the loop
 * owns, so they are consistent snapshots without locks. */
#include "daemon/api.h"

#include <jansson.h>
#include <string.h>

#include "chat/chat.h"
#include "config/config.h"
#include "core/app.h"
#include "core/buf.h"
#include "relay/rtmp_server.h"
#include "core/http.h"
#include "core/memguard.h"
#include "daemon/subsystems.h"
#include "daemon/webroot.h"

#ifndef GALARELAY_VERSION
#define GALARELAY_VERSION "0.0.0"
#endif

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

static int metrics_route(struct http_request *req) {
  struct app *app = req->app;
  struct buf out;
  buf_init(&out);
  buf_printf(&out,
             "# HELP galarelay_build_info Build information.\n"
             "# TYPE galarelay_build_info gauge\n"
             "galarelay_build_info{version=\"%s\"} 1\n"
             "# HELP galarelay_uptime_seconds Seconds since the daemon started.\n"
             "# TYPE galarelay_uptime_seconds gauge\n"
             "galarelay_uptime_seconds %.3f\n"
             "# HELP galarelay_config_reloads_total Configuration reloads by result.\n"
             "# TYPE galarelay_config_reloads_total counter\n"
             "galarelay_config_reloads_total{result=\"ok\"} %llu\n"
             "galarelay_config_reloads_total{result=\"failed\"} %llu\n"
             "# HELP galarelay_open_connections Open connections by kind.\n"
             "# TYPE galarelay_open_connections gauge\n"
             "galarelay_open_connections{kind=\"http\"} %d\n"
             "galarelay_open_connections{kind=\"websocket\"} %d\n"
             "galarelay_open_connections{kind=\"rtmp\"} %d\n",
             GALARELAY_VERSION, (double)(uv_now(app->loop) - app->started_ms) / 1000.0,
             (unsigned long long)app->config_reloads, (unsigned long long)app->config_reload_failures,
             http_open_connections(), websocket_connections(app), rtmp_server_connections(app->rtmp));
  memguard_metrics(&out);
  subsystems_metrics(app, &out);
  webroot_metrics(&out);
  buf_printf(&out, "# HELP galarelay_websocket_origin_refused_total Websocket handshakes answered 403: their "
                   "Origin is neither the same origin nor in [server] allowed_origins.\n"
                   "# TYPE galarelay_websocket_origin_refused_total counter\n"
                   "galarelay_websocket_origin_refused_total %llu\n",
             (unsigned long long)http_ws_origin_refused());
  if (out.failed) {
    buf_free(&out);
    return http_respond_text(req->wsi, 500, "out of memory\n");
  }
  size_t len;
  char *text = buf_steal(&out, &len);
  return http_respond(req->wsi, 200, "text/plain; version=0.0.4; charset=utf-8", "Cache-Control: no-cache\r\n",
                      text, len, free, text);
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
    subsystems_channel_api(app, ch->name, obj);
    json_array_append_new(list, obj);
  }
  json_t *root = json_pack("{s:o}", "channels", list);
  char *text = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(root);
  if (!text)
    return http_respond_text(req->wsi, 500, "out of memory\n");
  return http_respond(req->wsi, 200, "application/json", json_headers, text, strlen(text), free, text);
}

void api_register_routes(void) {
  http_add_route("/healthz", healthz_route);
  http_add_route("/metrics", metrics_route);
  http_add_route("/api/v1/channels", channels_route);
}
