/* hls_packager: fragmented MP4 into memory for LL-HLS (see hls_packager.h).
 *
 * libavformat's mp4 muxer with frag_custom writes nothing until we ask for a
 * fragment: av_write_frame(ctx, NULL) + avio_flush() emits exactly one
 * moof+mdat, which is one part. Its AVIOContext writes into a growable
 * buffer that becomes the part's blob. default_base_moof makes every
 * fragment decodable after the init alone; one muxer per timeline keeps
 * tfdt continuous (checked against libavformat 59, Debian 12's FFmpeg 5.1). */
#include "transcoder/hls/hls_packager.h"

#include <stdlib.h>
#include <string.h>

#include <libavformat/avformat.h>
#include <libavutil/opt.h>

#include "core/log.h"

#define AVIO_BUF_SIZE 65536

struct hls_packager {
  struct hls_packager_params p;
  struct hls_packager_sink sink;
  AVCodecParameters *par;
  AVRational tb; /* of the input packets */
  bool is_video;
  int64_t part_us, seg_us;

  AVFormatContext *fmt;
  bool header_done;
  bool failed; /* the muxer broke: ignore input */
  uint8_t *out;
  size_t out_len, out_cap;
  int out_err;

  AVPacket *held; /* one packet of latency: its duration is the next dts minus its own */
  int64_t held_arrival;
  int64_t last_delta; /* dts units, for the last packet at flush */
  int64_t last_dts;   /* last muxed, to keep dts strictly increasing */
  bool have_last_dts;

  bool started;      /* a segment is open */
  int64_t seg_index; /* boundary index of the open segment */
  bool part_open, part_independent, part_segment_start;
  int64_t part_first_us, part_end_us, part_pdt;
  int part_frames;
  char codecs[64];
};

static int64_t floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t to_us(const struct hls_packager *pk, int64_t ts) {
  return av_rescale_q(ts, pk->tb, (AVRational){1, 1000000});
}

static int out_write(void *opaque, uint8_t *data, int len) {
  struct hls_packager *pk = opaque;
  if (len <= 0)
    return 0;
  if (pk->out_len + (size_t)len > pk->out_cap) {
    size_t cap = pk->out_cap ? pk->out_cap : 65536;
    while (cap < pk->out_len + (size_t)len)
      cap *= 2;
    uint8_t *n = realloc(pk->out, cap);
    if (!n) {
      pk->out_err = AVERROR(ENOMEM);
      return AVERROR(ENOMEM);
    }
    pk->out = n;
    pk->out_cap = cap;
  }
  memcpy(pk->out + pk->out_len, data, (size_t)len);
  pk->out_len += (size_t)len;
  return len;
}

/* The bytes written since the last take, as a blob (NULL if none). */
static struct hls_blob *out_take(struct hls_packager *pk) {
  avio_flush(pk->fmt->pb);
  if (pk->out_err || pk->out_len == 0) {
    pk->out_len = 0;
    pk->out_err = 0;
    return NULL;
  }
  struct hls_blob *b = hls_blob_copy(pk->out, pk->out_len);
  pk->out_len = 0;
  return b;
}

static const char hex[] = "0123456789abcdef";

static void avc_string(const uint8_t *sps, char *out, size_t size) {
  /* profile_idc, constraint flags, level_idc follow the NAL header byte */
  char s[16] = "avc1.";
  for (int i = 0; i < 3; i++) {
    s[5 + 2 * i] = hex[sps[i] >> 4];
    s[6 + 2 * i] = hex[sps[i] & 15];
  }
  s[11] = 0;
  snprintf(out, size, "%s", s);
}

/* The general part of an HEVC profile_tier_level() (12 bytes: space, tier
 * and profile_idc; 32 compatibility flags; 48 constraint flags; level_idc),
 * as in hvcC bytes 1..12, to "hvc1.P.C.Ll.B..." (ISO/IEC 14496-15 E.3):
 * profile space as A/B/C before the decimal profile_idc, the compatibility
 * flags bit-reversed in hex, tier L/H with the decimal level_idc, then each
 * constraint byte in hex with the trailing zero bytes left out. Hex digits
 * are upper case, as GPAC and Apple's tools write them. */
