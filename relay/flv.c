/* flv: FLV audio/video tag bodies to codec parameters and frames. See the
 * header. Every field is read after checking the body is long enough. */
#include "relay/flv.h"

#include <errno.h>
#include <string.h>

#include <libavutil/channel_layout.h>
#include <libavutil/mem.h>

static int32_t flv_si24(const uint8_t *p) {
  int32_t v = (int32_t)((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]);
  if (v & 0x800000)
    v -= 0x1000000;
  return v;
}

static const char *const video_codec_names[16] = {
    [1] = "JPEG",    [2] = "Sorenson H.263",      [3] = "Screen video",
    [4] = "On2 VP6", [5] = "On2 VP6 with alpha",  [6] = "Screen video v2",
    [7] = "H.264",   [12] = "HEVC (codec id 12)",
};

static const char *const audio_codec_names[16] = {
    [0] = "Linear PCM",
    [1] = "ADPCM",
    [2] = "MP3",
    [3] = "Linear PCM LE",
    [4] = "Nellymoser 16 kHz",
    [5] = "Nellymoser 8 kHz",
    [6] = "Nellymoser",
    [7] = "G.711 A-law",
    [8] = "G.711 mu-law",
    [9] = "enhanced RTMP audio",
    [10] = "AAC",
    [11] = "Speex",
    [14] = "MP3 8 kHz",
    [15] = "device-specific sound",
};

static const struct {
  char fourcc[5];
  enum AVCodecID id;
  const char *name;
} fourccs[] = {
    {"hvc1", AV_CODEC_ID_HEVC, "HEVC"}, {"avc1", AV_CODEC_ID_H264, "H.264"}, {"av01", AV_CODEC_ID_NONE, "AV1"},
    {"vp09", AV_CODEC_ID_NONE, "VP9"},  {"vp08", AV_CODEC_ID_NONE, "VP8"},
};

/* Frames in the AVC layout: packet type, composition time, data. */
static int flv_avc_like(const uint8_t *body, size_t len, uint32_t ts, struct flv_media *out) {
  if (len < 5)
    return FLV_E_INVALID;
  int32_t cts = flv_si24(body + 2);
  switch (body[1]) {
  case 0: out->kind = FLV_CONFIG; break;
  case 1: out->kind = FLV_FRAME; break;
  default: out->kind = FLV_IGNORE; return 0;
  }
  out->offset = 5;
  out->data = body + 5;
  out->len = len - 5;
  out->dts = ts;
  out->pts = (int64_t)ts + cts;
  if (out->len == 0)
    return out->kind == FLV_CONFIG ? FLV_E_INVALID : (out->kind = FLV_IGNORE, 0);
  return 0;
}

static int flv_enhanced_video(const uint8_t *body, size_t len, uint32_t ts, struct flv_media *out) {
  if (len < 5)
    return FLV_E_INVALID;
  unsigned frame_type = (body[0] >> 4) & 7;
  unsigned pkt_type = body[0] & 0x0f;
  out->keyframe = frame_type == 1;
  out->codec_name = "unknown enhanced RTMP FourCC";
  out->codec = AV_CODEC_ID_NONE;
  for (size_t i = 0; i < sizeof fourccs / sizeof fourccs[0]; i++) {
    if (memcmp(body + 1, fourccs[i].fourcc, 4) == 0) {
      out->codec = fourccs[i].id;
      out->codec_name = fourccs[i].name;
    }
  }
  if (out->codec == AV_CODEC_ID_NONE)
    return FLV_E_UNSUPPORTED;
  if (frame_type == 5) {
    out->kind = FLV_IGNORE;
    return 0;
  }
  size_t off;
  int32_t cts = 0;
  switch (pkt_type) {
  case 0: /* SequenceStart */
    out->kind = FLV_CONFIG;
    off = 5;
    break;
  case 1: /* CodedFrames: with composition time */
    if (len < 8)
      return FLV_E_INVALID;
    cts = flv_si24(body + 5);
    out->kind = FLV_FRAME;
    off = 8;
    break;
  case 3: /* CodedFramesX: composition time 0 */
    out->kind = FLV_FRAME;
    off = 5;
    break;
  case 2: /* SequenceEnd */
  case 4: /* Metadata (HDR info) */ out->kind = FLV_IGNORE; return 0;
  default: /* MPEG-2 TS sequence start, multitrack: not for us */
    out->codec_name = "enhanced RTMP packet type (multitrack or MPEG-2 TS)";
    return FLV_E_UNSUPPORTED;
  }
  out->offset = off;
  out->data = body + off;
  out->len = len - off;
  out->dts = ts;
  out->pts = (int64_t)ts + cts;
  if (out->len == 0)
    return out->kind == FLV_CONFIG ? FLV_E_INVALID : (out->kind = FLV_IGNORE, 0);
  return 0;
}

