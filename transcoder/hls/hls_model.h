/* hls_model: the types of a rendition's in-memory window (segments, parts,
 * inits, parked requests), shared by the window (hls_window.c, which changes
 * it for the store), the store (hls_store.c, which owns it), the playlist
 * renderer (hls_playlist.c) and the HTTP side (hls_http.c). Types only: the
 * operations are in hls_window_int.h and hls_store_int.h. Not for other
 * modules: they use hls_store.h. Loop thread only. */
#ifndef GALARELAY_HLS_MODEL_H
#define GALARELAY_HLS_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "transcoder/hls/hls_blob.h"
#include "transcoder/hls/hls_store.h"

struct hls_part {
  uint64_t seq;    /* per timeline and rendition: URL part-TIMELINE-SEQ.m4s */
  double duration; /* seconds */
  bool independent;
  struct hls_blob *data; /* NULL once the part left the playlist */
};

struct hls_segment {
  uint64_t msn;
  uint32_t timeline;  /* its init segment: init-TIMELINE.mp4 */
  uint64_t disc;      /* discontinuity sequence number */
  bool discontinuity; /* EXT-X-DISCONTINUITY before it */
  bool complete;
  int64_t pdt_ms;
  double duration; /* sum of its parts */
  struct hls_part *parts;
  int part_count, part_cap;
  size_t bytes;
  struct hls_blob *data; /* the whole segment, once complete */
};

struct hls_init {
  uint32_t timeline;
  struct hls_blob *data;
};

/* A parked request. The owner (hls_http.c) embeds it and fills poke and
 * deadline_ms; the store calls poke (after unlinking it) when what it waits
 * on may have changed (HLS_WAKE_CHANGE: return true when answered and freed,
 * false to wait on: it is linked again), on timeout, and when the rendition
 * or server goes away (then it must answer and free, whatever it returns). */
enum hls_wake { HLS_WAKE_CHANGE, HLS_WAKE_TIMEOUT, HLS_WAKE_GONE };
struct hls_waiter {
  struct hls_waiter *prev, *next; /* private to the store */
  struct hls_waiter **list_;      /* private: the list it is on, NULL if none */
  uint64_t deadline_ms;           /* uv_now() clock */
  bool (*poke)(struct hls_waiter *w, enum hls_wake why);
};

struct hls_rendition {
  struct hls_stream *stream;
  struct hls_rendition_desc desc;
  int index;                /* in the current layout */
  char codecs[64];          /* from the init: "avc1.64001f" */
  uint32_t timeline;        /* the current timeline of this rendition */
  struct hls_init inits[4]; /* current first; older ones while segments use them */
  int init_count;
  struct hls_segment **segs; /* oldest first; the last may be open */
  int seg_count, seg_cap;
  uint64_t next_msn;      /* next segment's MSN */
  uint64_t disc;          /* current discontinuity sequence number */
  bool pending_disc;      /* the next segment starts with a discontinuity */
  uint64_t next_part_seq; /* the hinted part */
  bool skipping;          /* a part was lost: drop until the next segment start */
  double max_segment_duration;
  struct hls_waiter *waiters;
  struct hls_blob *playlist; /* rendered index.m3u8, NULL when stale */
  /* figures */
  uint64_t parts_in, parts_dropped, segments_done, bytes_in;
  uint64_t segments_cut; /* closed without a keyframe: too long (hls_store.c) */
};

/* What the playlist renderer and the HTTP side read of a stream. */
struct hls_stream_view {
  const char *channel;
  bool live;
  double part_target;    /* seconds */
  double segment_target; /* configured segment duration */
  double block_timeout;
  struct hls_rendition **renditions; /* current layout order */
  int rendition_count;
};

#endif
