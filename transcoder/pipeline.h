/* pipeline: one channel's transcoding, on worker threads.
 *
 * The loop thread pushes the channel's feed in (pipeline_start /
 * pipeline_packet / pipeline_stop) and never waits: packets cross by
 * reference into a bounded input queue. A decode thread owns the rest of
 * the timeline: it rebases timestamps, holds the first keyframe interval
 * back to decide whether the source can be passed through (its keyframes
 * must fit a segment), decodes the video once, scales every rung (from the
 * nearest larger rung when cheaper, ladder.h) and hands frames by reference
 * to one encoder thread per rung (libx264: keyframes forced on the shared
 * segment clock, no scene-cut keyframes, no B-frames, lookahead and frame
 * threads within transcoder.latency_frames). Audio (AAC passed through, or
 * encoded once) and the source rung are written on the decode thread; each
 * transcoded rung is written on its own thread. Output goes to a
 * struct pipeline_output: the HLS packagers in the daemon, a recording or
 * null writer in tests and benchmarks.
 *
 * Queues and drop policy:
 *  - input (loop -> decode): PIPELINE_INPUT_MAX packets. Full: the packet is
 *    dropped and counted; after a dropped video packet, video is dropped up
 *    to the next source keyframe (the decoder needs it).
 *  - rung (decode -> encoder): transcoder.queue_frames frames per rung. At
 *    each segment boundary, if any rung's queue is over half full the
 *    pipeline is overloaded and the lowest-priority rung still running skips
 *    that whole GOP (one per boundary, so lower priorities shed load first).
 *    A rung whose queue is full mid-GOP skips the rest of that GOP. The
 *    source rung is never dropped. Every skipped GOP is counted.
 *  With realtime = false (tests, benchmarks) both queues block the
 *  producer instead of dropping. */
#ifndef GALARELAY_PIPELINE_H
#define GALARELAY_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>

#include "transcoder/hls/hls_store.h"
#include "transcoder/ladder.h"

struct config_hls;
struct config_transcoder;
struct channel_feed_info;
struct pipeline;
struct buf;

#define PIPELINE_INPUT_MAX 1024

/* Where a pipeline's renditions go. begin/open/end run on the decode
 * thread; write/close on the thread that owns the writer (the decode thread
 * for the source and audio, the rung's thread for a transcoded rung). */
struct pipeline_output {
  /* A new timeline with this layout (video renditions in ladder order, then
   * at most one audio rendition). Answer with pipeline_begun(p, id), from
   * here or later from any thread (the daemon asks the loop); the decode
   * thread waits for the answer. Return a negative code to give up at
   * once. */
  int (*begin)(void *opaque, struct pipeline *p, const struct hls_stream_layout *layout);
  /* A writer for rendition `index` of `timeline`; NULL on error (logged). */
  void *(*open)(void *opaque, uint32_t timeline, int index, const AVCodecParameters *par, AVRational time_base);
  int (*write)(void *writer, const AVPacket *pkt, int64_t arrival_ms);
  void (*close)(void *writer, bool flush);
  /* The timeline is over; every writer was closed. */
  void (*end)(void *opaque);
  void *opaque;
};

struct pipeline_rung_stats {
  char name[32];
  int width, height;
  bool passthrough;
  int64_t bitrate; /* bit/s, configured (0 = source) */
  uint64_t frames_in, frames_out, frames_dropped, gops_dropped, errors;
  int queue_depth;
};

struct pipeline_stats {
  uint64_t packets_in, input_dropped, decode_errors, ts_rebased, timelines, reconfigures;
  bool live; /* a timeline runs; else r[] is the last one's */
  int rendition_count;
  struct pipeline_rung_stats r[LADDER_MAX];
  bool has_audio;
  bool audio_reencoded;
};

/* The answer to output->begin: the timeline id, 0 = refused (the
 * pipeline then idles until the next start). Any thread. */
void pipeline_begun(struct pipeline *p, uint32_t timeline);

/* The two sections are copied (not kept), as is out. Starts the decode
 * thread. NULL on error (logged). Any thread. */
struct pipeline *pipeline_new(const char *channel, const struct config_transcoder *tc, const struct config_hls *hls,
                              const struct pipeline_output *out, bool realtime);
/* Settings for timelines begun after this, copied (loop thread, like the
 * rest). */
void pipeline_reload(struct pipeline *p, const struct config_transcoder *tc, const struct config_hls *hls);

/* Feed side, one thread (the loop). A start while a timeline runs ends it
 * and begins a new one (a discontinuity). Packets are referenced, not
 * taken; pts/dts in milliseconds, stream_index CHANNEL_VIDEO/AUDIO. */
int pipeline_start(struct pipeline *p, const struct channel_feed_info *info);
void pipeline_packet(struct pipeline *p, const AVPacket *pkt, int64_t arrival_ms);
void pipeline_stop(struct pipeline *p); /* feed gone: flush, end the timeline */

/* Blocks until everything queued so far has been processed and the encoders
 * are idle (tests, benchmarks; not for the loop thread). */
void pipeline_wait_idle(struct pipeline *p);

/* Any thread: counters (atomics) and the current renditions. */
void pipeline_get_stats(struct pipeline *p, struct pipeline_stats *out);

/* Abort (no flush: the timeline is not ended), join every thread, free.
 * Never from a pipeline thread. A decode thread waiting for begin's answer
 * is woken. */
void pipeline_free(struct pipeline *p);

#endif
