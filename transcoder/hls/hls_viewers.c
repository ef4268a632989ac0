/* hls_viewers: distinct HLS client addresses per channel (see hls_viewers.h).
 *
 * Each channel's set is a pool of entries, an index of linear-probing slots
 * into it (twice as many slots as entries, so probes stay short), and an
 * age list through the pool. Expiry removes an entry from the index by
 * shifting the rest of its probe run back (no tombstones), so the index
 * never fills with dead keys however many addresses come and go. */
#include "transcoder/hls/hls_viewers.h"

#include "core/netaddr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

struct viewer {
  uint64_t hash;
  uint64_t seen_ms;
  uint32_t older, newer; /* the age list; a free entry links on `newer` */
};

struct viewer_set {
  char channel[64];
  struct viewer *pool; /* capacity entries, handed out from the start */
  uint32_t *index;     /* mask + 1 slots: pool position + 1, 0 = empty */
  uint32_t mask;
  uint32_t count; /* entries on the age list */
  uint32_t used;  /* pool entries handed out at least once */
  uint32_t free_list;
  uint32_t oldest, newest;
  uint64_t last_ms;          /* the latest sighting: time never goes back */
  uint64_t refused_until_ms; /* saturated while now is before this */
};

struct hls_viewers {
  uint32_t capacity, slots;
  uint64_t window_ms, seed;
  struct viewer_set *sets[HLS_VIEWERS_MAX_CHANNELS];
  int set_count;
};

struct hls_viewers *hls_viewers_new(uint32_t capacity, uint64_t window_ms, uint64_t seed) {
  if (capacity == 0 || capacity > (1u << 30))
    return NULL;
  struct hls_viewers *v = calloc(1, sizeof *v);
  if (!v)
    return NULL;
  v->capacity = capacity;
  v->slots = 2;
  while (v->slots < 2 * capacity)
    v->slots *= 2;
  v->window_ms = window_ms;
  v->seed = seed;
  return v;
}

static void set_free(struct viewer_set *s) {
  if (!s)
    return;
  free(s->pool);
  free(s->index);
  free(s);
}

void hls_viewers_free(struct hls_viewers *v) {
  if (!v)
    return;
  for (int i = 0; i < v->set_count; i++)
    set_free(v->sets[i]);
  free(v);
}

/* splitmix64's finalizer: every input bit reaches the low (slot) bits. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/* FNV-1a over n bytes, keyed by seed, then mixed. */
static uint64_t keyed_hash(uint64_t seed, const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return mix64(h ^ seed);
}

uint64_t hls_addr_key(uint64_t seed, const char *addr) {
  char key[NETADDR_KEY_MAX]; /* an IPv6 client is its /64 (core/netaddr.h) */
  netaddr_client_key(addr, key, sizeof key);
  return keyed_hash(seed, (const unsigned char *)key, strlen(key));
}

uint64_t hls_viewers_hash(const struct hls_viewers *v, const char *addr) { return hls_addr_key(v->seed, addr); }

/* The entry with this hash (NIL if none); *slot is where it is, or the
 * empty slot where it would go. The index is at most half full, so the
 * probe always ends. */
static uint32_t find(const struct viewer_set *s, uint64_t hash, uint32_t *slot) {
  uint32_t i = (uint32_t)hash & s->mask;
  while (s->index[i]) {
    uint32_t e = s->index[i] - 1;
    if (s->pool[e].hash == hash) {
      *slot = i;
      return e;
    }
    i = (i + 1) & s->mask;
  }
  *slot = i;
  return NIL;
}

/* Empty slot i and move later members of its probe run back into the hole
 * when their home slot allows it (Knuth's algorithm R), so that every
 * remaining key is still found from its home slot. */
static void index_remove(struct viewer_set *s, uint32_t i) {
  for (uint32_t j = i;;) {
    j = (j + 1) & s->mask;
    if (!s->index[j])
      break;
    uint32_t home = (uint32_t)s->pool[s->index[j] - 1].hash & s->mask;
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays)
      continue;
    s->index[i] = s->index[j];
    i = j;
  }
  s->index[i] = 0;
}

static void age_unlink(struct viewer_set *s, uint32_t e) {
  struct viewer *x = &s->pool[e];
  if (x->older != NIL)
    s->pool[x->older].newer = x->newer;
  else
    s->oldest = x->newer;
  if (x->newer != NIL)
    s->pool[x->newer].older = x->older;
  else
    s->newest = x->older;
}

