/* hls_window: one rendition's window of segments and parts (hls_window_int.h).
 *
 * A segment is open while its parts arrive; it is closed when the next one
 * starts (or the feed ends), and its parts are then concatenated once into
 * one buffer, so a segment request is one refcounted body, not one copy per
 * viewer. Part buffers are kept only while the playlist lists them (the
 * last three target durations) plus a little slack for requests in flight. */
#include "transcoder/hls/hls_window_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transcoder/hls/hls_packager.h"

#define PART_SLACK_SEGMENTS 2

struct hls_rendition *hls__rendition_new(struct hls_stream *st, const struct hls_rendition_desc *d) {
  struct hls_rendition *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->stream = st;
  r->desc = *d;
  return r;
}

static void segment_free(struct hls_segment *s) {
  for (int i = 0; i < s->part_count; i++)
    hls_blob_unref(s->parts[i].data);
  free(s->parts);
  hls_blob_unref(s->data);
  free(s);
}

void hls__rendition_free(struct hls_rendition *r) {
  if (!r)
    return;
  for (int i = 0; i < r->seg_count; i++)
    segment_free(r->segs[i]);
  free(r->segs);
  for (int i = 0; i < r->init_count; i++)
    hls_blob_unref(r->inits[i].data);
  hls_blob_unref(r->playlist);
  free(r);
}

void hls__rendition_set_init(struct hls_rendition *r, uint32_t timeline, struct hls_blob *init, const char *codecs) {
  snprintf(r->codecs, sizeof r->codecs, "%s", codecs);
  if (r->init_count > 0 && r->inits[0].timeline == timeline) {
    hls_blob_unref(r->inits[0].data);
    r->inits[0].data = init;
    return;
  }
  int n = (int)(sizeof r->inits / sizeof r->inits[0]);
  if (r->init_count == n) /* the oldest goes; trim keeps this rare */
    hls_blob_unref(r->inits[--r->init_count].data);
  memmove(&r->inits[1], &r->inits[0], (size_t)r->init_count * sizeof r->inits[0]);
  r->inits[0] = (struct hls_init){.timeline = timeline, .data = init};
  r->init_count++;
}

struct hls_segment *hls__rendition_open(const struct hls_rendition *r) {
  if (r->seg_count == 0 || r->segs[r->seg_count - 1]->complete)
    return NULL;
  return r->segs[r->seg_count - 1];
}

struct hls_segment *hls__rendition_last_complete(const struct hls_rendition *r) {
  for (int i = r->seg_count - 1; i >= 0; i--)
    if (r->segs[i]->complete)
      return r->segs[i];
  return NULL;
}

struct hls_segment *hls__rendition_segment(const struct hls_rendition *r, uint64_t msn) {
  if (r->seg_count == 0 || msn < r->segs[0]->msn)
    return NULL;
  uint64_t i = msn - r->segs[0]->msn;
  return i < (uint64_t)r->seg_count ? r->segs[i] : NULL;
}

struct hls_blob *hls__rendition_init(const struct hls_rendition *r, uint32_t timeline) {
  for (int i = 0; i < r->init_count; i++)
    if (r->inits[i].timeline == timeline)
      return r->inits[i].data;
  return NULL;
}

struct hls_blob *hls__rendition_part(const struct hls_rendition *r, uint32_t timeline, uint64_t seq) {
  for (int i = r->seg_count - 1; i >= 0; i--) {
    const struct hls_segment *s = r->segs[i];
    if (s->timeline != timeline || s->part_count == 0)
      continue;
    if (seq >= s->parts[0].seq && seq <= s->parts[s->part_count - 1].seq)
      return s->parts[seq - s->parts[0].seq].data;
    if (seq > s->parts[s->part_count - 1].seq)
      return NULL;
  }
  return NULL;
}

bool hls__rendition_last(const struct hls_rendition *r, uint64_t *msn, int *part) {
  if (r->seg_count == 0)
    return false;
  const struct hls_segment *s = r->segs[r->seg_count - 1];
  *msn = s->msn;
  *part = s->part_count - 1;
  return true;
}

bool hls__rendition_has(const struct hls_rendition *r, uint64_t msn, int part) {
  if (r->seg_count == 0)
    return false;
  const struct hls_segment *last = r->segs[r->seg_count - 1];
  if (part < 0) {
    const struct hls_segment *c = hls__rendition_last_complete(r);
    return c && c->msn >= msn;
  }
  if (last->msn != msn)
    return last->msn > msn;
  return last->part_count > part;
}

int hls__rendition_target_duration(const struct hls_rendition *r, double segment_target) {
  double d = segment_target > r->max_segment_duration ? segment_target : r->max_segment_duration;
  int t = (int)lround(d);
  return t < 1 ? 1 : t;
}

