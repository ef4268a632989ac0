/* flv: FLV tag bodies (what RTMP audio and video messages carry) to media.
 *
 * A video body is either a codec configuration (AVC decoder configuration
 * record, HEVC's hvcC through enhanced RTMP) that becomes AVCodecParameters
 * extradata, or a frame whose NAL units (length-prefixed, as they arrive)
 * become an AVPacket with dts = the RTMP timestamp and pts = dts +
 * composition time, in milliseconds. Audio: the AAC AudioSpecificConfig,
 * then raw AAC frames. Anything else is refused with the codec's name so
 * the caller can log it. Pure: no sockets, no logging, fuzzed alone; any
 * thread. Errors: enum flv_error (negative errno codes), flv_strerror. */
#ifndef GALARELAY_FLV_H
#define GALARELAY_FLV_H

#include <stdbool.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>

enum flv_kind {
  FLV_CONFIG, /* codec parameters (sequence header) */
  FLV_FRAME,  /* a media frame */
  FLV_IGNORE, /* end of sequence, video info frame, metadata packet: nothing to do */
};

/* Errors: negative errno codes, told apart by flv_strerror. */
enum flv_error {
  FLV_E_INVALID = -EINVAL,      /* malformed or truncated */
  FLV_E_UNSUPPORTED = -ENOTSUP, /* a codec we do not take: see codec_name */
};
const char *flv_strerror(int code);

struct flv_media {
  enum flv_kind kind;
  bool video;
  enum AVCodecID codec;
  const char *codec_name; /* always set when the codec is known or refused */
  /* FLV_CONFIG: the codec configuration bytes (extradata). FLV_FRAME: the
   * frame payload. Points into the input body. */
  const uint8_t *data;
  size_t len;
  size_t offset;    /* where data starts inside the body */
  int64_t pts, dts; /* ms */
  bool keyframe;
  /* FLV_CONFIG, audio: from the AudioSpecificConfig. */
  int sample_rate;
  int channels;
};

/* Parse one video or audio message body with its RTMP timestamp. Returns 0
 * or enum flv_error. */
int flv_parse_video(const uint8_t *body, size_t len, uint32_t timestamp, struct flv_media *out);
int flv_parse_audio(const uint8_t *body, size_t len, uint32_t timestamp, struct flv_media *out);

/* Codec parameters from a FLV_CONFIG: codec id, extradata copied (padded),
 * and for AVC the width/height read from the first SPS, for AAC the sample
 * rate and channel count. Returns a new object or NULL. */
AVCodecParameters *flv_codecpar(const struct flv_media *cfg);

/* Width and height from an AVC decoder configuration record's first SPS.
 * Returns 0 or -EINVAL. */
int flv_avc_dimensions(const uint8_t *avcc, size_t len, int *width, int *height);

/* The FLV body of a sequence header for these parameters (what RTMP
 * players are sent on start): AVC, HEVC (enhanced RTMP) or AAC. Returns the
 * body length written to out (at most cap), -EINVAL (no extradata, another
 * codec) or -ENOSPC (cap too small). */
int flv_sequence_header(const AVCodecParameters *par, uint8_t *out, size_t cap);

#endif
