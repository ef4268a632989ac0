/* hls_store: the HLS state of every channel, in memory, on the loop thread.
 *
 * One hls_stream per channel, made on first use and kept until the server
 * stops. A stream goes through timelines: hls_stream_begin() starts one with
 * a layout (the renditions: names, sizes, bitrates), the transcoder's
 * packagers (hls_packager.h) feed it parts from their worker threads, and
 * hls_stream_end() closes it. Each new timeline is a discontinuity.
 * Renditions keep a window of hls.window_segments complete segments (plus
 * the one being written), optionally mirrored to hls.record_dir through a
 * bounded queue of writes (HLS_RECORD_MAX_JOBS, HLS_RECORD_MAX_BYTES): a
 * segment that finds it full is not mirrored, and counted
 * (galarelay_hls_record_dropped_total), rather than wait or pile up.
 *
 * Crossing threads: packagers push finished parts into the stream's queue
 * (mutex + uv_async_send); the loop thread drains it into the window. The
 * queue is bounded (HLS_QUEUE_MAX items); when it is full the part is
 * dropped, counted, and the rendition skips the rest of that segment (its
 * next segment starts clean), so a stalled loop never grows memory.
 *
 * Media sequence numbers only grow: per channel, ceilings of the MSN,
 * discontinuity and timeline numbers in use are persisted in
 * server.state_dir/hls-CHANNEL.state (tmp + fsync + rename, on the libuv
 * threadpool), reserved ahead of use, and a restart begins above them. After
 * a crash the numbers skip ahead (by up to HLS_MSN_RESERVE MSNs); after a
 * graceful stop they continue without a gap. The same file keeps the layout
 * of the channel's last feed timeline (hls_stream_save_layout), so that the
 * slate after a restart lists the renditions the feed had.
 *
 * Everything here is loop-thread only, except hls_stream_packager() (any
 * thread). */
#ifndef GALARELAY_HLS_STORE_H
#define GALARELAY_HLS_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <libavutil/rational.h>
#include <uv.h>

struct AVCodecParameters;
struct config_hls;
struct buf;
struct hls_server;
struct hls_stream;

#define HLS_MAX_RENDITIONS 12
#define HLS_QUEUE_MAX 512 /* parts in flight per channel, worker -> loop */
/* The recording queue (hls.record_dir mirror writes on the threadpool), all
 * channels: past either bound a segment is not mirrored, and counted. */
#ifndef HLS_RECORD_MAX_JOBS
#define HLS_RECORD_MAX_JOBS 64
#endif
#define HLS_RECORD_MAX_BYTES (256u * 1024 * 1024)
/* An open segment is closed without waiting for a keyframe past this many
 * segment durations or bytes, and parts are dropped until the next
 * keyframe (hls_store.c: segment_full). */
#define HLS_SEGMENT_MAX_TARGETS 3
#define HLS_SEGMENT_MAX_BYTES (64u * 1024 * 1024)
/* MSNs reserved ahead of use in the state file (see hls_store.c): a restart
 * after a crash may skip up to this many; every MSN up to the one in use
 * + HLS_MSN_RESERVE / 2 is covered by the file once its last write landed. */
#define HLS_MSN_RESERVE 32

enum hls_media_kind { HLS_VIDEO = 0, HLS_AUDIO = 1 };

struct hls_rendition_desc {
  char name[32]; /* URL element, [A-Za-z0-9_-]: "720p", "source", "audio" */
  enum hls_media_kind kind;
  int width, height;         /* video */
  double fps;                /* video; 0 = unknown */
  int64_t bandwidth;         /* peak bit/s of this rendition's media; 0 = measure */
  int64_t average_bandwidth; /* bit/s; 0 = measure */
  int channels;              /* audio; 0 = unknown */
};

/* The renditions of one timeline. At most one audio rendition: it is the
 * shared EXT-X-MEDIA TYPE=AUDIO group of every video rendition (or, in an
 * audio-only stream, the only variant). */
struct hls_stream_layout {
  struct hls_rendition_desc r[HLS_MAX_RENDITIONS];
  int count;
};

/* The store alone (tests); the daemon uses hls_http_start() (hls_http.h),
 * which also registers the HTTP route. The hls section and state_dir (the
 * server section's; "" = none) are copied now and not kept. */
struct hls_server *hls_server_new(uv_loop_t *loop, const struct config_hls *hls, const char *state_dir);
/* Asynchronous teardown: answers every parked request (with an error
 * status) and closes the libuv handles now; once the loop has run their
 * close callbacks and the disk jobs are done, the memory goes and cb(arg)
 * is called (cb may be NULL). Every packager must have been freed before
 * (join the workers first). */
void hls_server_stop(struct hls_server *srv, void (*cb)(void *arg), void *arg);
/* New hls.* values apply to timelines begun after this (copied, as above). */
void hls_server_reload(struct hls_server *srv, const struct config_hls *hls, const char *state_dir);
/* Prometheus lines (galarelay_hls_*). */
void hls_server_metrics(const struct hls_server *srv, struct buf *out);

/* The channel's stream, made on first call. Valid until hls_server_stop. */
struct hls_stream *hls_stream_get(struct hls_server *srv, const char *channel);
/* The stream or NULL, without making one. */
struct hls_stream *hls_stream_find(struct hls_server *srv, const char *channel);

/* A new timeline with these renditions (copied). Returns the timeline id
 * (never 0) that the packagers of this layout are created with; parts of
 * older timelines still in the queue are dropped. Renditions of the same
 * name continue their playlist after an EXT-X-DISCONTINUITY; the others are
 * removed. Returns 0 if the layout is invalid (logged). */
uint32_t hls_stream_begin(struct hls_stream *st, const struct hls_stream_layout *layout);
/* The feed is gone: drains what the packagers already queued (flush them
 * first), closes the open segments. Playlists stay served; master.m3u8
 * answers 404 until the next begin. */
void hls_stream_end(struct hls_stream *st);
/* layout (copied) is that of a timeline a feed has begun (not the slate's):
 * kept, and written to the state file (on the threadpool) when it differs
 * from the one kept. Invalid layouts are ignored. */
void hls_stream_save_layout(struct hls_stream *st, const struct hls_stream_layout *layout);
/* The last feed's layout, as saved by hls_stream_save_layout() in this run
 * or read from the state file at start-up: 0 and *out filled, or -ENOENT if
 * there is none (no feed yet, no state_dir, an older or malformed file). */
int hls_stream_saved_layout(struct hls_stream *st, struct hls_stream_layout *out);
bool hls_stream_live(const struct hls_stream *st);
const char *hls_stream_channel(const struct hls_stream *st);

/* A packager (hls_packager.h) for rendition `rendition_index` of the
 * timeline hls_stream_begin() returned: its parts go into the stream's
 * queue (to the loop thread), with the part and segment durations of the
 * stream's config. par and time_base as for hls_packager_new(). Any
 * thread. NULL on error (logged). */
struct hls_packager *hls_stream_packager(struct hls_stream *st, uint32_t timeline, int rendition_index,
                                         const struct AVCodecParameters *par, AVRational time_base);

/* Process what the packagers queued now (the uv_async callback does the
 * same; tests call it to be deterministic). */
void hls_stream_drain(struct hls_stream *st);

#endif
