/* libFuzzer: the AMF0 decoder: skip every value, and decode the input as
 * the connect / publish command tables and as onMetaData do. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/amf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct amf_reader r;
  amf_reader_init(&r, data, size);
  while (!amf_at_end(&r) && amf_skip(&r) == 0) {
  }
  char app[64], name[256];
  double txid = 0, enc = 0, width = 0;
  bool flag = false;
  struct amf_field obj[] = {
      {AMF_STRING, "app", app, sizeof app},
      {AMF_NUMBER, "objectEncoding", &enc, sizeof enc},
      {AMF_NUMBER, "width", &width, sizeof width},
      {AMF_BOOLEAN, "stereo", &flag, sizeof flag},
  };
  struct amf_field_table t = {obj, 4};
  struct amf_field seq[] = {
      {AMF_STRING, NULL, name, sizeof name},
      {AMF_NUMBER, NULL, &txid, sizeof txid},
      {AMF_OBJECT, NULL, &t, 0},
      {AMF_NULL, NULL, NULL, 0},
      {AMF_STRING, NULL, name, sizeof name},
  };
  amf_reader_init(&r, data, size);
  amf_decode_seq(&r, seq, 5);
  amf_reader_init(&r, data, size);
  amf_decode_object(&r, obj, 4);
  return 0;
}
