/* hls_packager: one per rendition, on a transcoder worker thread. Encoded
 * packets in, fragmented MP4 out: an init segment (ftyp+moov) once, then one
 * fragment (moof+mdat) per LL-HLS part, each handed to a sink as a
 * refcounted blob.
 *
 * It owns the cut decisions, deterministic on (timestamps, keyframe flag)
 * so that every rendition cuts at the same points:
 *  - a new segment begins at the first keyframe (audio: any packet) whose
 *    pts lies in a later multiple of segment_duration than the current
 *    segment's first pts (boundaries are absolute: pts 0, 2 s, 4 s ... in
 *    seconds of the packet time base; negative times count as the first
 *    boundary). The pipeline must therefore force
 *    keyframes at every multiple of segment_duration on every rung (for
 *    the 2 s default: pts = 0, 2, 4 ... seconds) for segments to align.
 *  - a new part begins before a packet that would make the current part
 *    longer than part_duration (so every part is <= PART-TARGET).
 * One muxer lives for the whole timeline: tfdt (baseMediaDecodeTime) is
 * continuous across parts and segments. Packets are held back by one (a
 * packet is muxed when the next one arrives, its duration = next.dts -
 * its dts): one frame of latency; hls_packager_flush() pushes the last one
 * out when the feed ends. Video packets before the first keyframe are
 * dropped.
 *
 * Threading: a packager is used by one thread at a time (its worker); the
 * sink is called on that thread. */
#ifndef GALARELAY_HLS_PACKAGER_H
#define GALARELAY_HLS_PACKAGER_H

#include <stdbool.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>

#include "transcoder/hls/hls_blob.h"

/* What one finished part is. */
struct hls_part_info {
  uint32_t timeline;   /* from hls_stream_begin() */
  int rendition;       /* index in the timeline's layout */
  bool segment_start;  /* first part of a new segment (begins with a keyframe) */
  bool independent;    /* begins with a keyframe (audio: always) */
  int64_t start_us;    /* first sample's dts in microseconds of the input timeline */
  int64_t duration_us; /* sum of the sample durations */
  int64_t pdt_ms;      /* wall clock (ms since epoch) at which the first packet was received */
  int frames;
};

struct hls_packager_sink {
  /* init: ftyp+moov; codecs: RFC 6381 string ("avc1.64001f", "mp4a.40.2").
   * The callee takes over the blob's reference. */
  void (*on_init)(void *opaque, uint32_t timeline, int rendition, struct hls_blob *init, const char *codecs);
  /* One part (moof+mdat); the callee takes over the blob's reference. */
  void (*on_part)(void *opaque, const struct hls_part_info *info, struct hls_blob *part);
  void *opaque;
};

struct hls_packager_params {
  uint32_t timeline;
  int rendition;
  double part_duration;    /* seconds */
  double segment_duration; /* seconds */
};

struct hls_packager;

/* A packager for one rendition: output goes to sink (the store's queue in
 * the daemon, hls_stream_packager() in hls_store.h; a recorder in tests).
 * params->timeline is the value hls_stream_begin() returned for the layout
 * that has this rendition at params->rendition. par: codec parameters
 * with extradata (avcC or Annex B SPS/PPS for H.264; hvcC or Annex B
 * VPS/SPS/PPS for HEVC, muxed as 'hvc1'; AudioSpecificConfig for AAC), or
 * the extradata may come with the first packet as
 * AV_PKT_DATA_NEW_EXTRADATA side data. time_base: that of the packets.
 * Any thread. NULL on error. */
struct hls_packager *hls_packager_new(const struct hls_packager_params *params, const struct hls_packager_sink *sink,
                                      const AVCodecParameters *par, AVRational time_base);

/* Feed one packet (not taken: the packager keeps its own reference).
 * pts/dts in the time_base given at creation, dts non-decreasing.
 * arrival_ms: wall clock when the source frame was received (the
 * program-date-time of the segment it starts). Returns 0 or an AVERROR
 * (logged; the packager stays usable). */
int hls_packager_write(struct hls_packager *pk, const AVPacket *pkt, int64_t arrival_ms);

/* End of feed: mux the held-back packet and emit the last part. */
int hls_packager_flush(struct hls_packager *pk);

/* Frees without flushing (call hls_packager_flush first to keep the tail). */
void hls_packager_free(struct hls_packager *pk);

/* RFC 6381 codec string for par into out ("" if unknown), read from the
 * extradata: "avc1.64001f", "hvc1.1.6.L93.B0", "mp4a.40.2". HEVC without a
 * readable profile_tier_level gets Main at par->level (logged). Any thread. */
void hls_codec_string(const AVCodecParameters *par, char *out, size_t size);

#endif
