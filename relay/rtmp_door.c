/* rtmp_door: connection slots and who makes room. See the header.
 *
 * The unauthenticated connections of one address form a list, oldest
 * first, hung off a small struct found by hashing the address text. The
 * table-full victim is found by walking those groups: at most one per
 * unauthenticated connection, and only when the table is full. */
#include "relay/rtmp_door.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rtmp_door_peer {
  struct rtmp_door_peer *next; /* hash chain */
  struct rtmp_door_entry *oldest, *newest;
  int count;
  char ip[64];
};

static unsigned door_hash(const char *ip) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *ip; ip++)
    h = (h ^ (uint8_t)*ip) * 16777619u;
  return h % RTMP_DOOR_BUCKETS;
}

void rtmp_door_init(struct rtmp_door *d) { memset(d, 0, sizeof *d); }

void rtmp_door_free(struct rtmp_door *d) {
  for (int i = 0; i < RTMP_DOOR_BUCKETS; i++) {
    while (d->bucket[i]) {
      struct rtmp_door_peer *p = d->bucket[i];
      d->bucket[i] = p->next;
      free(p);
    }
  }
  d->peers = 0;
}

static struct rtmp_door_peer *door_peer(struct rtmp_door *d, const char *ip) {
  unsigned h = door_hash(ip);
  for (struct rtmp_door_peer *p = d->bucket[h]; p; p = p->next)
    if (strcmp(p->ip, ip) == 0)
      return p;
  struct rtmp_door_peer *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  snprintf(p->ip, sizeof p->ip, "%s", ip);
  p->next = d->bucket[h];
  d->bucket[h] = p;
  d->peers++;
  return p;
}

static void door_peer_release(struct rtmp_door *d, struct rtmp_door_peer *p) {
  if (p->count > 0)
    return;
  struct rtmp_door_peer **pp = &d->bucket[door_hash(p->ip)];
  while (*pp != p)
    pp = &(*pp)->next;
  *pp = p->next;
  d->peers--;
  free(p);
}

static void door_unlink(struct rtmp_door *d, struct rtmp_door_entry *e) {
  struct rtmp_door_peer *p = e->peer;
  if (e->prev)
    e->prev->next = e->next;
  else
    p->oldest = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    p->newest = e->prev;
  e->prev = e->next = NULL;
  e->peer = NULL;
  p->count--;
  door_peer_release(d, p);
}

static int door_link(struct rtmp_door *d, struct rtmp_door_entry *e, const char *ip) {
  struct rtmp_door_peer *p = door_peer(d, ip ? ip : "?");
  if (!p)
    return -ENOMEM;
  e->peer = p;
  e->prev = p->newest;
  e->next = NULL;
  if (p->newest)
    p->newest->next = e;
  else
    p->oldest = e;
  p->newest = e;
  p->count++;
  return 0;
}

int rtmp_door_set(struct rtmp_door *d, struct rtmp_door_entry *e, enum rtmp_door_class cls, const char *ip,
                  uint64_t now) {
  if (e->cls == cls)
    return 0;
  if (e->cls == RTMP_DOOR_UNAUTH)
    door_unlink(d, e);
  if (e->cls != RTMP_DOOR_NONE)
    d->count[e->cls]--;
  e->cls = RTMP_DOOR_NONE;
  if (cls == RTMP_DOOR_UNAUTH && door_link(d, e, ip) < 0)
    return -ENOMEM;
  e->cls = cls;
  e->since = now;
  if (cls != RTMP_DOOR_NONE)
    d->count[cls]++;
  return 0;
}

/* The oldest unauthenticated connection of the address holding the most
 * (ties: the oldest), never the newcomer. */
static struct rtmp_door_entry *door_victim(const struct rtmp_door *d, const struct rtmp_door_entry *newcomer) {
  struct rtmp_door_entry *best = NULL;
  int best_count = 0;
  for (int i = 0; i < RTMP_DOOR_BUCKETS; i++) {
    for (struct rtmp_door_peer *p = d->bucket[i]; p; p = p->next) {
      struct rtmp_door_entry *e = p->oldest == newcomer ? newcomer->next : p->oldest;
      int count = p->count - (p == newcomer->peer);
      if (!e || count < best_count)
        continue;
      if (count > best_count || e->since < best->since) {
        best = e;
        best_count = count;
      }
    }
  }
  return best;
}

enum rtmp_door_verdict rtmp_door_check(const struct rtmp_door *d, const struct rtmp_door_entry *newcomer,
                                       const struct rtmp_door_limits *lim, struct rtmp_door_entry **victim) {
  *victim = NULL;
  const struct rtmp_door_peer *p = newcomer->peer;
  if (p && p->count > lim->per_address && p->oldest != newcomer) {
    *victim = p->oldest;
    return RTMP_DOOR_EVICT_PER_ADDRESS;
  }
  enum rtmp_door_verdict why = RTMP_DOOR_ADMIT;
  if (rtmp_door_total(d) > lim->max_connections)
    why = RTMP_DOOR_EVICT_FULL;
  else if (lim->over_memory && d->count[RTMP_DOOR_UNAUTH] > lim->reserve)
    why = RTMP_DOOR_EVICT_MEMORY;
  if (why == RTMP_DOOR_ADMIT)
    return why;
  *victim = door_victim(d, newcomer);
  return *victim ? why : RTMP_DOOR_REFUSE_FULL;
}

int rtmp_door_player_limit(const struct rtmp_door_limits *lim) {
  int n = lim->max_connections - lim->stream_keys - lim->reserve;
  return n > 0 ? n : 0;
}

enum rtmp_door_verdict rtmp_door_check_play(const struct rtmp_door *d, const struct rtmp_door_limits *lim) {
  if (lim->over_memory)
    return RTMP_DOOR_REFUSE_MEMORY;
  if (d->count[RTMP_DOOR_PLAYER] >= rtmp_door_player_limit(lim))
    return RTMP_DOOR_REFUSE_PLAYERS;
  return RTMP_DOOR_ADMIT;
}

const char *rtmp_door_reason(enum rtmp_door_verdict v) {
  static const char *const reason[RTMP_DOOR_VERDICTS] = {
      [RTMP_DOOR_ADMIT] = "",
      [RTMP_DOOR_EVICT_PER_ADDRESS] = "per_address",
      [RTMP_DOOR_EVICT_MEMORY] = "memory",
      [RTMP_DOOR_EVICT_FULL] = "max_connections",
      [RTMP_DOOR_REFUSE_FULL] = "max_connections",
      [RTMP_DOOR_REFUSE_MEMORY] = "memory",
      [RTMP_DOOR_REFUSE_PLAYERS] = "player_limit",
  };
  return (unsigned)v < RTMP_DOOR_VERDICTS ? reason[v] : "";
}

int rtmp_door_count(const struct rtmp_door *d, enum rtmp_door_class cls) {
  return cls == RTMP_DOOR_NONE ? 0 : d->count[cls];
}

int rtmp_door_total(const struct rtmp_door *d) {
  return d->count[RTMP_DOOR_UNAUTH] + d->count[RTMP_DOOR_PUBLISHER] + d->count[RTMP_DOOR_PLAYER];
}
