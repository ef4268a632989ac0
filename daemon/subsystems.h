/* subsystems: the one place that knows every part of the daemon and the
 * order they start, reload and stop in.
 *
 * subsystems.c holds one table, one row per part (name, start, stop, free,
 * reload, metrics, api). It is read forwards to start, backwards to stop
 * and to free, and backwards to reload (every consumer holds the new
 * config before the channel registry announces the channels it adds).
 * main calls these functions and knows no part by name; a part keeps its
 * own entry points (rtmp_server_start, chat_start, …) and its handle in
 * struct app. Adding a part means one row and its small wrappers in
 * subsystems.c.
 *
 * Loop thread only. */
#ifndef GALARELAY_SUBSYSTEMS_H
#define GALARELAY_SUBSYSTEMS_H

struct app;
struct buf;
struct json_t;

/* Start every part in table order: the API routes, the memory ceiling,
 * channels, HLS, transcoder, RTMP, chat, the static files and last the
 * libwebsockets context (so every HTTP route and websocket protocol is
 * registered before anything is served). 0, or the failing part's negative
 * code (logged); the parts that had started are then stopped again, and
 * subsystems_free() must still run once the loop has ended. */
int subsystems_start(struct app *app);
/* Begin stopping every part that started, backwards: the lws context first
 * (its connections close while the parts they call into are alive), the
 * channels last. Asynchronous: handles close as the loop runs on, and
 * uv_run() returns once the last one is closed. Safe to call twice. */
void subsystems_stop(struct app *app);
/* After uv_run() has returned: release, synchronously and backwards, what
 * outlives the loop (the lws context's memory, the static file cache). */
void subsystems_free(struct app *app);
/* A new config was validated and installed in app->cfg; the old one is
 * freed when this returns, so no part may keep a pointer into it. */
void subsystems_reload(struct app *app);
/* Every part's Prometheus families, in table order. */
void subsystems_metrics(const struct app *app, struct buf *out);
/* Every part's fields of one channel's /api/v1/channels entry. */
void subsystems_channel_api(const struct app *app, const char *channel, struct json_t *obj);

#endif