int hls__rendition_part_segments(const struct hls_rendition *r, double segment_target) {
  int td = hls__rendition_target_duration(r, segment_target);
  double acc = 0;
  int n = 0;
  for (int i = r->seg_count - 1; i >= 0; i--) {
    n++;
    if (r->segs[i]->complete)
      acc += r->segs[i]->duration;
    if (acc >= 3.0 * td)
      break;
  }
  return n;
}

struct hls_segment *hls__rendition_close(struct hls_rendition *r) {
  struct hls_segment *s = hls__rendition_open(r);
  if (!s)
    return NULL;
  s->complete = true;
  struct hls_blob *whole = hls_blob_new(s->bytes);
  size_t off = 0;
  for (int i = 0; whole && i < s->part_count; i++) {
    if (!s->parts[i].data) { /* cannot happen while open; be safe */
      hls_blob_unref(whole);
      whole = NULL;
      break;
    }
    memcpy(whole->data + off, s->parts[i].data->data, s->parts[i].data->len);
    off += s->parts[i].data->len;
  }
  s->data = whole;
  if (s->duration > r->max_segment_duration)
    r->max_segment_duration = s->duration;
  r->segments_done++;
  hls_blob_unref(r->playlist);
  r->playlist = NULL;
  return s;
}

struct hls_segment *hls__rendition_open_segment(struct hls_rendition *r, uint64_t msn, uint32_t timeline,
                                                int64_t pdt_ms) {
  hls__rendition_close(r);
  if (r->seg_count == r->seg_cap) {
    int cap = r->seg_cap ? r->seg_cap * 2 : 16;
    struct hls_segment **n = realloc(r->segs, (size_t)cap * sizeof *n);
    if (!n)
      return NULL;
    r->segs = n;
    r->seg_cap = cap;
  }
  struct hls_segment *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->msn = msn;
  s->timeline = timeline;
  s->pdt_ms = pdt_ms;
  if (r->seg_count > 0 && r->segs[r->seg_count - 1]->timeline != timeline) {
    r->disc++;
    s->discontinuity = true;
  }
  s->disc = r->disc;
  r->segs[r->seg_count++] = s;
  hls_blob_unref(r->playlist);
  r->playlist = NULL;
  return s;
}

int hls__rendition_add_part(struct hls_rendition *r, const struct hls_part_info *info, struct hls_blob *data) {
  struct hls_segment *s = hls__rendition_open(r);
  if (!s) {
    hls_blob_unref(data);
    return -ENOENT;
  }
  if (s->part_count == s->part_cap) {
    int cap = s->part_cap ? s->part_cap * 2 : 8;
    struct hls_part *n = realloc(s->parts, (size_t)cap * sizeof *n);
    if (!n) {
      hls_blob_unref(data);
      return -ENOMEM;
    }
    s->parts = n;
    s->part_cap = cap;
  }
  s->parts[s->part_count++] = (struct hls_part){
      .seq = r->next_part_seq++,
      .duration = (double)info->duration_us / 1e6,
      .independent = info->independent,
      .data = data,
  };
  s->duration += (double)info->duration_us / 1e6;
  s->bytes += data->len;
  r->parts_in++;
  r->bytes_in += data->len;
  hls_blob_unref(r->playlist);
  r->playlist = NULL;
  return 0;
}

void hls__rendition_trim(struct hls_rendition *r, int window, double segment_target) {
  int complete = r->seg_count - (hls__rendition_open(r) ? 1 : 0);
  int drop = complete > window ? complete - window : 0;
  for (int i = 0; i < drop; i++)
    segment_free(r->segs[i]);
  if (drop > 0) {
    memmove(r->segs, r->segs + drop, (size_t)(r->seg_count - drop) * sizeof *r->segs);
    r->seg_count -= drop;
    hls_blob_unref(r->playlist);
    r->playlist = NULL;
  }
  int keep_parts = hls__rendition_part_segments(r, segment_target) + PART_SLACK_SEGMENTS;
  for (int i = 0; i < r->seg_count - keep_parts; i++) {
    struct hls_segment *s = r->segs[i];
    for (int j = 0; j < s->part_count; j++) {
      hls_blob_unref(s->parts[j].data);
      s->parts[j].data = NULL;
    }
  }
  for (int i = r->init_count - 1; i >= 1; i--) { /* inits[0] is current */
    bool used = false;
    for (int j = 0; j < r->seg_count && !used; j++)
      used = r->segs[j]->timeline == r->inits[i].timeline;
    if (!used) {
      hls_blob_unref(r->inits[i].data);
      memmove(&r->inits[i], &r->inits[i + 1], (size_t)(r->init_count - i - 1) * sizeof r->inits[0]);
      r->init_count--;
    }
  }
}
