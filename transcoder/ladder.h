/* ladder: which renditions a channel gets, and at what size.
 *
 * Pure functions, no threads, no libav: given the source's picture size and
 * the transcoder config, decide the renditions (the source passed through
 * plus the configured rungs below the source's height), their even output
 * sizes with the source's aspect ratio, and which picture each rung is
 * scaled from (the decoded source, or the nearest larger rung when that is
 * cheaper). Also the keyframe clock every rung shares, so that segments
 * line up across renditions. The pipeline (pipeline.c) applies it. */
#ifndef GALARELAY_LADDER_H
#define GALARELAY_LADDER_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

#define LADDER_MAX (CONFIG_MAX_RUNGS + 1) /* the rungs plus the source */

struct ladder_rendition {
  char name[32];
  int width, height;
  int video_bitrate; /* kbit/s; 0 for the source (unknown) */
  int max_rate;      /* kbit/s */
  char preset[32];
  char profile[32];
  int priority;     /* lower sheds load first; the source is never shed */
  bool passthrough; /* the source, not re-encoded */
  int scale_from;   /* index in ladder.r of the picture scaled from; -1 = decoded source */
};

/* Renditions, largest first; the source (when present) is r[0]. */
struct ladder {
  struct ladder_rendition r[LADDER_MAX];
  int count;
  int src_width, src_height;
};

/* Build the ladder for a src_w x src_h source from the transcoder section.
 * Rungs whose height is at or above the source's are left out; the source
 * rung is added when cfg->source_passthrough is set (the pipeline may still
 * leave it out later, see ladder_source_fits). Returns the number of
 * renditions, or -EINVAL when the source size is not usable. */
int ladder_build(const struct config_transcoder *cfg, int src_w, int src_h, struct ladder *out);

/* Output width for a rung of height h from a src_w x src_h source: the
 * source's aspect ratio, rounded to the nearest even number (>= 2). */
int ladder_scaled_width(int src_w, int src_h, int h);

/* Height rounded to even (up), at least 2. */
int ladder_even(int v);

/* Whether the source can be passed through: its longest keyframe interval
 * (ms) fits one segment (a few ms of slack for millisecond timestamps). */
bool ladder_source_fits(int64_t keyint_ms, double segment_duration);

/* The keyframe clock: the segment index of a frame at pts_ms on a timeline
 * that started at t0_ms, i.e. floor((pts - t0) / segment). A frame gets a
 * forced keyframe when its index is greater than the previous frame's. */
int64_t ladder_segment_index(int64_t pts_ms, int64_t t0_ms, double segment_duration);

/* Remove rendition i (e.g. the source when its GOP is too long), keeping
 * scale_from indexes right. */
void ladder_remove(struct ladder *l, int i);

#endif
