/* netaddr: the client key of an address (see netaddr.h for why a /64). */
#include "core/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

void netaddr_client_key(const char *addr, char *out, size_t len) {
  struct in6_addr a6;
  char text[INET6_ADDRSTRLEN];
  if (strchr(addr, ':') && inet_pton(AF_INET6, addr, &a6) == 1) {
    if (IN6_IS_ADDR_V4MAPPED(&a6)) { /* ::ffff:192.0.2.1 is 192.0.2.1 */
      if (inet_ntop(AF_INET, a6.s6_addr + 12, text, sizeof text)) {
        snprintf(out, len, "%s", text);
        return;
      }
    } else {
      memset(a6.s6_addr + 8, 0, 8);
      if (inet_ntop(AF_INET6, &a6, text, sizeof text)) {
        snprintf(out, len, "%s/64", text);
        return;
      }
    }
  }
  snprintf(out, len, "%s", addr);
}
