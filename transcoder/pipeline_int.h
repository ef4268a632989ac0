/* pipeline_int: the types the pipeline's files share (not for other
 * modules: they use pipeline.h). pipeline.c has the public API and the
 * control items; pipeline_timeline.c the timeline (begin / end);
 * pipeline_decode.c the decode thread's media path (timestamps, the hold,
 * decoding, the overload policy, scaling); pipeline_rung.c the bounded
 * queues and the encoder threads. Each declares the functions it shares
 * in its own NAME_int.h, so that the files call each other in one
 * direction: pipeline -> decode -> timeline -> rung. */
#ifndef GALARELAY_PIPELINE_INT_H
#define GALARELAY_PIPELINE_INT_H

#include <stdatomic.h>

#include <libswscale/swscale.h>
#include <uv.h>

#include "config/config.h"
#include "transcoder/pipeline.h"

#define HOLD_MAX 1024   /* packets held while the source's GOP is measured */
#define TS_JUMP_MS 5000 /* a forward step larger than this is a jump */
#define ARRIVAL_RING 128
#define KEY_RING 16
#define CONTROL_RESERVE 16 /* queue slots only control items may use */

/* ---- bounded queue of packets / frames / control items ---- */

enum qkind { Q_PACKET, Q_FRAME, Q_START, Q_STOP, Q_SYNC, Q_EOS };

struct qitem {
  enum qkind kind;
  AVPacket *pkt;
  AVFrame *frame;
  int64_t arrival_ms;
  bool forced;                    /* Q_FRAME: force a keyframe */
  AVCodecParameters *vpar, *apar; /* Q_START */
  double fps;
  int64_t keyint_hint_ms; /* Q_START: channel_feed_info's, 0 = unknown */
  double kbps_hint;
};

struct queue {
  uv_mutex_t mu;
  uv_cond_t nonempty, nonfull;
  struct qitem *items;
  int bound, size, head, count;
  bool closed;
};

/* ---- state ---- */

/* The two config sections a pipeline uses, copied (a reload frees the
 * config they came from). */
struct pipeline_settings {
  struct config_transcoder transcoder;
  struct config_hls hls;
};

struct rstat {
  _Atomic uint64_t in, out, dropped, gops, errors;
};

struct rung {
  struct pipeline *p;
  int index; /* in the ladder and the layout */
  struct ladder_rendition lr;
  AVCodecContext *enc;
  struct SwsContext *sws;
  void *writer;
  struct queue q;
  uv_thread_t thread;
  bool started;
  bool skipping;   /* decode thread: drop until the next segment boundary */
  bool shed;       /* decode thread: shed this GOP (overload) */
  AVFrame *scaled; /* decode thread: this frame's picture */
  int64_t amap_pts[ARRIVAL_RING], amap_arr[ARRIVAL_RING];
  unsigned amap_n;
  uint64_t synced;
};

enum pstate { P_IDLE, P_HOLDING, P_RUNNING, P_DISCARD };

struct pipeline {
  char channel[64];
  struct pipeline_output out;
  bool realtime;
  struct queue in;
  uv_thread_t thread;
  bool in_skip_video; /* loop thread: dropped video, wait for a keyframe */

  uv_mutex_t mu; /* guards: settings, begun, sync, layout for stats */
  uv_cond_t cond;
  struct pipeline_settings settings; /* from the last reload */
  bool begun_answered;
  uint32_t begun_timeline;
  uint64_t sync_req, sync_done;
  _Atomic bool aborting;

  /* decode thread only */
  enum pstate state;
  bool replaying;               /* the hold goes in: rung queues block instead of dropping */
  struct pipeline_settings cfg; /* the settings this timeline runs with */
  AVCodecParameters *vpar, *apar;
  double fps;
  AVCodecContext *dec;
  int src_w, src_h, src_fmt;
  AVRational src_sar;
  bool source_decided, source_fits;
  int64_t first_key_dts, last_key_dts, max_keyint;
  int64_t keyint_hint; /* ms; the channel measured the feed's GOP: no hold */
  double kbps_hint;    /* the feed's video bitrate as the channel measured it */
  bool keyint_warned;
  struct qitem *hold;
  int hold_count;
  int64_t hold_bytes;
  struct ladder ladder;
  struct rung *rungs[LADDER_MAX]; /* NULL for the source */
  int nrungs;
  void *source_writer, *audio_writer;
  int audio_index;
  uint32_t timeline;
  int64_t ts_off, last_dts[2];
  bool have_last[2], have_off;
  int64_t last_seg, last_frame_pts;
  int shed_count;
  int64_t arr_pts[ARRIVAL_RING], arr_ms[ARRIVAL_RING];
  /* pts of the last source keyframes sent to the decoder: with the source
   * passed through, rung keyframes go where its segments are cut */
  int64_t key_pts[KEY_RING];
  unsigned key_n;
  unsigned arr_n;
  AVFrame *frame;

  /* counters, any thread */
  _Atomic uint64_t packets_in, input_dropped, decode_errors, ts_rebased, timelines, reconfigures;
  struct rstat rs[LADDER_MAX];
  struct ladder shown; /* under mu: the current renditions */
  bool shown_audio;
  bool shown_live;
};

static inline int64_t pipeline__seg_ms(const struct pipeline *p) {
  return (int64_t)(p->cfg.hls.segment_duration * 1000.0 + 0.5);
}

#endif
