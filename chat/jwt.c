/* jwt: HS256 verification with OpenSSL's HMAC, claims with jansson. */
#include "chat/jwt.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *jwt_strerror(int code) {
  switch (code) {
  case JWT_OK: return "ok";
  case JWT_MALFORMED: return "malformed";
  case JWT_BAD_ALG: return "bad_alg";
  case JWT_BAD_SIGNATURE: return "bad_signature";
  case JWT_EXPIRED: return "expired";
  }
  return strerror(-code);
}

static int b64url_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

/* Unpadded base64url (RFC 7515 §2). out must hold len*3/4+1 bytes. */
static int b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen) {
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  if (len % 4 == 1)
    return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    int v = b64url_value((unsigned char)in[i]);
    if (v < 0)
      return -EINVAL;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (unsigned char)(acc >> bits);
    }
  }
  /* leftover bits must be zero (canonical encoding) */
  if (bits && (acc & ((1u << bits) - 1)))
    return -EINVAL;
  *outlen = n;
  return 0;
}

static size_t b64url_encode(const unsigned char *in, size_t len, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    acc = (acc << 8) | in[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out[n++] = tbl[(acc >> bits) & 63];
    }
  }
  if (bits)
    out[n++] = tbl[(acc << (6 - bits)) & 63];
  out[n] = '\0';
  return n;
}

static json_t *decode_json_part(const char *p, size_t len) {
  unsigned char buf[JWT_MAX_LEN];
  size_t n;
  if (len > JWT_MAX_LEN || b64url_decode(p, len, buf, &n))
    return NULL;
  /* a key twice ("role" once as viewer, once as moderator) means whatever
   * the parser picks: a token whose issuer and we could read differently
   * is refused */
  json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
  if (j && !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static void copy_claim(json_t *claims, const char *key, char *dst, size_t size) {
  const char *s = json_string_value(json_object_get(claims, key));
  snprintf(dst, size, "%s", s ? s : "");
}

static bool hs256(const char *secret, const void *data, size_t len, unsigned char mac[32]) {
  unsigned int maclen = 0;
  return HMAC(EVP_sha256(), secret, (int)strlen(secret), data, len, mac, &maclen) && maclen == 32;
}

#define JWT_TIME_MAX 1e15 /* seconds: far past any real exp, far inside int64_t */

static int check_claims(json_t *claims, int64_t now_s, int64_t leeway_s, struct jwt_claims *out) {
  json_t *exp = json_object_get(claims, "exp");
  json_t *nbf = json_object_get(claims, "nbf");
  const char *sub = json_string_value(json_object_get(claims, "sub"));
  if (!json_is_number(exp) || !sub || !*sub || strlen(sub) >= sizeof(out->sub))
    return JWT_MALFORMED;
  /* compared as doubles: exp = 1e300 or INT64_MAX must not overflow (UB)
   * when cast or when the leeway is added */
  double e = json_number_value(exp);
  if (!(e > -JWT_TIME_MAX && e < JWT_TIME_MAX))
    return JWT_MALFORMED;
  out->exp = (int64_t)e;
  if ((double)now_s > e + (double)leeway_s)
    return JWT_EXPIRED;
  if (nbf && !json_is_number(nbf))
    return JWT_MALFORMED;
  if (nbf && (double)now_s + (double)leeway_s < json_number_value(nbf))
    return JWT_EXPIRED;
  copy_claim(claims, "sub", out->sub, sizeof(out->sub));
  copy_claim(claims, "name", out->name, sizeof(out->name));
  copy_claim(claims, "role", out->role, sizeof(out->role));
  return JWT_OK;
}

int jwt_verify_hs256(const char *token, const char *secret, int64_t now_s, int64_t leeway_s, struct jwt_claims *out) {
  memset(out, 0, sizeof(*out));
  size_t len = strlen(token);
  if (!secret || !*secret || len > JWT_MAX_LEN)
    return JWT_MALFORMED;
  const char *dot1 = memchr(token, '.', len);
  const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
  if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
    return JWT_MALFORMED;

  json_t *header = decode_json_part(token, (size_t)(dot1 - token));
  if (!header)
    return JWT_MALFORMED;
  const char *alg = json_string_value(json_object_get(header, "alg"));
  bool alg_ok = alg && !strcmp(alg, "HS256");
  json_decref(header);
  if (!alg_ok)
    return JWT_BAD_ALG;

  unsigned char sig[64];
  size_t siglen;
  const char *sigtext = dot2 + 1;
  size_t sigtextlen = len - (size_t)(sigtext - token);
  if (sigtextlen > 86 || b64url_decode(sigtext, sigtextlen, sig, &siglen) || siglen != 32)
    return JWT_BAD_SIGNATURE;
  unsigned char mac[32];
  if (!hs256(secret, token, (size_t)(dot2 - token), mac) || CRYPTO_memcmp(mac, sig, 32) != 0)
    return JWT_BAD_SIGNATURE;

  json_t *claims = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
  if (!claims)
    return JWT_MALFORMED;
  int r = check_claims(claims, now_s, leeway_s, out);
  json_decref(claims);
  return r;
}

char *jwt_sign_hs256(const char *claims_json, const char *secret) {
  static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  size_t clen = strlen(claims_json);
  if (clen > JWT_MAX_LEN)
    return NULL;
  char *tok = malloc((sizeof(header) + clen) * 4 / 3 + 64);
  if (!tok)
    return NULL;
  size_t n = b64url_encode((const unsigned char *)header, sizeof(header) - 1, tok);
  tok[n++] = '.';
  n += b64url_encode((const unsigned char *)claims_json, clen, tok + n);
  unsigned char mac[32];
  if (!hs256(secret, tok, n, mac)) {
    free(tok);
    return NULL;
  }
  tok[n++] = '.';
  b64url_encode(mac, 32, tok + n);
  return tok;
}