static void hevc_ptl_string(const uint8_t *ptl, char *out, size_t size) {
  static const char *const space[] = {"", "A", "B", "C"};
  uint32_t flags = (uint32_t)ptl[1] << 24 | (uint32_t)ptl[2] << 16 | (uint32_t)ptl[3] << 8 | ptl[4];
  uint32_t reversed = 0;
  for (int i = 0; i < 32; i++)
    reversed |= ((flags >> i) & 1u) << (31 - i);
  int len = snprintf(out, size, "hvc1.%s%d.%X.%c%d", space[ptl[0] >> 6], ptl[0] & 0x1f, reversed,
                     (ptl[0] & 0x20) ? 'H' : 'L', ptl[11]);
  int last = 5;
  while (last >= 0 && ptl[5 + last] == 0)
    last--;
  for (int i = 0; i <= last && len > 0 && (size_t)len < size; i++)
    len += snprintf(out + len, size - (size_t)len, ".%X", ptl[5 + i]);
}

/* Annex B parameter set at nal (after the start code, n bytes up to the
 * next one): its profile_tier_level, with the emulation prevention bytes
 * (00 00 03) taken out: runs of zero constraint bytes carry them.
 * The general PTL follows 1 byte of SPS fields or 4 bytes of VPS fields
 * after the 2-byte NAL header. */
static bool hevc_annexb_ptl(const uint8_t *nal, size_t n, uint8_t ptl[12]) {
  int type = (nal[0] >> 1) & 0x3f;
  size_t skip = type == 33 ? 1 : 4; /* SPS : VPS */
  uint8_t rbsp[16];
  size_t got = 0, zeros = 0;
  for (size_t i = 2; i < n && got < skip + 12; i++) {
    if (zeros >= 2 && nal[i] == 3) {
      zeros = 0;
      continue;
    }
    zeros = nal[i] == 0 ? zeros + 1 : 0;
    rbsp[got++] = nal[i];
  }
  if (got < skip + 12)
    return false;
  memcpy(ptl, rbsp + skip, 12);
  return true;
}

/* From hvcC (configurationVersion 1) or Annex B VPS/SPS (the SPS
 * preferred: it is what the decoder is configured from). */
static bool hevc_string(const uint8_t *x, size_t n, char *out, size_t size) {
  if (n >= 23 && x[0] == 1) {
    hevc_ptl_string(x + 1, out, size);
    return true;
  }
  uint8_t ptl[12];
  bool have = false;
  for (size_t i = 0; i + 3 < n; i++) {
    if (x[i] != 0 || x[i + 1] != 0 || x[i + 2] != 1)
      continue;
    const uint8_t *nal = x + i + 3;
    size_t len = n - (i + 3);
    for (size_t j = 0; j + 2 < len; j++) /* up to the next start code */
      if (nal[j] == 0 && nal[j + 1] == 0 && nal[j + 2] == 1) {
        len = j;
        break;
      }
    int type = (nal[0] >> 1) & 0x3f;
    if ((type == 33 || (type == 32 && !have)) && hevc_annexb_ptl(nal, len, ptl)) {
      have = true;
      if (type == 33)
        break;
    }
    i += 2;
  }
  if (have)
    hevc_ptl_string(ptl, out, size);
  return have;
}

void hls_codec_string(const AVCodecParameters *par, char *out, size_t size) {
  const uint8_t *x = par->extradata;
  int n = par->extradata_size;
  out[0] = 0;
  if (par->codec_id == AV_CODEC_ID_H264) {
    if (n >= 4 && x[0] == 1) {
      avc_string(x + 1, out, size);
      return;
    }
    for (int i = 0; i + 4 < n; i++) { /* Annex B: find the SPS */
      if (x[i] == 0 && x[i + 1] == 0 && x[i + 2] == 1 && (x[i + 3] & 0x1f) == 7 && i + 7 <= n) {
        avc_string(x + i + 4, out, size);
        return;
      }
    }
    snprintf(out, size, "avc1.640028");
  } else if (par->codec_id == AV_CODEC_ID_AAC) {
    int aot = n >= 1 ? x[0] >> 3 : 2;
    if (aot == 31 && n >= 2)
      aot = 32 + (((x[0] & 7) << 3) | (x[1] >> 5));
    snprintf(out, size, "mp4a.40.%d", aot ? aot : 2);
  } else if (par->codec_id == AV_CODEC_ID_HEVC) {
    if (!hevc_string(x, n > 0 ? (size_t)n : 0, out, size)) {
      /* no profile_tier_level to read: Main at the level the demuxer saw */
      int profile = par->profile > 0 && par->profile < 32 ? par->profile : 1;
      int level = par->level > 0 ? par->level : 120;
      snprintf(out, size, "hvc1.%d.%X.L%d.B0", profile, profile == 1 ? 6u : 1u << profile, level);
      log_warn("hls", "HEVC profile/level not found in extradata (size=%d), CODECS=%s", n, out);
    }
  } else if (par->codec_id == AV_CODEC_ID_MP3) {
    snprintf(out, size, "mp4a.40.34");
  }
}

