/* FLV bodies: AVC and AAC sequence headers to codec parameters (with the
 * picture size from a real x264 SPS), frames with composition time,
 * enhanced RTMP hvc1, and codecs refused by name. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include "tests/unit/test_main.h"

#include "relay/flv.h"

/* The first video tag of an x264 320x240 (4:4:4, High 4:4:4) FLV. */
static const uint8_t avc_seq_444[] = {0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0xf4, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19,
                                      0x67, 0xf4, 0x00, 0x0d, 0x91, 0x9b, 0x28, 0x28, 0x3f, 0x60, 0x22, 0x00, 0x00,
                                      0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x78, 0x1e, 0x28, 0x53, 0x2c, 0x01,
                                      0x00, 0x05, 0x68, 0xce, 0x0f, 0x19, 0x20, 0xff, 0xf8, 0xf8, 0x00};

/* x264 1280x720 4:2:0 (constrained baseline): 720 = 45 macroblocks, no
 * cropping; the SPS has emulation prevention bytes. */
static const uint8_t avcc_720p[] = {0x01, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0x00, 0x17, 0x67, 0x42, 0xc0, 0x1f, 0xda,
                                    0x01, 0x40, 0x16, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00,
                                    0x0f, 0x03, 0xc6, 0x0c, 0xa8, 0x01, 0x00, 0x04, 0x68, 0xce, 0x0f, 0xc8};

static void test_avc_sequence_header(void **state) {
  (void)state;
  struct flv_media m;
  assert_int_equal(flv_parse_video(avc_seq_444, sizeof avc_seq_444, 0, &m), 0);
  assert_int_equal(m.kind, FLV_CONFIG);
  assert_int_equal(m.codec, AV_CODEC_ID_H264);
  assert_true(m.keyframe);
  assert_int_equal(m.len, sizeof avc_seq_444 - 5);
  AVCodecParameters *par = flv_codecpar(&m);
  assert_non_null(par);
  assert_int_equal(par->codec_type, AVMEDIA_TYPE_VIDEO);
  assert_int_equal(par->width, 320);
  assert_int_equal(par->height, 240);
  assert_int_equal(par->extradata_size, (int)sizeof avc_seq_444 - 5);
  uint8_t back[128];
  int n = flv_sequence_header(par, back, sizeof back);
  assert_int_equal(n, (int)sizeof avc_seq_444);
  assert_memory_equal(back, avc_seq_444, sizeof avc_seq_444);
  avcodec_parameters_free(&par);
}

static void test_avc_dimensions_720p(void **state) {
  (void)state;
  int w = 0, h = 0;
  assert_int_equal(flv_avc_dimensions(avcc_720p, sizeof avcc_720p, &w, &h), 0);
  assert_int_equal(w, 1280);
  assert_int_equal(h, 720);
  for (size_t cut = 0; cut < 9; cut++)
    assert_int_equal(flv_avc_dimensions(avcc_720p, cut, &w, &h), -EINVAL);
}

static void test_avc_frame_cts(void **state) {
  (void)state;
  const uint8_t frame[] = {0x27, 0x01, 0x00, 0x00, 0x85, 0, 0, 0, 2, 0x41, 0x9a};
  struct flv_media m;
  assert_int_equal(flv_parse_video(frame, sizeof frame, 34, &m), 0);
  assert_int_equal(m.kind, FLV_FRAME);
  assert_false(m.keyframe);
  assert_int_equal(m.dts, 34);
  assert_int_equal(m.pts, 34 + 0x85);
  assert_int_equal(m.len, 6);
  const uint8_t neg[] = {0x17, 0x01, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x65};
  assert_int_equal(flv_parse_video(neg, sizeof neg, 100, &m), 0);
  assert_true(m.keyframe);
  assert_int_equal(m.pts, 98);
  const uint8_t eos[] = {0x17, 0x02, 0, 0, 0};
  assert_int_equal(flv_parse_video(eos, sizeof eos, 100, &m), 0);
  assert_int_equal(m.kind, FLV_IGNORE);
  assert_int_equal(flv_parse_video(frame, 4, 0, &m), FLV_E_INVALID);
}

static void test_aac(void **state) {
  (void)state;
  const uint8_t seq[] = {0xaf, 0x00, 0x12, 0x08}; /* AAC LC, 44.1 kHz, mono */
  struct flv_media m;
  assert_int_equal(flv_parse_audio(seq, sizeof seq, 0, &m), 0);
  assert_int_equal(m.kind, FLV_CONFIG);
  assert_int_equal(m.sample_rate, 44100);
  assert_int_equal(m.channels, 1);
  AVCodecParameters *par = flv_codecpar(&m);
  assert_non_null(par);
  assert_int_equal(par->codec_id, AV_CODEC_ID_AAC);
  assert_int_equal(par->ch_layout.nb_channels, 1);
  avcodec_parameters_free(&par);
  const uint8_t st[] = {0xaf, 0x00, 0x11, 0x90}; /* 48 kHz stereo */
  assert_int_equal(flv_parse_audio(st, sizeof st, 0, &m), 0);
  assert_int_equal(m.sample_rate, 48000);
  assert_int_equal(m.channels, 2);
  const uint8_t raw[] = {0xaf, 0x01, 0x21, 0x10};
  assert_int_equal(flv_parse_audio(raw, sizeof raw, 23, &m), 0);
  assert_int_equal(m.kind, FLV_FRAME);
  assert_int_equal(m.pts, 23);
  assert_int_equal(m.len, 2);
}

