/* subsystems: see subsystems.h.
 *
 * Start order follows the media path: the channels (the fan-out points)
 * first, then the HLS store, the transcoder that subscribes to channels and
 * feeds the store, the RTMP server that feeds channels, and the chat. Stop
 * is the reverse, so nothing is fed after its consumer has gone. */
#include "daemon/subsystems.h"

#include <jansson.h>
#include <libwebsockets.h>

#include "chat/chat.h"
#include "config/config.h"
#include "core/app.h"
#include "core/buf.h"
#include "relay/channel.h"
#include "core/log.h"
#include "relay/rtmp_server.h"
#include "transcoder/hls/hls_http.h"
#include "transcoder/hls/hls_store.h"
#include "transcoder/transcoder.h"

int subsystems_start(struct app *app) {
  app->channels = channel_registry_new(app);
  if (!app->channels)
    return -1;
  /* Registers the /hls/ route: before the lws context exists. */
  app->hls = hls_server_start(app);
  if (!app->hls)
    return -1;
  app->transcoder = transcoder_start(app);
  if (!app->transcoder)
    return -1;
  app->rtmp = rtmp_server_start(app);
  if (!app->rtmp)
    return -1;
  app->chat = chat_start(app);
  if (!app->chat)
    return -1;
  return 0;
}

/* Safe on a partial start: each part is stopped only if it started. Memory
 * goes in close callbacks as the loop runs on. */
void subsystems_stop(struct app *app) {
  if (app->chat) { /* finishes archive writes; chat callbacks look it up, so NULL it */
    chat_stop(app->chat);
    app->chat = NULL;
  }
  if (app->rtmp) { /* publishers and players go: channels end their feeds */
    rtmp_server_stop(app->rtmp);
    app->rtmp = NULL;
  }
  if (app->transcoder) { /* joins the encoder threads, ends HLS timelines */
    transcoder_stop(app->transcoder);
    app->transcoder = NULL;
  }
  if (app->hls) { /* answers what is still parked */
    hls_server_stop(app->hls);
    app->hls = NULL;
  }
  if (app->channels) {
    channel_registry_free(app->channels);
    app->channels = NULL;
  }
}

void subsystems_reload(struct app *app, const struct config *old_cfg) {
  (void)old_cfg;
  if (app->hls)
    hls_server_reload(app->hls, app->cfg);
  if (app->transcoder)
    transcoder_reload(app->transcoder, app->cfg);
  if (app->channels) /* after the transcoder: it observes channels coming and going */
    channel_registry_reload(app->channels, app->cfg);
  if (app->chat)
    chat_reload(app->chat, app->cfg);
}

void subsystems_metrics(struct app *app, struct buf *out) {
  if (app->channels)
    channel_registry_metrics(app->channels, out);
  if (app->rtmp)
    rtmp_server_metrics(app->rtmp, out);
  if (app->transcoder)
    transcoder_metrics(app->transcoder, out);
  if (app->hls) {
    hls_server_metrics(app->hls, out);
    hls_http_metrics(app->hls, app->cfg, out);
  }
  if (app->chat)
    chat_metrics(app->chat, out);
}

void subsystems_channel_api(struct app *app, const char *channel, json_t *obj) {
  struct channel *ch = app->channels ? channel_registry_find(app->channels, channel) : NULL;
  if (ch)
    channel_api_fill(ch, obj);
  if (app->transcoder)
    transcoder_api_fill(app->transcoder, channel, obj);
  /* distinct addresses fetching its HLS in the last 30 s (behind edges: the edges) */
  json_object_set_new(obj, "viewers", json_integer(app->hls ? hls_http_viewers(app->hls, channel, NULL) : 0));
  int members;
  if (app->chat && chat_room_counts(app->chat, channel, &members) == 0)
    json_object_set_new(obj, "chat_members", json_integer(members));
}

int subsystems_ws_protocols(struct lws_protocols *out, int max) {
  int n = 0;
  /* chat first: a websocket client naming no subprotocol is bound to it */
  if (n < max)
    out[n++] = *chat_protocol();
  return n;
}
