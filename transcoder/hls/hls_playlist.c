/* hls_playlist: multivariant and media playlists as text (see
 * hls_playlist.h). Follows RFC 8216bis: EXT-X-PART-INF and
 * EXT-X-SERVER-CONTROL for LL-HLS, parts listed for the last three target
 * durations, a preload hint for the next part, and rendition reports so a
 * player switching rungs lands on the right part. */
#include "transcoder/hls/hls_playlist.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "transcoder/hls/hls_window_int.h"

void hls_format_pdt(int64_t ms, char *out, size_t size) {
  time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  int frac = (int)(ms - (int64_t)secs * 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec, frac);
}

static const struct hls_rendition *audio_of(const struct hls_stream_view *v) {
  for (int i = 0; i < v->rendition_count; i++)
    if (v->renditions[i]->desc.kind == HLS_AUDIO && v->renditions[i]->init_count > 0)
      return v->renditions[i];
  return NULL;
}

/* Measured peak and average bit/s over the window's complete segments. */
static void measure(const struct hls_rendition *r, int64_t *peak, int64_t *avg) {
  double bytes = 0, secs = 0, top = 0;
  for (int i = 0; i < r->seg_count; i++) {
    const struct hls_segment *s = r->segs[i];
    if (!s->complete || s->duration <= 0)
      continue;
    bytes += (double)s->bytes;
    secs += s->duration;
    double rate = (double)s->bytes * 8 / s->duration;
    if (rate > top)
      top = rate;
  }
  *peak = r->desc.bandwidth > (int64_t)top ? r->desc.bandwidth : (int64_t)top;
  int64_t a = secs > 0 ? (int64_t)(bytes * 8 / secs) : 0;
  *avg = r->desc.average_bandwidth > a ? r->desc.average_bandwidth : a;
  if (*avg > *peak)
    *peak = *avg;
  if (*peak <= 0)
    *peak = *avg = r->desc.kind == HLS_AUDIO ? 128000 : 1000000;
}

int hls_playlist_master(struct buf *out, const struct hls_stream_view *v) {
  const struct hls_rendition *audio = audio_of(v);
  int64_t a_peak = 0, a_avg = 0;
  int variants = 0;
  buf_puts(out, "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
  if (audio) {
    measure(audio, &a_peak, &a_avg);
    buf_printf(out, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"%s\",DEFAULT=YES,AUTOSELECT=YES",
               audio->desc.name);
    if (audio->desc.channels > 0)
      buf_printf(out, ",CHANNELS=\"%d\"", audio->desc.channels);
    buf_printf(out, ",URI=\"%s/index.m3u8\"\n", audio->desc.name);
  }
  for (int i = 0; i < v->rendition_count; i++) {
    const struct hls_rendition *r = v->renditions[i];
    if (r->desc.kind != HLS_VIDEO || r->init_count == 0)
      continue;
    int64_t peak, avg;
    measure(r, &peak, &avg);
    buf_printf(out, "#EXT-X-STREAM-INF:BANDWIDTH=%" PRId64 ",AVERAGE-BANDWIDTH=%" PRId64, peak + a_peak, avg + a_avg);
    if (r->desc.width > 0 && r->desc.height > 0)
      buf_printf(out, ",RESOLUTION=%dx%d", r->desc.width, r->desc.height);
    if (audio)
      buf_printf(out, ",CODECS=\"%s,%s\"", r->codecs, audio->codecs);
    else
      buf_printf(out, ",CODECS=\"%s\"", r->codecs);
    if (r->desc.fps > 0)
      buf_printf(out, ",FRAME-RATE=%.3f", r->desc.fps);
    if (audio)
      buf_puts(out, ",AUDIO=\"audio\"");
    buf_printf(out, "\n%s/index.m3u8\n", r->desc.name);
    variants++;
  }
  if (variants == 0 && audio) { /* audio-only stream: the audio rendition is the variant */
    buf_printf(out,
               "#EXT-X-STREAM-INF:BANDWIDTH=%" PRId64 ",AVERAGE-BANDWIDTH=%" PRId64 ",CODECS=\"%s\"\n%s/index.m3u8\n",
               a_peak, a_avg, audio->codecs, audio->desc.name);
    variants++;
  }
  return variants > 0 ? 0 : -ENOENT;
}

static void print_parts(struct buf *out, const struct hls_segment *s) {
  for (int j = 0; j < s->part_count; j++) {
    const struct hls_part *p = &s->parts[j];
    buf_printf(out, "#EXT-X-PART:DURATION=%.5f,URI=\"part-%" PRIu32 "-%" PRIu64 ".m4s\"%s\n", p->duration, s->timeline,
               p->seq, p->independent ? ",INDEPENDENT=YES" : "");
  }
}

int hls_playlist_media(struct buf *out, const struct hls_rendition *r, const struct hls_stream_view *v) {
  if (r->seg_count == 0)
    return -ENOENT;
  int td = hls__rendition_target_duration(r, v->segment_target);
  const struct hls_segment *first = r->segs[0];
  buf_printf(out,
             "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:%d\n"
             "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%.3f\n"
             "#EXT-X-PART-INF:PART-TARGET=%.3f\n#EXT-X-MEDIA-SEQUENCE:%" PRIu64 "\n"
             "#EXT-X-DISCONTINUITY-SEQUENCE:%" PRIu64 "\n#EXT-X-INDEPENDENT-SEGMENTS\n",
             td, 3.0 * v->part_target, v->part_target, first->msn, first->disc);
  int with_parts = r->seg_count - hls__rendition_part_segments(r, v->segment_target);
  uint32_t map = 0;
  for (int i = 0; i < r->seg_count; i++) {
    const struct hls_segment *s = r->segs[i];
    if (s->discontinuity && i > 0)
      buf_puts(out, "#EXT-X-DISCONTINUITY\n");
    if (s->timeline != map) {
      buf_printf(out, "#EXT-X-MAP:URI=\"init-%" PRIu32 ".mp4\"\n", s->timeline);
      map = s->timeline;
    }
    char pdt[40];
    hls_format_pdt(s->pdt_ms, pdt, sizeof pdt);
    buf_printf(out, "#EXT-X-PROGRAM-DATE-TIME:%s\n", pdt);
    if (i >= with_parts)
      print_parts(out, s);
    if (s->complete)
      buf_printf(out, "#EXTINF:%.5f,\nseg-%" PRIu64 ".m4s\n", s->duration, s->msn);
  }
  const struct hls_segment *last = r->segs[r->seg_count - 1];
  /* The hinted part continues the last segment's timeline; between a new
   * timeline's begin and its first part that name would never exist (the
   * next part is part-NEW-SEQ, after a discontinuity and a new map): no hint. */
  if (v->live && last->timeline == r->timeline) {
    buf_printf(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-%" PRIu32 "-%" PRIu64 ".m4s\"\n", last->timeline,
               r->next_part_seq);
  }
  for (int i = 0; i < v->rendition_count; i++) {
    const struct hls_rendition *o = v->renditions[i];
    uint64_t msn;
    int part;
    if (o == r || !hls__rendition_last(o, &msn, &part))
      continue;
    buf_printf(out, "#EXT-X-RENDITION-REPORT:URI=\"../%s/index.m3u8\",LAST-MSN=%" PRIu64, o->desc.name, msn);
    if (part >= 0)
      buf_printf(out, ",LAST-PART=%d", part);
    buf_puts(out, "\n");
  }
  return 0;
}
