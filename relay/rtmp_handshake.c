/* rtmp_handshake: plain and digest ("complex") RTMP handshakes. See the
 * header. The key constants and digest offsets are protocol facts of the
 * Flash handshake: the digest sits at (sum of 4 bytes at 8 or 772) % 728 +
 * 12 or 776, and is an HMAC-SHA256 of the packet without those 32 bytes. */
#include "relay/rtmp_handshake.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#define DIGEST_LEN 32

/* "Genuine Adobe Flash Media Server 001" + 32 fixed bytes (the full key
 * signs S2's key; the text alone signs S1). */
static const uint8_t fms_key[68] = {'G',  'e',  'n',  'u',  'i',  'n',  'e',  ' ',  'A',  'd',  'o',  'b',  'e',  ' ',
                                    'F',  'l',  'a',  's',  'h',  ' ',  'M',  'e',  'd',  'i',  'a',  ' ',  'S',  'e',
                                    'r',  'v',  'e',  'r',  ' ',  '0',  '0',  '1',  0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68,
                                    0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57, 0x6e, 0xec, 0x5d, 0x2d,
                                    0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae};
#define FMS_KEY_TEXT_LEN 36

/* "Genuine Adobe Flash Player 001" + the same 32 bytes. */
static const uint8_t fp_key[62] = {'G',  'e',  'n',  'u',  'i',  'n',  'e',  ' ',  'A',  'd',  'o',  'b',  'e',
                                   ' ',  'F',  'l',  'a',  's',  'h',  ' ',  'P',  'l',  'a',  'y',  'e',  'r',
                                   ' ',  '0',  '0',  '1',  0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e,
                                   0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57, 0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80,
                                   0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae};
#define FP_KEY_TEXT_LEN 30

static void hs_hmac(const uint8_t *key, size_t klen, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                    uint8_t out[DIGEST_LEN]) {
  /* HMAC over a || b (the packet around the digest's gap). */
  uint8_t tmp[RTMP_HANDSHAKE_SIZE];
  unsigned int olen = DIGEST_LEN;
  if (alen + blen > sizeof tmp) {
    memset(out, 0, DIGEST_LEN);
    return;
  }
  if (alen)
    memcpy(tmp, a, alen);
  if (blen)
    memcpy(tmp + alen, b, blen);
  if (!HMAC(EVP_sha256(), key, (int)klen, tmp, alen + blen, out, &olen))
    memset(out, 0, DIGEST_LEN);
}

size_t rtmp_handshake_digest_pos(const uint8_t *pkt, int scheme) {
  size_t base = scheme == 0 ? 8 : 772;
  unsigned sum = (unsigned)pkt[base] + pkt[base + 1] + pkt[base + 2] + pkt[base + 3];
  return sum % 728 + base + 4;
}

static void hs_digest(const uint8_t *pkt, size_t pos, const uint8_t *key, size_t klen, uint8_t out[DIGEST_LEN]) {
  hs_hmac(key, klen, pkt, pos, pkt + pos + DIGEST_LEN, RTMP_HANDSHAKE_SIZE - pos - DIGEST_LEN, out);
}

bool rtmp_handshake_check_digest(const uint8_t *pkt, int scheme, bool server_key) {
  size_t pos = rtmp_handshake_digest_pos(pkt, scheme);
  uint8_t d[DIGEST_LEN];
  if (server_key)
    hs_digest(pkt, pos, fms_key, FMS_KEY_TEXT_LEN, d);
  else
    hs_digest(pkt, pos, fp_key, FP_KEY_TEXT_LEN, d);
  return CRYPTO_memcmp(d, pkt + pos, DIGEST_LEN) == 0;
}

void rtmp_handshake_put_digest(uint8_t *pkt, int scheme, bool server_key) {
  size_t pos = rtmp_handshake_digest_pos(pkt, scheme);
  uint8_t d[DIGEST_LEN];
  if (server_key)
    hs_digest(pkt, pos, fms_key, FMS_KEY_TEXT_LEN, d);
  else
    hs_digest(pkt, pos, fp_key, FP_KEY_TEXT_LEN, d);
  memcpy(pkt + pos, d, DIGEST_LEN);
}

/* S2's last 32 bytes: HMAC keyed with HMAC(full FMS key, C1's digest). */
static void hs_s2_digest(const uint8_t *s2, const uint8_t *c1, int scheme, uint8_t out[DIGEST_LEN]) {
  uint8_t key[DIGEST_LEN];
  size_t pos = rtmp_handshake_digest_pos(c1, scheme);
  hs_hmac(fms_key, sizeof fms_key, c1 + pos, DIGEST_LEN, NULL, 0, key);
  hs_hmac(key, DIGEST_LEN, s2, RTMP_HANDSHAKE_SIZE - DIGEST_LEN, NULL, 0, out);
}

