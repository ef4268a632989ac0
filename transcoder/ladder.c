/* ladder: rung selection and output sizes (see ladder.h). Kept free of
 * libav and threads so that it is tested on its own. */
#include "transcoder/ladder.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

int ladder_even(int v) {
  if (v < 2)
    return 2;
  return (v + 1) & ~1;
}

int ladder_scaled_width(int src_w, int src_h, int h) {
  if (src_w <= 0 || src_h <= 0 || h <= 0)
    return 0;
  double w = (double)src_w * (double)h / (double)src_h;
  long even = 2 * lround(w / 2.0);
  return even < 2 ? 2 : (int)even;
}

/* Scaling cost grows with the pixels read: a rung is scaled from the
 * nearest larger rung when that picture is smaller than the source (it
 * always is, since every rung is below the source's height, but the rule
 * is written out so that a ladder with equal sizes stays correct). */
static int pick_scale_from(const struct ladder *l, int i) {
  const struct ladder_rendition *r = &l->r[i];
  long src_area = (long)l->src_width * l->src_height;
  for (int j = i - 1; j >= 0; j--) {
    const struct ladder_rendition *p = &l->r[j];
    if (p->passthrough)
      continue;
    if (p->height > r->height && p->width >= r->width && (long)p->width * p->height < src_area)
      return j;
  }
  return -1;
}

int ladder_build(const struct config_transcoder *cfg, int src_w, int src_h, struct ladder *out) {
  memset(out, 0, sizeof(*out));
  if (src_w <= 0 || src_h <= 0 || src_w > 16384 || src_h > 16384)
    return -EINVAL;
  out->src_width = src_w;
  out->src_height = src_h;

  if (cfg->source_passthrough) {
    struct ladder_rendition *s = &out->r[out->count++];
    snprintf(s->name, sizeof(s->name), "source");
    s->width = src_w;
    s->height = src_h;
    s->passthrough = true;
    s->scale_from = -1;
    s->priority = 1 << 30;
  }

  /* Rungs, largest first; insertion sort on height (stable for equal). */
  int first = out->count;
  for (int i = 0; i < cfg->rung_count && i < CONFIG_MAX_RUNGS; i++) {
    const struct config_rung *c = &cfg->rungs[i];
    if (c->height <= 0 || c->height >= src_h)
      continue;
    struct ladder_rendition r = {0};
    snprintf(r.name, sizeof(r.name), "%s", c->name);
    r.height = ladder_even(c->height);
    if (r.height > src_h) /* an odd source just above an odd rung */
      r.height = src_h & ~1;
    r.width = ladder_scaled_width(src_w, src_h, r.height);
    r.video_bitrate = c->video_bitrate;
    r.max_rate = c->max_rate > 0 ? c->max_rate : c->video_bitrate;
    snprintf(r.preset, sizeof(r.preset), "%s", c->preset[0] ? c->preset : "veryfast");
    snprintf(r.profile, sizeof(r.profile), "%s", c->profile[0] ? c->profile : "main");
    r.priority = c->priority;
    int at = out->count;
    while (at > first && out->r[at - 1].height < r.height) {
      out->r[at] = out->r[at - 1];
      at--;
    }
    out->r[at] = r;
    out->count++;
  }
  for (int i = first; i < out->count; i++)
    out->r[i].scale_from = pick_scale_from(out, i);
  return out->count;
}

bool ladder_source_fits(int64_t keyint_ms, double segment_duration) {
  if (keyint_ms <= 0)
    return false;
  return keyint_ms <= (int64_t)llround(segment_duration * 1000.0) + 50;
}

int64_t ladder_segment_index(int64_t pts_ms, int64_t t0_ms, double segment_duration) {
  int64_t seg = (int64_t)llround(segment_duration * 1000.0);
  if (seg <= 0)
    seg = 1;
  int64_t d = pts_ms - t0_ms;
  if (d >= 0)
    return d / seg;
  return -((-d + seg - 1) / seg); /* floor for frames before the start */
}

void ladder_remove(struct ladder *l, int i) {
  if (i < 0 || i >= l->count)
    return;
  int parent = l->r[i].scale_from; /* i's children now scale from i's parent */
  if (parent > i)
    parent--;
  for (int j = i; j + 1 < l->count; j++)
    l->r[j] = l->r[j + 1];
  l->count--;
  for (int j = 0; j < l->count; j++) {
    if (l->r[j].scale_from == i)
      l->r[j].scale_from = parent;
    else if (l->r[j].scale_from > i)
      l->r[j].scale_from--;
  }
}
