/* fuzz_chat_jwt: jwt_verify_hs256 over arbitrary tokens, and over tokens
 * signed with the right secret around arbitrary claims (so the fuzzer gets
 * past the signature to the claims checks).
 *
 * Input: first byte even -> the rest is a token; odd -> the rest is the
 * claims text, signed with the secret, then verified. A verified token's
 * claims are NUL-terminated within their fields; the same token verified
 * with another secret must fail on its signature. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jwt.h"
#include "tests/fuzz/fuzz_text.h"

#define SECRET "fuzz-secret"
#define NOW 1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_claims(const struct jwt_claims *c) {
  if (!memchr(c->sub, '\0', sizeof c->sub) || !memchr(c->name, '\0', sizeof c->name) ||
      !memchr(c->role, '\0', sizeof c->role))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = size ? fuzz_text(data + 1, size - 1) : NULL; /* data[0] picks the mode */
  if (!text)
    return 0;
  struct jwt_claims claims;
  if (data[0] % 2 == 0) {
    if (jwt_verify_hs256(text, SECRET, NOW, 30, &claims) == JWT_OK)
      check_claims(&claims);
    free(text);
    return 0;
  }
  char *tok = jwt_sign_hs256(text, SECRET);
  free(text);
  if (!tok)
    return 0;
  int r = jwt_verify_hs256(tok, SECRET, NOW, 30, &claims);
  if (r == JWT_OK)
    check_claims(&claims);
  if (r != JWT_MALFORMED && jwt_verify_hs256(tok, "another-secret", NOW, 30, &claims) != JWT_BAD_SIGNATURE)
    abort(); /* the signature decides before any claim is believed */
  free(tok);
  return 0;
}
