/* transcoder: the loop side of transcoding. It watches the channel
 * registry, gives every channel a pipeline (pipeline.h, worker threads) and
 * subscribes it as a sink, so that a live feed becomes an HLS ladder in the
 * HLS store. Pipelines ask the loop to begin and end HLS timelines through
 * one bounded workq (core/workq.h); nothing here blocks the loop except
 * joining a removed channel's threads (an abort: they exit within one
 * frame).
 *
 * It is given what it uses: the loop, the channel registry it observes, the
 * HLS store it feeds, and three config sections (transcoder, hls, the
 * channels: their titles and slate images), which it reads until the next
 * transcoder_reload() and never after. The registry and the store outlive
 * it.
 *
 * Everything here is loop-thread only. */
#ifndef GALARELAY_TRANSCODER_H
#define GALARELAY_TRANSCODER_H

#include <uv.h>

struct buf;
struct channel_registry;
struct config_channel;
struct config_hls;
struct config_transcoder;
struct hls_server;
struct json_t;
struct transcoder;

/* After the registry and the store exist. NULL on error (logged). */
struct transcoder *transcoder_start(uv_loop_t *loop, struct channel_registry *registry, struct hls_server *hls,
                                    const struct config_transcoder *tc_cfg, const struct config_hls *hls_cfg,
                                    const struct config_channel *chan_cfg, int chan_count);
/* Asynchronous teardown: unsubscribes, aborts and joins every pipeline
 * (synchronously), ends live HLS timelines, closes its handles, and once
 * they are closed frees itself and calls cb(arg) (cb may be NULL). Call
 * before hls_http_stop()/channel_registry_free(). t may be NULL (cb is
 * called at once). */
void transcoder_stop(struct transcoder *t, void (*cb)(void *arg), void *arg);
/* The new config's sections: pipelines take transcoder.* and hls.* for
 * their next timeline, the slate its channel titles and images. The old
 * sections are not read after this returns. Channels come and go through
 * the registry observer. */
void transcoder_reload(struct transcoder *t, const struct config_transcoder *tc_cfg, const struct config_hls *hls_cfg,
                       const struct config_channel *chan_cfg, int chan_count);
/* Prometheus lines (galarelay_transcoder_*). */
void transcoder_metrics(const struct transcoder *t, struct buf *out);
/* "renditions": [{name, width, height, bitrate, passthrough}], "audio". */
void transcoder_api_fill(const struct transcoder *t, const char *channel, struct json_t *obj);

#endif