static int open_muxer(struct hls_packager *pk, const AVPacket *first) {
  size_t side_len = 0;
  const uint8_t *side = av_packet_get_side_data(first, AV_PKT_DATA_NEW_EXTRADATA, &side_len);
  if (side && side_len > 0 && pk->par->extradata_size == 0) {
    pk->par->extradata = av_mallocz(side_len + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!pk->par->extradata)
      return AVERROR(ENOMEM);
    memcpy(pk->par->extradata, side, side_len);
    pk->par->extradata_size = (int)side_len;
  }
  int err = avformat_alloc_output_context2(&pk->fmt, NULL, "mp4", NULL);
  if (err < 0)
    return err;
  AVStream *st = avformat_new_stream(pk->fmt, NULL);
  if (!st)
    return AVERROR(ENOMEM);
  if ((err = avcodec_parameters_copy(st->codecpar, pk->par)) < 0)
    return err;
  /* The muxer's default for HEVC is 'hev1', which Safari does not play;
   * 'hvc1' is what the playlist's CODECS names. */
  st->codecpar->codec_tag = pk->par->codec_id == AV_CODEC_ID_HEVC ? MKTAG('h', 'v', 'c', '1') : 0;
  st->time_base = pk->tb;
  uint8_t *iobuf = av_malloc(AVIO_BUF_SIZE);
  if (!iobuf)
    return AVERROR(ENOMEM);
  pk->fmt->pb = avio_alloc_context(iobuf, AVIO_BUF_SIZE, 1, pk, NULL, out_write, NULL);
  if (!pk->fmt->pb) {
    av_free(iobuf);
    return AVERROR(ENOMEM);
  }
  pk->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
  AVDictionary *opts = NULL;
  av_dict_set(&opts, "movflags", "frag_custom+empty_moov+default_base_moof+omit_tfhd_offset", 0);
  if (pk->is_video)
    av_dict_set(&opts, "video_track_timescale", "90000", 0);
  err = avformat_write_header(pk->fmt, &opts);
  av_dict_free(&opts);
  if (err < 0)
    return err;
  pk->header_done = true;
  hls_codec_string(pk->par, pk->codecs, sizeof pk->codecs);
  struct hls_blob *init = out_take(pk);
  if (!init)
    return AVERROR(ENOMEM);
  pk->sink.on_init(pk->sink.opaque, pk->p.timeline, pk->p.rendition, init, pk->codecs);
  return 0;
}

static int close_part(struct hls_packager *pk) {
  if (!pk->part_open)
    return 0;
  pk->part_open = false;
  int err = av_write_frame(pk->fmt, NULL);
  struct hls_blob *b = out_take(pk);
  if (err < 0 || !b) {
    hls_blob_unref(b);
    log_warn("hls", "part lost rendition=%d err=%d", pk->p.rendition, err);
    return err < 0 ? err : AVERROR(ENOMEM);
  }
  struct hls_part_info info = {
      .timeline = pk->p.timeline,
      .rendition = pk->p.rendition,
      .segment_start = pk->part_segment_start,
      .independent = pk->part_independent,
      .start_us = pk->part_first_us,
      .duration_us = pk->part_end_us - pk->part_first_us,
      .pdt_ms = pk->part_pdt,
      .frames = pk->part_frames,
  };
  pk->sink.on_part(pk->sink.opaque, &info, b);
  return 0;
}