static void test_refused_by_name(void **state) {
  (void)state;
  struct flv_media m;
  const uint8_t mp3[] = {0x2f, 0xff, 0xfb};
  assert_int_equal(flv_parse_audio(mp3, sizeof mp3, 0, &m), FLV_E_UNSUPPORTED);
  assert_string_equal(m.codec_name, "MP3");
  const uint8_t vp6[] = {0x14, 0x00};
  assert_int_equal(flv_parse_video(vp6, sizeof vp6, 0, &m), FLV_E_UNSUPPORTED);
  assert_string_equal(m.codec_name, "On2 VP6");
  const uint8_t av1[] = {0x90, 'a', 'v', '0', '1', 0x00};
  assert_int_equal(flv_parse_video(av1, sizeof av1, 0, &m), FLV_E_UNSUPPORTED);
  assert_string_equal(m.codec_name, "AV1");
}

static void test_enhanced_hevc(void **state) {
  (void)state;
  struct flv_media m;
  const uint8_t seq[] = {0x90, 'h', 'v', 'c', '1', 0x01, 0x02, 0x03};
  assert_int_equal(flv_parse_video(seq, sizeof seq, 0, &m), 0);
  assert_int_equal(m.kind, FLV_CONFIG);
  assert_int_equal(m.codec, AV_CODEC_ID_HEVC);
  assert_int_equal(m.len, 3);
  const uint8_t fr[] = {0x91, 'h', 'v', 'c', '1', 0x00, 0x00, 0x21, 0, 0, 0, 1, 0x26};
  assert_int_equal(flv_parse_video(fr, sizeof fr, 10, &m), 0);
  assert_int_equal(m.kind, FLV_FRAME);
  assert_true(m.keyframe);
  assert_int_equal(m.pts, 10 + 0x21);
  assert_int_equal(m.offset, 8);
  const uint8_t frx[] = {0xa3, 'h', 'v', 'c', '1', 0, 0, 0, 1, 0x02};
  assert_int_equal(flv_parse_video(frx, sizeof frx, 10, &m), 0);
  assert_int_equal(m.kind, FLV_FRAME);
  assert_false(m.keyframe);
  assert_int_equal(m.pts, 10);
}

/* Hostile SPS values: crop offsets of 2^31 each (their 32-bit sum wraps to
 * 0, which once passed as an uncropped 1280x720) and a scaling-list delta
 * of 2^31-1 (a signed overflow under UBSan). Both must be refused or read
 * without undefined behaviour. */
static void test_avc_sps_hostile_values(void **state) {
  (void)state;
  static const uint8_t crop_sps[] = {0x67, 0x42, 0x00, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xf0, 0x00, 0x00, 0x00, 0x10,
                                     0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x74};
  uint8_t avcc[64] = {0x01, 0x42, 0x00, 0x1f, 0xff, 0xe1, 0x00, (uint8_t)sizeof crop_sps};
  memcpy(avcc + 8, crop_sps, sizeof crop_sps);
  int w = 0, h = 0;
  assert_int_equal(flv_avc_dimensions(avcc, 8 + sizeof crop_sps, &w, &h), -EINVAL);

  uint8_t scal_sps[51] = {0x67, 0x64, 0x00, 0x1f, 0xad, 0x80, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xfe};
  memset(scal_sps + 13, 0xff, sizeof scal_sps - 14);
  scal_sps[sizeof scal_sps - 1] = 0xf8;
  uint8_t avcc2[80] = {0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, (uint8_t)sizeof scal_sps};
  memcpy(avcc2 + 8, scal_sps, sizeof scal_sps);
  int rc = flv_avc_dimensions(avcc2, 8 + sizeof scal_sps, &w, &h);
  assert_true(rc == 0 || rc == -1);
}

/* Its codes are errno values with words of their own; others fall back. */
static void test_strerror(void **state) {
  (void)state;
  assert_int_equal(FLV_E_INVALID, -EINVAL);
  assert_string_equal(flv_strerror(FLV_E_UNSUPPORTED), "codec not supported");
  assert_string_equal(flv_strerror(FLV_E_INVALID), "malformed or truncated FLV body");
  assert_string_equal(flv_strerror(-ENOMEM), strerror(ENOMEM));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror),
      cmocka_unit_test(test_avc_sequence_header),
      cmocka_unit_test(test_avc_dimensions_720p),
      cmocka_unit_test(test_avc_sps_hostile_values),
      cmocka_unit_test(test_avc_frame_cts),
      cmocka_unit_test(test_aac),
      cmocka_unit_test(test_refused_by_name),
      cmocka_unit_test(test_enhanced_hevc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
