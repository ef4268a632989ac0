/* rtmp_handshake: the RTMP handshake, server and client side, socket-free.
 *
 * Server: the peer sends C0 (version 3) + C1 (1536 bytes); we answer S0 +
 * S1 + S2 and wait for C2 (1536 bytes, not checked: clients disagree on
 * what they echo). If C1 carries a valid Flash digest (the "complex"
 * handshake some Flash-era encoders insist on: HMAC-SHA256 over C1 keyed
 * with the Flash Player key, at one of two offset schemes), S1 and S2 are
 * built with digests the client can verify; otherwise S1 is random and S2
 * echoes C1 (the plain handshake).
 *
 * Client (restream): C0 + C1 plain, read S0 + S1 + S2, answer C2 = S1.
 *
 * Fed incrementally: any number of bytes per call. The state is the
 * caller's (one per connection, any thread); a failure is -EPROTO. */
#ifndef GALARELAY_RTMP_HANDSHAKE_H
#define GALARELAY_RTMP_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTMP_HANDSHAKE_SIZE 1536

enum rtmp_hs_state {
  RTMP_HS_WAIT_C0C1,   /* server: reading C0 + C1 */
  RTMP_HS_WAIT_C2,     /* server: S0S1S2 sent, reading C2 */
  RTMP_HS_WAIT_S0S1S2, /* client: C0C1 sent */
  RTMP_HS_DONE,
  RTMP_HS_FAILED,
};

struct rtmp_handshake {
  enum rtmp_hs_state state;
  bool complex; /* server: the client used the digest handshake */
  int scheme;   /* 0 or 1: where the digest was found */
  size_t have;  /* bytes of the current phase received */
  uint8_t in[1 + 2 * RTMP_HANDSHAKE_SIZE];
  uint8_t c1s1[RTMP_HANDSHAKE_SIZE]; /* what we sent as C1 (client) */
};

/* Output callback: bytes to send to the peer. */
typedef void (*rtmp_hs_send_fn)(void *opaque, const uint8_t *data, size_t len);

void rtmp_handshake_server_init(struct rtmp_handshake *hs);
/* Sends C0 + C1 at once through send. */
void rtmp_handshake_client_init(struct rtmp_handshake *hs, rtmp_hs_send_fn send, void *opaque);

/* Consume up to len bytes; returns how many were used (the rest belongs to
 * the chunk stream once state is DONE), or -EPROTO if the handshake failed
 * (bad version). */
long rtmp_handshake_feed(struct rtmp_handshake *hs, const uint8_t *data, size_t len, rtmp_hs_send_fn send,
                         void *opaque);

/* Digest helpers, exposed for tests: the offset of the 32-byte digest in a
 * 1536-byte packet for scheme 0 or 1, and whether the packet carries a
 * digest made with the client (Flash Player) or server (FMS) key. */
size_t rtmp_handshake_digest_pos(const uint8_t *pkt, int scheme);
bool rtmp_handshake_check_digest(const uint8_t *pkt, int scheme, bool server_key);
/* Write a digest into pkt for scheme, keyed with client or server key. */
void rtmp_handshake_put_digest(uint8_t *pkt, int scheme, bool server_key);
/* Check S2 built for the digest found in C1 (what a Flash client does). */
bool rtmp_handshake_check_s2(const uint8_t *s2, const uint8_t *c1, int scheme);

#endif
