/* transcoder: the loop side of transcoding. It watches the channel
 * registry, gives every channel a pipeline (pipeline.h, worker threads) and
 * subscribes it as a sink, so that a live feed becomes an HLS ladder in the
 * store (app->hls). Pipelines ask the loop to begin and end HLS timelines
 * through one uv_async; nothing here blocks the loop except joining a
 * removed channel's threads (an abort: they exit within one frame).
 *
 * Everything here is loop-thread only. */
#ifndef GALARELAY_TRANSCODER_H
#define GALARELAY_TRANSCODER_H

struct app;
struct buf;
struct config;
struct json_t;
struct transcoder;

/* After app->channels and app->hls exist. NULL on error (logged). */
struct transcoder *transcoder_start(struct app *app);
/* Unsubscribes, aborts and joins every pipeline, ends live HLS timelines,
 * frees. Call before hls_server_stop()/channel_registry_free(). The async
 * handle is closed; its memory goes in the close callback (uv_run ends). */
void transcoder_stop(struct transcoder *t);
/* app->cfg has the new config: pipelines take transcoder.* and hls.* for
 * their next timeline. Channels come and go through the registry observer. */
void transcoder_reload(struct transcoder *t, const struct config *cfg);
/* Prometheus lines (galarelay_transcoder_*). */
void transcoder_metrics(const struct transcoder *t, struct buf *out);
/* "renditions": [{name, width, height, bitrate, passthrough}], "audio". */
void transcoder_api_fill(const struct transcoder *t, const char *channel, struct json_t *obj);

#endif
