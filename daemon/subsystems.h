/* subsystems: the one place that knows every part of the daemon and the
 * order they start and stop in. main calls these; each part keeps its own
 * entry points (rtmp_server_start, chat_start, …). Adding a part means one
 * block in each function of subsystems.c. */
#ifndef GALARELAY_SUBSYSTEMS_H
#define GALARELAY_SUBSYSTEMS_H

struct app;
struct buf;
struct config;
struct lws_protocols;
struct json_t;

/* Start every part (channels, HLS store, chat, RTMP, transcoder) and
 * register their HTTP routes. Before the lws context exists. -1 on failure
 * (logged; what started is stopped again). */
int subsystems_start(struct app *app);
/* Stop in reverse order; memory goes in close callbacks, so uv_run ends. */
void subsystems_stop(struct app *app);
/* A new config was validated and installed in app->cfg. */
void subsystems_reload(struct app *app, const struct config *old_cfg);
void subsystems_metrics(struct app *app, struct buf *out);
void subsystems_channel_api(struct app *app, const char *channel, struct json_t *obj);
/* Websocket protocols, in the order lws must see them (before "http").
 * Returns how many were written to out. */
int subsystems_ws_protocols(struct lws_protocols *out, int max);

#endif