/* Mux the held packet, cutting a part or a segment before it if due. */
static int emit(struct hls_packager *pk, AVPacket *pkt, int64_t arrival) {
  bool key = !pk->is_video || (pkt->flags & AV_PKT_FLAG_KEY);
  int64_t pts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
  int64_t dts_us = to_us(pk, pkt->dts);
  int64_t end_us = to_us(pk, pkt->dts + pkt->duration);
  /* negative times (an encoder's priming samples) belong to the first
   * boundary, so every rendition of a timeline counts segments from 0 */
  int64_t index = floordiv(to_us(pk, pts), pk->seg_us);
  if (index < 0)
    index = 0;
  bool new_segment = false;
  if (!pk->started) {
    if (!key)
      return 0; /* a segment must begin with a keyframe */
    new_segment = true;
  } else if (key && index > pk->seg_index) {
    new_segment = true;
  }
  if (!pk->header_done) {
    int err = open_muxer(pk, pkt);
    if (err < 0)
      return err;
  }
  if (new_segment || (pk->part_open && end_us - pk->part_first_us > pk->part_us)) {
    int err = close_part(pk);
    if (err < 0 && err != AVERROR(ENOMEM))
      log_debug("hls", "close_part err=%d", err);
  }
  if (new_segment) {
    pk->started = true;
    pk->seg_index = index;
  }
  if (!pk->part_open) {
    pk->part_open = true;
    pk->part_segment_start = new_segment;
    pk->part_independent = key;
    pk->part_first_us = dts_us;
    pk->part_pdt = arrival;
    pk->part_frames = 0;
  }
  pk->part_end_us = end_us;
  pk->part_frames++;
  pk->last_dts = pkt->dts;
  pk->have_last_dts = true;
  pkt->stream_index = 0;
  av_packet_rescale_ts(pkt, pk->tb, pk->fmt->streams[0]->time_base);
  return av_write_frame(pk->fmt, pkt);
}

int hls_packager_write(struct hls_packager *pk, const AVPacket *in, int64_t arrival_ms) {
  if (pk->failed)
    return AVERROR(EINVAL);
  if (in->dts == AV_NOPTS_VALUE && in->pts == AV_NOPTS_VALUE)
    return AVERROR(EINVAL);
  int64_t dts = in->dts != AV_NOPTS_VALUE ? in->dts : in->pts;
  if (pk->held) {
    if (dts <= pk->held->dts) {
      log_debug("hls", "non-increasing dts dropped rendition=%d dts=%lld", pk->p.rendition, (long long)dts);
      return 0;
    }
    pk->held->duration = dts - pk->held->dts;
    pk->last_delta = pk->held->duration;
    int err = emit(pk, pk->held, pk->held_arrival);
    av_packet_unref(pk->held);
    if (err < 0) {
      log_warn("hls", "mux failed rendition=%d err=%d", pk->p.rendition, err);
      if (!pk->header_done)
        pk->failed = true;
    }
  } else if (!(pk->held = av_packet_alloc())) {
    return AVERROR(ENOMEM);
  }
  int err = av_packet_ref(pk->held, in);
  if (err < 0)
    return err;
  pk->held->dts = dts;
  pk->held_arrival = arrival_ms;
  return 0;
}

int hls_packager_flush(struct hls_packager *pk) {
  int err = 0;
  if (pk->held && pk->held->data && !pk->failed) {
    if (pk->held->duration <= 0)
      pk->held->duration = pk->last_delta > 0 ? pk->last_delta : 1;
    err = emit(pk, pk->held, pk->held_arrival);
    av_packet_unref(pk->held);
  }
  if (pk->header_done) {
    int e = close_part(pk);
    if (!err)
      err = e;
  }
  return err;
}

struct hls_packager *hls_packager_new(const struct hls_packager_params *params, const struct hls_packager_sink *sink,
                                      const AVCodecParameters *par, AVRational time_base) {
  if (par->codec_type != AVMEDIA_TYPE_VIDEO && par->codec_type != AVMEDIA_TYPE_AUDIO)
    return NULL;
  struct hls_packager *pk = calloc(1, sizeof *pk);
  if (!pk)
    return NULL;
  pk->p = *params;
  pk->sink = *sink;
  pk->tb = time_base;
  pk->is_video = par->codec_type == AVMEDIA_TYPE_VIDEO;
  pk->part_us = (int64_t)(params->part_duration * 1e6 + 0.5);
  pk->seg_us = (int64_t)(params->segment_duration * 1e6 + 0.5);
  if (pk->part_us <= 0 || pk->seg_us <= 0 || !(pk->par = avcodec_parameters_alloc()) ||
      avcodec_parameters_copy(pk->par, par) < 0) {
    hls_packager_free(pk);
    return NULL;
  }
  return pk;
}

void hls_packager_free(struct hls_packager *pk) {
  if (!pk)
    return;
  if (pk->fmt) {
    if (pk->fmt->pb) {
      av_freep(&pk->fmt->pb->buffer);
      avio_context_free(&pk->fmt->pb);
    }
    avformat_free_context(pk->fmt);
  }
  av_packet_free(&pk->held);
  avcodec_parameters_free(&pk->par);
  free(pk->out);
  free(pk);
}
