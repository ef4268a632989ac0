/* jwt: verification of the HS256 JSON Web Tokens a hosting site gives its
 * viewers (RFC 7519 / RFC 7515 compact form), with OpenSSL's HMAC.
 *
 * Only alg HS256 is accepted (never "none", never another alg named by the
 * token: the secret decides). The signature is compared in constant time;
 * `exp` is required and checked; `nbf` is honoured when present. Claims we
 * use: sub (the user id), name, role ("viewer" or "moderator"). No state:
 * any thread may call it. */
#ifndef GALARELAY_CHAT_JWT_H
#define GALARELAY_CHAT_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_LEN 4096

struct jwt_claims {
  char sub[97];
  char name[129];
  char role[33]; /* "" when absent */
  int64_t exp;   /* seconds since the epoch */
};

/* Why a token is refused: negative codes below every errno value, so they
 * share an int with errno-style codes. */
enum {
  JWT_OK = 0,
  JWT_MALFORMED = -1201, /* not three base64url parts of JSON, or claims missing */
  JWT_BAD_ALG = -1202,
  JWT_BAD_SIGNATURE = -1203,
  JWT_EXPIRED = -1204, /* or not yet valid (nbf) */
};

/* "malformed", "bad_alg", "bad_signature", "expired"; "ok" for 0;
 * strerror(-code) for any other code. */
const char *jwt_strerror(int code);

/* now_s: the current time in seconds since the epoch. leeway_s tolerates
 * that much clock skew on exp/nbf. Returns 0 (*out filled) or a JWT_*
 * code. */
int jwt_verify_hs256(const char *token, const char *secret, int64_t now_s, int64_t leeway_s, struct jwt_claims *out);

/* Sign claims (a JSON object text) with HS256 into a new malloc'd token;
 * for tests and tools. NULL on error. */
char *jwt_sign_hs256(const char *claims_json, const char *secret);

#endif