int flv_parse_video(const uint8_t *body, size_t len, uint32_t ts, struct flv_media *out) {
  memset(out, 0, sizeof *out);
  out->video = true;
  if (len < 1)
    return FLV_E_INVALID;
  if (body[0] & 0x80)
    return flv_enhanced_video(body, len, ts, out);
  unsigned frame_type = body[0] >> 4;
  unsigned codec = body[0] & 0x0f;
  out->codec_name = video_codec_names[codec] ? video_codec_names[codec] : "unknown video codec";
  out->keyframe = frame_type == 1;
  if (codec != 7 && codec != 12)
    return FLV_E_UNSUPPORTED;
  out->codec = codec == 7 ? AV_CODEC_ID_H264 : AV_CODEC_ID_HEVC;
  if (frame_type == 5) { /* video info / command frame */
    out->kind = FLV_IGNORE;
    return 0;
  }
  return flv_avc_like(body, len, ts, out);
}

int flv_parse_audio(const uint8_t *body, size_t len, uint32_t ts, struct flv_media *out) {
  memset(out, 0, sizeof *out);
  if (len < 1)
    return FLV_E_INVALID;
  unsigned format = body[0] >> 4;
  out->codec_name = audio_codec_names[format] ? audio_codec_names[format] : "unknown audio codec";
  if (format != 10)
    return FLV_E_UNSUPPORTED;
  out->codec = AV_CODEC_ID_AAC;
  out->keyframe = true;
  if (len < 2)
    return FLV_E_INVALID;
  out->kind = body[1] == 0 ? FLV_CONFIG : FLV_FRAME;
  out->offset = 2;
  out->data = body + 2;
  out->len = len - 2;
  out->pts = out->dts = ts;
  if (out->kind == FLV_FRAME) {
    if (out->len == 0)
      out->kind = FLV_IGNORE;
    return 0;
  }
  /* AudioSpecificConfig: 5 bits object type, 4 bits rate index (15 =
   * explicit 24-bit rate), 4 bits channel configuration. */
  static const int rates[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                22050, 16000, 12000, 11025, 8000,  7350};
  if (out->len < 2)
    return FLV_E_INVALID;
  const uint8_t *a = out->data;
  unsigned object = a[0] >> 3;
  if (object == 31)
    return FLV_E_INVALID; /* escape to 6 more bits: not in the wild for RTMP */
  unsigned idx = (a[0] & 7u) << 1 | a[1] >> 7;
  unsigned chan;
  if (idx == 15) {
    if (out->len < 5)
      return FLV_E_INVALID;
    uint32_t bits = (uint32_t)a[1] << 24 | (uint32_t)a[2] << 16 | (uint32_t)a[3] << 8 | a[4];
    out->sample_rate = (int)((bits >> 7) & 0xffffff);
    chan = (bits >> 3) & 0xf;
  } else if (idx < 13) {
    out->sample_rate = rates[idx];
    chan = (a[1] >> 3) & 0xf;
  } else {
    return FLV_E_INVALID;
  }
  out->channels = chan == 7 ? 8 : (int)chan;
  return 0;
}

