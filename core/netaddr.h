/* netaddr: who a client is, for per-address limits and counts.
 *
 * One household or one host gets a whole IPv6 /64 and can pick any of its
 * 2^64 addresses per connection, so every per-address rule (the RTMP door,
 * the chat's connection and rate limits, parked HLS requests, viewer
 * counts) names an IPv6 client by its /64. An IPv4-mapped IPv6 address is
 * the IPv4 address it carries. Pure functions; any thread. */
#ifndef GALARELAY_NETADDR_H
#define GALARELAY_NETADDR_H

#include <stddef.h>

/* The longest key netaddr_client_key writes, with its terminator. */
#define NETADDR_KEY_MAX 64

/* The client key of a textual address into out: "203.0.113.7" as it is,
 * "2001:db8:1:2::/64" for any address of that /64, "203.0.113.7" for
 * "::ffff:203.0.113.7"; anything else (a name, "unknown", garbage) is
 * copied as it is, truncated to len. */
void netaddr_client_key(const char *addr, char *out, size_t len);

#endif
