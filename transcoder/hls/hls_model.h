/* hls_model: the in-memory window of a rendition, shared by the store
 * (hls_store.c, which owns and changes it), the playlist renderer
 * (hls_playlist.c) and the HTTP side (hls_http.c). Not for other modules:
 * they use hls_store.h. Loop thread only. */
#ifndef GALARELAY_HLS_MODEL_H
#define GALARELAY_HLS_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "transcoder/hls/hls_blob.h"
#include "transcoder/hls/hls_store.h"

struct hls_part {
  uint64_t seq;       /* per timeline and rendition: URL part-TIMELINE-SEQ.m4s */
  double duration;    /* seconds */
  bool independent;
  struct hls_blob *data; /* NULL once the part left the playlist */
};

struct hls_segment {
  uint64_t msn;
  uint32_t timeline;    /* its init segment: init-TIMELINE.mp4 */
  uint64_t disc;        /* discontinuity sequence number */
  bool discontinuity;   /* EXT-X-DISCONTINUITY before it */
  bool complete;
  int64_t pdt_ms;
  double duration;      /* sum of its parts */
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
  int index;               /* in the current layout */
  char codecs[64];         /* from the init: "avc1.64001f" */
  uint32_t timeline;       /* the current timeline of this rendition */
  struct hls_init inits[4]; /* current first; older ones while segments use them */
  int init_count;
  struct hls_segment **segs; /* oldest first; the last may be open */
  int seg_count, seg_cap;
  uint64_t next_msn;       /* next segment's MSN */
  uint64_t disc;           /* current discontinuity sequence number */
  bool pending_disc;       /* the next segment starts with a discontinuity */
  uint64_t next_part_seq;  /* the hinted part */
  bool skipping;           /* a part was lost: drop until the next segment start */
  double max_segment_duration;
  struct hls_waiter *waiters;
  struct hls_blob *playlist; /* rendered index.m3u8, NULL when stale */
  /* figures */
  uint64_t parts_in, parts_dropped, segments_done, bytes_in;
  uint64_t segments_cut; /* closed without a keyframe: too long (hls_store.c) */
};

/* Store lookups for the HTTP side (loop thread). */
struct hls_stream_view {
  const char *channel;
  bool live;
  double part_target;      /* seconds */
  double segment_target;   /* configured segment duration */
  double block_timeout;
  struct hls_rendition **renditions; /* current layout order */
  int rendition_count;
};
void hls_stream_view(struct hls_stream *st, struct hls_stream_view *v);
struct hls_rendition *hls_stream_rendition(struct hls_stream *st, const char *name);

/* The open segment (last, not complete) or NULL; the last complete one. */
struct hls_segment *hls_rendition_open(const struct hls_rendition *r);
struct hls_segment *hls_rendition_last_complete(const struct hls_rendition *r);
struct hls_segment *hls_rendition_segment(const struct hls_rendition *r, uint64_t msn);
struct hls_blob *hls_rendition_init(const struct hls_rendition *r, uint32_t timeline);
/* A part still in memory, or NULL. */
struct hls_blob *hls_rendition_part(const struct hls_rendition *r, uint32_t timeline, uint64_t seq);
/* Does the playlist hold segment msn (part < 0: complete) / its part `part`,
 * or anything later? */
bool hls_rendition_has(const struct hls_rendition *r, uint64_t msn, int part);
/* The last segment with media and its last part index (-1 if none): for
 * _HLS_msn/_HLS_part limits and EXT-X-RENDITION-REPORT. false if empty. */
bool hls_rendition_last(const struct hls_rendition *r, uint64_t *msn, int *part);
/* TARGETDURATION: configured duration rounded, or longer if a segment was. */
int hls_rendition_target_duration(const struct hls_rendition *r);

/* Waiters: on a rendition, or on the stream (master playlist: woken when an
 * init arrives or a timeline begins). */
void hls_waiter_add(struct hls_rendition *r, struct hls_waiter *w);
void hls_waiter_add_stream(struct hls_stream *st, struct hls_waiter *w);
void hls_waiter_cancel(struct hls_waiter *w); /* the client left */
uv_loop_t *hls_server_loop(struct hls_server *srv);

/* The cached rendered playlist (one reference for the caller), rendered on
 * first use after a change. */
struct hls_blob *hls_rendition_playlist(struct hls_rendition *r);
struct hls_blob *hls_stream_master(struct hls_stream *st);

/* The sink hls_packager_new() uses for st (tests feed parts through it). */
struct hls_packager_sink;
void hls_stream_sink(struct hls_stream *st, struct hls_packager_sink *out);
/* The part and segment durations of timelines begun now (any thread). */
void hls_stream_params(struct hls_stream *st, double *part_duration, double *segment_duration);

/* Window operations (hls_window.c), used by the store. */
struct hls_part_info;
struct hls_rendition *hls_rendition_new(struct hls_stream *st, const struct hls_rendition_desc *d);
void hls_rendition_free(struct hls_rendition *r);
/* Takes the blob's reference. */
void hls_rendition_set_init(struct hls_rendition *r, uint32_t timeline, struct hls_blob *init,
                            const char *codecs);
/* Close the open segment (concatenating its parts); returns it or NULL. */
struct hls_segment *hls_rendition_close(struct hls_rendition *r);
/* Open segment msn (closes the open one first). */
struct hls_segment *hls_rendition_open_segment(struct hls_rendition *r, uint64_t msn,
                                               uint32_t timeline, int64_t pdt_ms);
/* Append a part to the open segment; takes the blob's reference. -1 if none is open. */
int hls_rendition_add_part(struct hls_rendition *r, const struct hls_part_info *info,
                           struct hls_blob *data);
/* Keep `window` complete segments (plus the open one); drop part buffers
 * that left the playlist; drop inits no segment uses. */
void hls_rendition_trim(struct hls_rendition *r, int window);

#endif