/* --- H.264 SPS, just far enough for the picture size --- */

struct bits {
  const uint8_t *p;
  size_t len; /* bytes */
  size_t pos; /* bits */
  bool overrun;
};

static unsigned bits_u(struct bits *b, unsigned n) {
  unsigned v = 0;
  for (unsigned i = 0; i < n; i++) {
    if (b->pos >= b->len * 8) {
      b->overrun = true;
      return 0;
    }
    v = v << 1 | ((b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1u);
    b->pos++;
  }
  return v;
}

static uint32_t bits_ue(struct bits *b) {
  unsigned zeros = 0;
  while (!b->overrun && bits_u(b, 1) == 0)
    if (++zeros > 31) {
      b->overrun = true;
      return 0;
    }
  if (b->overrun)
    return 0;
  return (uint32_t)((1ull << zeros) - 1 + bits_u(b, zeros));
}

static int32_t bits_se(struct bits *b) {
  uint32_t v = bits_ue(b);
  return v & 1 ? (int32_t)((v + 1) / 2) : -(int32_t)(v / 2);
}

static void sps_skip_scaling_list(struct bits *b, int size) {
  int last = 8, next = 8;
  for (int j = 0; j < size && !b->overrun; j++) {
    if (next != 0) {
      /* 64-bit: a hostile delta (up to +-2^31) must not overflow an int. */
      int64_t v = ((int64_t)last + bits_se(b)) % 256;
      next = (int)(v < 0 ? v + 256 : v);
    }
    last = next == 0 ? last : next;
  }
}

static int sps_dimensions(const uint8_t *nal, size_t len, int *width, int *height) {
  /* Remove emulation prevention bytes (00 00 03) into an RBSP copy. */
  uint8_t rbsp[256];
  size_t n = 0;
  int zeros = 0;
  for (size_t i = 1; i < len && n < sizeof rbsp; i++) {
    if (zeros >= 2 && nal[i] == 3) {
      zeros = 0;
      continue;
    }
    zeros = nal[i] == 0 ? zeros + 1 : 0;
    rbsp[n++] = nal[i];
  }
  struct bits b = {rbsp, n, 0, false};
  unsigned profile = bits_u(&b, 8);
  bits_u(&b, 16); /* constraint flags, level */
  bits_ue(&b);    /* sps id */
  unsigned chroma = 1;
  if (profile == 100 || profile == 110 || profile == 122 || profile == 244 || profile == 44 || profile == 83 ||
      profile == 86 || profile == 118 || profile == 128 || profile == 138 || profile == 139 || profile == 134 ||
      profile == 135) {
    chroma = bits_ue(&b);
    if (chroma == 3)
      bits_u(&b, 1);
    bits_ue(&b); /* bit depth luma */
    bits_ue(&b); /* bit depth chroma */
    bits_u(&b, 1);
    if (bits_u(&b, 1)) {
      int lists = chroma != 3 ? 8 : 12;
      for (int i = 0; i < lists && !b.overrun; i++)
        if (bits_u(&b, 1))
          sps_skip_scaling_list(&b, i < 6 ? 16 : 64);
    }
  }
  bits_ue(&b); /* log2 max frame num */
  uint32_t poc_type = bits_ue(&b);
  if (poc_type == 0) {
    bits_ue(&b);
  } else if (poc_type == 1) {
    bits_u(&b, 1);
    bits_se(&b);
    bits_se(&b);
    uint32_t cycle = bits_ue(&b);
    for (uint32_t i = 0; i < cycle && i < 256 && !b.overrun; i++)
      bits_se(&b);
  }
  bits_ue(&b); /* max ref frames */
  bits_u(&b, 1);
  uint32_t w_mbs = bits_ue(&b) + 1;
  uint32_t h_units = bits_ue(&b) + 1;
  unsigned frame_mbs_only = bits_u(&b, 1);
  if (!frame_mbs_only)
    bits_u(&b, 1);
  bits_u(&b, 1);
  uint32_t cl = 0, cr = 0, ct = 0, cb = 0;
  if (bits_u(&b, 1)) {
    cl = bits_ue(&b);
    cr = bits_ue(&b);
    ct = bits_ue(&b);
    cb = bits_ue(&b);
  }
  if (b.overrun || w_mbs > 1024 || h_units > 1024)
    return -EINVAL;
  unsigned ux = (chroma == 1 || chroma == 2) ? 2 : 1;
  unsigned uy = (chroma == 1 ? 2 : 1) * (2 - frame_mbs_only);
  /* Crop offsets summed in 64 bits: two huge ue values must not wrap. */
  int64_t w = (int64_t)w_mbs * 16 - (int64_t)ux * ((int64_t)cl + cr);
  int64_t h = (int64_t)h_units * 16 * (2 - frame_mbs_only) - (int64_t)uy * ((int64_t)ct + cb);
  if (w <= 0 || h <= 0)
    return -EINVAL;
  *width = (int)w;
  *height = (int)h;
  return 0;
}

int flv_avc_dimensions(const uint8_t *avcc, size_t len, int *width, int *height) {
  if (len < 8 || avcc[0] != 1 || (avcc[5] & 0x1f) == 0)
    return -EINVAL;
  size_t sps_len = (size_t)avcc[6] << 8 | avcc[7];
  if (sps_len < 2 || 8 + sps_len > len)
    return -EINVAL;
  return sps_dimensions(avcc + 8, sps_len, width, height);
}

AVCodecParameters *flv_codecpar(const struct flv_media *cfg) {
  if (cfg->kind != FLV_CONFIG || cfg->len == 0 || cfg->len > (1u << 20))
    return NULL;
  AVCodecParameters *par = avcodec_parameters_alloc();
  if (!par)
    return NULL;
  par->extradata = av_mallocz(cfg->len + AV_INPUT_BUFFER_PADDING_SIZE);
  if (!par->extradata) {
    avcodec_parameters_free(&par);
    return NULL;
  }
  memcpy(par->extradata, cfg->data, cfg->len);
  par->extradata_size = (int)cfg->len;
  par->codec_id = cfg->codec;
  if (cfg->video) {
    par->codec_type = AVMEDIA_TYPE_VIDEO;
    if (cfg->codec == AV_CODEC_ID_H264)
      flv_avc_dimensions(cfg->data, cfg->len, &par->width, &par->height);
  } else {
    par->codec_type = AVMEDIA_TYPE_AUDIO;
    par->sample_rate = cfg->sample_rate;
    if (cfg->channels > 0)
      av_channel_layout_default(&par->ch_layout, cfg->channels);
  }
  return par;
}

int flv_sequence_header(const AVCodecParameters *par, uint8_t *out, size_t cap) {
  if (!par || !par->extradata || par->extradata_size <= 0)
    return -EINVAL;
  size_t n = (size_t)par->extradata_size;
  size_t hdr;
  uint8_t h[5];
  switch (par->codec_id) {
  case AV_CODEC_ID_H264:
    h[0] = 0x17, h[1] = 0, h[2] = h[3] = h[4] = 0;
    hdr = 5;
    break;
  case AV_CODEC_ID_HEVC:
    h[0] = 0x80 | 0x10 | 0, memcpy(h + 1, "hvc1", 4);
    hdr = 5;
    break;
  case AV_CODEC_ID_AAC:
    h[0] = 0xaf, h[1] = 0;
    hdr = 2;
    break;
  default: return -EINVAL;
  }
  if (hdr + n > cap)
    return -ENOSPC;
  memcpy(out, h, hdr);
  memcpy(out + hdr, par->extradata, n);
  return (int)(hdr + n);
}

const char *flv_strerror(int code) {
  switch (code) {
  case FLV_E_INVALID: return "malformed or truncated FLV body";
  case FLV_E_UNSUPPORTED: return "codec not supported";
  default: return strerror(-code);
  }
}
