/* rtmp_test_client: what an RTMP client sends, as bytes, for unit tests of
 * the server side (the session state machine, the server on the loop): a
 * plain handshake and AMF0 commands in the order ffmpeg and OBS send them.
 * Socket-free: the caller decides how the bytes reach the server. */
#ifndef GALARELAY_RTMP_TEST_CLIENT_H
#define GALARELAY_RTMP_TEST_CLIENT_H

#include <stdint.h>

struct buf;

/* C0 + C1 (no digest: the plain handshake) + C2 at once: the server does
 * not check C2, so nothing has to wait for S1. */
void rtmp_test_client_handshake(struct buf *out);
/* One command on the command chunk stream with a 128-byte chunk size:
 * "connect" carries app=live; any other gets null and then arg (if not
 * NULL). sid: the message stream (1 for publish and play). */
void rtmp_test_client_command(struct buf *out, const char *name, double txid, const char *arg, uint32_t sid);

#endif