static void age_append(struct viewer_set *s, uint32_t e) {
  struct viewer *x = &s->pool[e];
  x->older = s->newest;
  x->newer = NIL;
  if (s->newest != NIL)
    s->pool[s->newest].newer = e;
  else
    s->oldest = e;
  s->newest = e;
}

/* Take up to max entries not seen within the window off the old end. */
static void expire(struct viewer_set *s, uint64_t window_ms, uint64_t now, uint32_t max) {
  for (; max > 0 && s->oldest != NIL; max--) {
    uint32_t e = s->oldest;
    if (now - s->pool[e].seen_ms < window_ms)
      break;
    uint32_t slot;
    find(s, s->pool[e].hash, &slot);
    index_remove(s, slot);
    age_unlink(s, e);
    s->pool[e].newer = s->free_list;
    s->free_list = e;
    s->count--;
  }
}

static void set_clear(struct viewer_set *s) {
  memset(s->index, 0, ((size_t)s->mask + 1) * sizeof *s->index);
  s->count = s->used = 0;
  s->free_list = s->oldest = s->newest = NIL;
  s->last_ms = s->refused_until_ms = 0;
}

static struct viewer_set *set_new(const struct hls_viewers *v) {
  struct viewer_set *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->pool = calloc(v->capacity, sizeof *s->pool);
  s->index = calloc(v->slots, sizeof *s->index);
  if (!s->pool || !s->index) {
    set_free(s);
    return NULL;
  }
  s->mask = v->slots - 1;
  s->free_list = s->oldest = s->newest = NIL;
  return s;
}

static struct viewer_set *lookup(const struct hls_viewers *v, const char *channel) {
  for (int i = 0; i < v->set_count; i++)
    if (strcmp(v->sets[i]->channel, channel) == 0)
      return v->sets[i];
  return NULL;
}

/* The channel's set, made (or taken over from a channel nobody has
 * watched for a window) on its first sighting; NULL when not counted. */
static struct viewer_set *obtain(struct hls_viewers *v, const char *channel, uint64_t now) {
  struct viewer_set *s = lookup(v, channel);
  if (s || strlen(channel) >= sizeof s->channel)
    return s;
  if (v->set_count < HLS_VIEWERS_MAX_CHANNELS) {
    s = set_new(v);
    if (s)
      v->sets[v->set_count++] = s;
  } else {
    for (int i = 0; i < v->set_count && !s; i++) {
      struct viewer_set *old = v->sets[i];
      if (now >= old->last_ms + v->window_ms && now >= old->refused_until_ms) {
        set_clear(old);
        s = old;
      }
    }
  }
  if (s)
    snprintf(s->channel, sizeof s->channel, "%s", channel);
  return s;
}

void hls_viewers_seen(struct hls_viewers *v, const char *channel, uint64_t addr_hash, uint64_t now_ms) {
  struct viewer_set *s = v ? obtain(v, channel, now_ms) : NULL;
  if (!s)
    return;
  if (now_ms < s->last_ms)
    now_ms = s->last_ms; /* keeps the age list in order */
  s->last_ms = now_ms;
  expire(s, v->window_ms, now_ms, HLS_VIEWERS_EXPIRE_STEP);
  uint32_t slot, e = find(s, addr_hash, &slot);
  if (e != NIL) {
    s->pool[e].seen_ms = now_ms;
    if (e != s->newest) {
      age_unlink(s, e);
      age_append(s, e);
    }
    return;
  }
  if (s->count == v->capacity) {
    /* the oldest entry is live (expire above would have taken it): full */
    s->refused_until_ms = now_ms + v->window_ms;
    return;
  }
  if (s->free_list != NIL) {
    e = s->free_list;
    s->free_list = s->pool[e].newer;
  } else {
    e = s->used++;
  }
  s->pool[e].hash = addr_hash;
  s->pool[e].seen_ms = now_ms;
  age_append(s, e);
  s->index[slot] = e + 1;
  s->count++;
}

uint32_t hls_viewers_count(struct hls_viewers *v, const char *channel, uint64_t now_ms, bool *saturated) {
  struct viewer_set *s = v ? lookup(v, channel) : NULL;
  if (saturated)
    *saturated = false;
  if (!s)
    return 0;
  if (now_ms < s->last_ms)
    now_ms = s->last_ms;
  expire(s, v->window_ms, now_ms, UINT32_MAX);
  if (saturated)
    *saturated = now_ms < s->refused_until_ms;
  return s->count;
}
