/* subsystems: see subsystems.h. */
#include "relay/subsystems.h"

#include <jansson.h>
#include <libwebsockets.h>

#include "config/config.h"
#include "relay/app.h"
#include "relay/buf.h"
#include "relay/log.h"

int subsystems_start(struct app *app) {
  (void)app;
  return 0;
}

void subsystems_stop(struct app *app) { (void)app; }

void subsystems_reload(struct app *app, const struct config *old_cfg) {
  (void)app;
  (void)old_cfg;
}

void subsystems_metrics(struct app *app, struct buf *out) {
  (void)app;
  (void)out;
}

void subsystems_channel_api(struct app *app, const char *channel, json_t *obj) {
  (void)app;
  (void)channel;
  (void)obj;
}

int subsystems_ws_protocols(struct lws_protocols *out, int max) {
  (void)out;
  (void)max;
  return 0;
}
