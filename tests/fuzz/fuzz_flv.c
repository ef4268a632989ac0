/* libFuzzer: FLV video and audio bodies, their codec parameters and the
 * SPS reader. The first byte picks audio or video. */
#include <stddef.h>
#include <stdint.h>

#include "relay/flv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  struct flv_media m;
  int rc = data[0] & 1 ? flv_parse_audio(data + 1, size - 1, 1000, &m) : flv_parse_video(data + 1, size - 1, 1000, &m);
  if (rc == 0 && m.kind == FLV_CONFIG) {
    AVCodecParameters *par = flv_codecpar(&m);
    if (par) {
      uint8_t out[4096];
      flv_sequence_header(par, out, sizeof out);
      avcodec_parameters_free(&par);
    }
  }
  int w, h;
  flv_avc_dimensions(data + 1, size - 1, &w, &h);
  return 0;
}