bool rtmp_handshake_check_s2(const uint8_t *s2, const uint8_t *c1, int scheme) {
  uint8_t d[DIGEST_LEN];
  hs_s2_digest(s2, c1, scheme, d);
  return CRYPTO_memcmp(d, s2 + RTMP_HANDSHAKE_SIZE - DIGEST_LEN, DIGEST_LEN) == 0;
}

static void hs_random(uint8_t *p, size_t n) {
  if (RAND_bytes(p, (int)n) != 1)
    memset(p, 0x5a, n); /* only unpredictability suffers; the protocol works */
}

static void hs_put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

void rtmp_handshake_server_init(struct rtmp_handshake *hs) {
  memset(hs, 0, sizeof *hs);
  hs->state = RTMP_HS_WAIT_C0C1;
}

void rtmp_handshake_client_init(struct rtmp_handshake *hs, rtmp_hs_send_fn send, void *opaque) {
  memset(hs, 0, sizeof *hs);
  hs->state = RTMP_HS_WAIT_S0S1S2;
  uint8_t c0 = 3;
  hs_random(hs->c1s1, RTMP_HANDSHAKE_SIZE);
  hs_put_u32(hs->c1s1, 0);
  hs_put_u32(hs->c1s1 + 4, 0); /* zero version: plain handshake */
  send(opaque, &c0, 1);
  send(opaque, hs->c1s1, RTMP_HANDSHAKE_SIZE);
}

static void hs_server_reply(struct rtmp_handshake *hs, rtmp_hs_send_fn send, void *opaque) {
  const uint8_t *c1 = hs->in + 1;
  uint8_t out[1 + 2 * RTMP_HANDSHAKE_SIZE];
  uint8_t *s1 = out + 1, *s2 = out + 1 + RTMP_HANDSHAKE_SIZE;
  out[0] = 3;
  hs->complex = false;
  /* A client that announces a Flash version in C1 may have signed it. */
  if (c1[4] || c1[5] || c1[6] || c1[7]) {
    for (int scheme = 0; scheme < 2; scheme++) {
      if (rtmp_handshake_check_digest(c1, scheme, false)) {
        hs->complex = true;
        hs->scheme = scheme;
        break;
      }
    }
  }
  hs_random(s1, RTMP_HANDSHAKE_SIZE);
  hs_put_u32(s1, (uint32_t)time(NULL));
  if (hs->complex) {
    hs_put_u32(s1 + 4, 0x04050001); /* a server version, as FMS sends */
    rtmp_handshake_put_digest(s1, hs->scheme, true);
    hs_random(s2, RTMP_HANDSHAKE_SIZE);
    uint8_t d[DIGEST_LEN];
    hs_s2_digest(s2, c1, hs->scheme, d);
    memcpy(s2 + RTMP_HANDSHAKE_SIZE - DIGEST_LEN, d, DIGEST_LEN);
  } else {
    hs_put_u32(s1 + 4, 0);
    memcpy(s2, c1, RTMP_HANDSHAKE_SIZE);
  }
  send(opaque, out, sizeof out);
}

long rtmp_handshake_feed(struct rtmp_handshake *hs, const uint8_t *data, size_t len, rtmp_hs_send_fn send,
                         void *opaque) {
  size_t used = 0;
  while (used < len && hs->state != RTMP_HS_DONE) {
    size_t need;
    switch (hs->state) {
    case RTMP_HS_WAIT_C0C1:
    case RTMP_HS_WAIT_S0S1S2:
      need = hs->state == RTMP_HS_WAIT_C0C1 ? 1 + RTMP_HANDSHAKE_SIZE : 1 + 2 * RTMP_HANDSHAKE_SIZE;
      break;
    case RTMP_HS_WAIT_C2: need = RTMP_HANDSHAKE_SIZE; break;
    default: return -EPROTO;
    }
    size_t take = need - hs->have;
    if (take > len - used)
      take = len - used;
    memcpy(hs->in + hs->have, data + used, take);
    hs->have += take;
    used += take;
    /* Version 3 is RTMP; 6 (RTMPE) and the rest we do not speak. */
    if (hs->state != RTMP_HS_WAIT_C2 && hs->have >= 1 && hs->in[0] != 3) {
      hs->state = RTMP_HS_FAILED;
      return -EPROTO;
    }
    if (hs->have < need)
      break;
    hs->have = 0;
    if (hs->state == RTMP_HS_WAIT_C0C1) {
      hs_server_reply(hs, send, opaque);
      hs->state = RTMP_HS_WAIT_C2;
    } else if (hs->state == RTMP_HS_WAIT_C2) {
      hs->state = RTMP_HS_DONE;
    } else { /* client: C2 echoes S1 */
      send(opaque, hs->in + 1, RTMP_HANDSHAKE_SIZE);
      hs->state = RTMP_HS_DONE;
    }
  }
  return (long)used;
}
