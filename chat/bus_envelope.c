/* bus_envelope: sealing and opening the signed event messages between
 * nodes (see bus_envelope.h). */
#include "chat/bus_envelope.h"

#include <errno.h>

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdbool.h>
#include <string.h>

#include "core/buf.h"

#define MAC_LEN 32
#define TS_MAX 999999999999999ull /* 15 digits: year 33658 */
static const char mac_key[] = ",\"mac\":\"";
/* ,"mac":" + 64 hex + "} */
#define MAC_SUFFIX_LEN (sizeof mac_key - 1 + 2 * MAC_LEN + 2)

/* HMAC-SHA256(secret, channel NUL body) */
static int mac_compute(const char *secret, const char *channel, const char *body, size_t len,
                       unsigned char out[MAC_LEN]) {
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                         OSSL_PARAM_construct_end()};
  size_t outl = 0;
  int ok = ctx && EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) &&
           EVP_MAC_update(ctx, (const unsigned char *)channel, strlen(channel) + 1) &&
           EVP_MAC_update(ctx, (const unsigned char *)body, len) && EVP_MAC_final(ctx, out, &outl, MAC_LEN) &&
           outl == MAC_LEN;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return ok ? 0 : -EIO;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

int bus_envelope_seal(struct buf *out, const char *secret, const char *channel, const char *origin, uint64_t seq,
                      uint64_t ts_ms, const char *event, size_t len) {
  size_t olen = strlen(origin);
  if (!secret || !*secret || olen == 0 || olen > BUS_ENVELOPE_ORIGIN_MAX || len == 0 || ts_ms == 0 || ts_ms > TS_MAX)
    return -EINVAL;
  size_t start = out->len;
  buf_printf(out, "{\"origin\":\"%s\",\"seq\":%" PRIu64 ",\"ts\":%" PRIu64 ",\"event\":", origin, seq, ts_ms);
  buf_append(out, event, len);
  unsigned char mac[MAC_LEN];
  if (out->failed)
    return -ENOMEM;
  int rc = mac_compute(secret, channel, (const char *)out->data + start, out->len - start, mac);
  if (rc != 0)
    return rc;
  static const char hex[] = "0123456789abcdef";
  char text[2 * MAC_LEN];
  for (size_t i = 0; i < MAC_LEN; i++) {
    text[2 * i] = hex[mac[i] >> 4];
    text[2 * i + 1] = hex[mac[i] & 15];
  }
  buf_puts(out, mac_key);
  buf_append(out, text, sizeof text);
  buf_puts(out, "\"}");
  return out->failed ? -ENOMEM : 0;
}

/* Up to max decimal digits at s[*k] (at least one): their value. */
static int parse_digits(const char *s, size_t n, size_t *k, size_t max, uint64_t *out) {
  uint64_t v = 0;
  size_t digits = 0;
  for (; *k < n && s[*k] >= '0' && s[*k] <= '9' && digits < max; (*k)++, digits++)
    v = v * 10 + (uint64_t)(s[*k] - '0');
  *out = v;
  return digits ? 0 : -EINVAL;
}

/* {"origin":"NODE","seq":N[,"ts":MS],"event":EVENT: the first n bytes of
 * s, EVENT running to the end. */
static int parse_body(const char *s, size_t n, struct bus_envelope *out) {
  static const char p1[] = "{\"origin\":\"", p2[] = "\",\"seq\":", p3[] = ",\"event\":";
  size_t k = sizeof p1 - 1, o = 0;
  if (n < k || memcmp(s, p1, k) != 0)
    return -EINVAL;
  while (k < n && o < BUS_ENVELOPE_ORIGIN_MAX && hex_value(s[k]) >= 0)
    out->origin[o++] = s[k++];
  out->origin[o] = '\0';
  if (o == 0 || n - k < sizeof p2 - 1 || memcmp(s + k, p2, sizeof p2 - 1) != 0)
    return -EINVAL;
  k += sizeof p2 - 1;
  static const char pts[] = ",\"ts\":";
  if (parse_digits(s, n, &k, 19, &out->seq) != 0)
    return -EINVAL;
  out->ts_ms = 0;
  if (n - k > sizeof pts - 1 && memcmp(s + k, pts, sizeof pts - 1) == 0) {
    k += sizeof pts - 1;
    if (parse_digits(s, n, &k, 15, &out->ts_ms) != 0)
      return -EINVAL;
  }
  if (n - k <= sizeof p3 - 1 || memcmp(s + k, p3, sizeof p3 - 1) != 0)
    return -EINVAL;
  k += sizeof p3 - 1;
  out->event = s + k;
  out->event_len = n - k;
  return 0;
}

const char *bus_envelope_strerror(int code) {
  switch (code) {
  case BUS_ENVELOPE_MALFORMED: return "malformed";
  case BUS_ENVELOPE_BAD_MAC: return "bad_mac";
  }
  return strerror(-code);
}

int bus_envelope_open(const char *secret, const char *channel, const char *msg, size_t n, struct bus_envelope *out) {
  const char *suffix = n >= MAC_SUFFIX_LEN ? msg + n - MAC_SUFFIX_LEN : NULL;
  unsigned char sent[MAC_LEN];
  bool has_mac = suffix && memcmp(suffix, mac_key, sizeof mac_key - 1) == 0 && memcmp(msg + n - 2, "\"}", 2) == 0;
  for (size_t i = 0; has_mac && i < MAC_LEN; i++) {
    int hi = hex_value(suffix[sizeof mac_key - 1 + 2 * i]);
    int lo = hex_value(suffix[sizeof mac_key + 2 * i]);
    has_mac = hi >= 0 && lo >= 0;
    if (has_mac) /* a bad digit is -1: never shifted */
      sent[i] = (unsigned char)(hi << 4 | lo);
  }
  if (!has_mac) /* unsigned: our old envelope, or a forgery that did not try */
    return n > 0 && msg[n - 1] == '}' && parse_body(msg, n - 1, out) == 0 ? BUS_ENVELOPE_BAD_MAC
                                                                          : BUS_ENVELOPE_MALFORMED;
  size_t body = n - MAC_SUFFIX_LEN;
  if (parse_body(msg, body, out) != 0)
    return BUS_ENVELOPE_MALFORMED;
  unsigned char want[MAC_LEN];
  if (!secret || !*secret || mac_compute(secret, channel, msg, body, want) != 0 ||
      CRYPTO_memcmp(want, sent, MAC_LEN) != 0)
    return BUS_ENVELOPE_BAD_MAC;
  return BUS_ENVELOPE_OK;
}
