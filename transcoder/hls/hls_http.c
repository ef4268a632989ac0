/* hls_http: the "/hls/" route (see hls_http.h). Parses the URL, answers
 * from the store, or parks the request as a store waiter: the store pokes
 * it when its rendition changes, when hls.block_timeout passes, or when the
 * rendition goes away; the client leaving first cancels it (http_park's
 * on_close). Everything here runs on the loop thread. */
#include "transcoder/hls/hls_http.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/http.h"
#include "core/log.h"
#include "core/metrics.h"
#include "transcoder/hls/hls_model.h"
#include "transcoder/hls/hls_store_int.h"
#include "transcoder/hls/hls_window_int.h"
#include "transcoder/hls/hls_url.h"
#include "transcoder/hls/hls_viewers.h"

#define CORS "Access-Control-Allow-Origin: *\r\n"
#define H_PLAYLIST "Cache-Control: no-cache\r\n" CORS
#define H_MEDIA "Cache-Control: public, max-age=31536000, immutable\r\n" CORS
#define T_PLAYLIST "application/vnd.apple.mpegurl"
#define T_MP4 "video/mp4"

/* Bound on parked requests (all channels and renditions): past it a
 * blocking request is answered 503 at once, so clients that pile up parked
 * requests (HTTP/2 streams, many connections) cannot grow memory without
 * limit. Loop thread; the daemon has one server. */
#ifndef HLS_PARKED_MAX
#define HLS_PARKED_MAX 8192
#endif
static int parked_count;

/* Parked requests per client address (req->client_addr, an IPv6 /64 as
 * one: hls_addr_key), bounded by hls.max_parked_per_address so that one
 * client cannot take the global bound's slots from everyone else. A
 * request past it is answered 503 with Retry-After at once (not 429:
 * players retry a 5xx, and treat a 4xx as the end). One counter per
 * address with parked requests, in a chained table: at most one entry per
 * parked request, freed with its last one. */
#define ADDR_BUCKETS 1024
struct addr_parked {
  uint64_t key;
  int count;
  struct addr_parked *next;
};
static struct addr_parked *addr_buckets[ADDR_BUCKETS];
static uint64_t addr_seed;
static uint64_t refused_global, refused_address; /* galarelay_hls_parked_refused_total */

/* Who fetched what channel lately (hls_viewers.h); made by
 * hls_http_start, NULL without it (nothing is counted). Loop thread;
 * one server, as for parked_count. */
static struct hls_viewers *viewers;
/* The store the route serves: one per process, like the route table
 * (set by hls_http_start, cleared by hls_http_stop). */
static struct hls_server *served;

enum park_kind { PARK_MASTER, PARK_PLAYLIST, PARK_PART, PARK_SEGMENT };

struct parked {
  struct hls_waiter w; /* first: the store hands it back */
  struct hls_server *srv;
  struct lws *wsi;
  enum park_kind kind;
  char channel[HLS_URL_PART]; /* as long as a path part (hls_url_split) */
  char rendition[32];
  uint64_t msn;             /* PLAYLIST, SEGMENT */
  int part;                 /* PLAYLIST: -1 = whole segment */
  uint32_t timeline;        /* PART */
  uint64_t seq;             /* PART */
  struct addr_parked *addr; /* its client's counter */
};

static void error(struct lws *wsi, int status, const char *text) {
  http_respond_copy(wsi, status, "text/plain; charset=utf-8", H_PLAYLIST, text, strlen(text));
}

static void send_blob(struct lws *wsi, const char *type, const char *headers, struct hls_blob *b) {
  http_respond(wsi, 200, type, headers, b->data, b->len, hls_blob_release, b);
}

/* Answers with the master playlist if it can; false if not ready. */
static bool answer_master(struct lws *wsi, struct hls_stream *st, bool force) {
  if (!st || !hls_stream_live(st)) {
    error(wsi, 404, "channel not live\n");
    return true;
  }
  struct hls_stream_view v;
  hls__stream_view(st, &v);
  bool all = v.rendition_count > 0;
  for (int i = 0; i < v.rendition_count; i++)
    all &= v.renditions[i]->init_count > 0;
  if (!all && !force)
    return false;
  struct hls_blob *b = hls__stream_master(st);
  if (!b) {
    if (!force)
      return false;
    error(wsi, 404, "channel not live\n");
    return true;
  }
  send_blob(wsi, T_PLAYLIST, H_PLAYLIST, b);
  return true;
}

static bool answer_playlist(struct lws *wsi, struct hls_rendition *r) {
  struct hls_blob *b = r ? hls__rendition_playlist(r) : NULL;
  if (!b)
    return false;
  send_blob(wsi, T_PLAYLIST, H_PLAYLIST, b);
  return true;
}

/* The address's counter, made on its first parked request; NULL when out
 * of memory. */
static struct addr_parked *addr_obtain(uint64_t key) {
  struct addr_parked **head = &addr_buckets[key % ADDR_BUCKETS];
  for (struct addr_parked *a = *head; a; a = a->next)
    if (a->key == key)
      return a;
  struct addr_parked *a = calloc(1, sizeof *a);
  if (!a)
    return NULL;
  a->key = key;
  a->next = *head;
  *head = a;
  return a;
}

/* Free the counter once no parked request of its address is left. */
static void addr_drop_unused(struct addr_parked *a) {
  if (!a || a->count > 0)
    return;
  for (struct addr_parked **pp = &addr_buckets[a->key % ADDR_BUCKETS]; *pp; pp = &(*pp)->next) {
    if (*pp == a) {
      *pp = a->next;
      break;
    }
  }
  free(a);
}

static void addr_release(struct addr_parked *a) {
  if (a) {
    a->count--;
    addr_drop_unused(a);
  }
}

static void parked_free(struct parked *p) {
  addr_release(p->addr);
  free(p);
  parked_count--;
}

static void parked_close(void *arg) { /* the client left */
  struct parked *p = arg;
  hls__waiter_cancel(&p->w);
  parked_free(p);
}

static bool parked_poke(struct hls_waiter *w, enum hls_wake why) {
  struct parked *p = (struct parked *)w;
  struct hls_stream *st = hls_stream_find(p->srv, p->channel);
  struct hls_rendition *r = st && why != HLS_WAKE_GONE ? hls__stream_rendition(st, p->rendition) : NULL;
  bool done = true;
  switch (p->kind) {
  case PARK_MASTER:
    if (why == HLS_WAKE_GONE)
      error(p->wsi, 503, "shutting down\n");
    else
      done = answer_master(p->wsi, st, why == HLS_WAKE_TIMEOUT);
    break;
  case PARK_PLAYLIST:
    if (r && (why == HLS_WAKE_TIMEOUT || hls__rendition_has(r, p->msn, p->part) || !hls_stream_live(st)))
      done = answer_playlist(p->wsi, r);
    else
      done = false;
    if (!done && (why != HLS_WAKE_CHANGE || !r)) {
      error(p->wsi, why == HLS_WAKE_TIMEOUT ? 503 : 404, "playlist not available\n");
      done = true;
    }
    break;
  case PARK_PART: {
    struct hls_blob *b = r ? hls__rendition_part(r, p->timeline, p->seq) : NULL;
    if (b) {
      send_blob(p->wsi, T_MP4, H_MEDIA, hls_blob_ref(b));
    } else if (why == HLS_WAKE_CHANGE && r && r->timeline == p->timeline && r->next_part_seq <= p->seq &&
               hls_stream_live(st)) {
      done = false;
    } else {
      error(p->wsi, why == HLS_WAKE_TIMEOUT ? 503 : 404, "part not available\n");
    }
    break;
  }
  case PARK_SEGMENT: {
    struct hls_segment *s = r ? hls__rendition_segment(r, p->msn) : NULL;
    if (s && s->complete && s->data)
      send_blob(p->wsi, T_MP4, H_MEDIA, hls_blob_ref(s->data));
    else if (why == HLS_WAKE_CHANGE && s && !s->complete)
      done = false;
    else
      error(p->wsi, why == HLS_WAKE_TIMEOUT ? 503 : 404, "segment not available\n");
    break;
  }
  }
  if (done)
    parked_free(p);
  return done;
}

static void busy(struct lws *wsi, const char *text) {
  http_respond_copy(wsi, 503, "text/plain; charset=utf-8", H_PLAYLIST "Retry-After: 1\r\n", text, strlen(text));
}

static int park(struct http_request *req, struct hls_server *srv, struct hls_stream *st, struct hls_rendition *r,
                struct parked *tmpl) {
  int per_address = hls__server_max_parked_per_address(srv);
  struct addr_parked *a = addr_obtain(hls_addr_key(addr_seed, req->client_addr ? req->client_addr : ""));
  if (a && per_address > 0 && a->count >= per_address) {
    if (refused_address++ % 1000 == 0) /* one line per thousand: the metric counts them all */
      log_warn("hls", "parked requests per address at the bound addr=%s max=%d refused=%" PRIu64,
               req->client_addr ? req->client_addr : "", per_address, refused_address);
    busy(req->wsi, "busy: too many waiting requests from this address\n");
    return HTTP_DONE;
  }
  struct parked *p = a && parked_count < HLS_PARKED_MAX ? malloc(sizeof *p) : NULL;
  if (!p) {
    if (refused_global++ % 1000 == 0)
      log_warn("hls", "parked requests at the bound max=%d refused=%" PRIu64, HLS_PARKED_MAX, refused_global);
    addr_drop_unused(a); /* made for this request alone */
    busy(req->wsi, "busy\n");
    return HTTP_DONE;
  }
  a->count++;
  parked_count++;
  *p = *tmpl;
  p->addr = a;
  p->srv = srv;
  p->wsi = req->wsi;
  struct hls_stream_view v;
  hls__stream_view(st, &v);
  memset(&p->w, 0, sizeof p->w);
  p->w.poke = parked_poke;
  p->w.deadline_ms = uv_now(hls__server_loop(srv)) + (uint64_t)(v.block_timeout * 1000);
  if (r)
    hls__waiter_add(r, &p->w);
  else
    hls__waiter_add_stream(st, &p->w);
  http_park(req->wsi, (int)ceil(v.block_timeout) + 2, parked_close, p);
  return HTTP_PARKED;
}

static int serve_playlist(struct http_request *req, struct hls_server *srv, struct hls_stream *st,
                          struct hls_rendition *r) {
  int64_t msn, part;
  hls_url_query(req->query, &msn, &part);
  if (msn == -2 || part == -2 || (part >= 0 && msn < 0)) {
    error(req->wsi, 400, "bad _HLS_msn/_HLS_part\n");
    return HTTP_DONE;
  }
  if (msn < 0) {
    if (!answer_playlist(req->wsi, r))
      error(req->wsi, 404, "no segments yet\n");
    return HTTP_DONE;
  }
  uint64_t last_msn;
  int last_part;
  struct hls_stream_view v;
  hls__stream_view(st, &v);
  if (hls__rendition_last(r, &last_msn, &last_part)) {
    /* RFC 8216bis 6.2.5.2: too far ahead is a 400 at once */
    int limit = v.part_target < 1.0 ? (int)(3.0 / v.part_target) : 3;
    if ((uint64_t)msn > last_msn + 2 || ((uint64_t)msn == last_msn && part > last_part + limit) ||
        ((uint64_t)msn > last_msn && part > limit)) {
      error(req->wsi, 400, "_HLS_msn/_HLS_part too far in the future\n");
      return HTTP_DONE;
    }
    if (hls__rendition_has(r, (uint64_t)msn, (int)part) || !v.live) {
      answer_playlist(req->wsi, r);
      return HTTP_DONE;
    }
  } else if (!v.live) {
    error(req->wsi, 404, "no segments\n");
    return HTTP_DONE;
  }
  struct parked t = {.kind = PARK_PLAYLIST, .msn = (uint64_t)msn, .part = (int)part};
  snprintf(t.channel, sizeof t.channel, "%s", v.channel);
  snprintf(t.rendition, sizeof t.rendition, "%s", r->desc.name);
  return park(req, srv, st, r, &t);
}

/* Media names are parsed strictly: a number is decimal digits without a
 * sign, blanks or leading zeros, and fits its field. strtoul/sscanf would
 * take "seg-005", "seg-+5", "seg- 5" as seg-5: one object under many URLs,
 * so many cache entries at an edge and a way around the cache. */
static bool take_literal(const char **p, const char *lit) {
  size_t n = strlen(lit);
  if (strncmp(*p, lit, n) != 0)
    return false;
  *p += n;
  return true;
}

static bool take_number(const char **p, uint64_t max, uint64_t *out) {
  const char *s = *p;
  if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
    return false;
  uint64_t v = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    uint64_t d = (uint64_t)(*s - '0');
    if (v > (max - d) / 10)
      return false; /* past max: no such object */
    v = v * 10 + d;
  }
  *out = v;
  *p = s;
  return true;
}

/* "init-T.mp4", "seg-MSN.m4s", "part-T-SEQ.m4s"; false if file is not one. */
static bool parse_init(const char *file, uint64_t *timeline) {
  return take_literal(&file, "init-") && take_number(&file, UINT32_MAX, timeline) && strcmp(file, ".mp4") == 0;
}

static bool parse_segment(const char *file, uint64_t *msn) {
  return take_literal(&file, "seg-") && take_number(&file, UINT64_MAX, msn) && strcmp(file, ".m4s") == 0;
}

static bool parse_part(const char *file, uint64_t *timeline, uint64_t *seq) {
  return take_literal(&file, "part-") && take_number(&file, UINT32_MAX, timeline) && take_literal(&file, "-") &&
         take_number(&file, UINT64_MAX, seq) && strcmp(file, ".m4s") == 0;
}

static int serve_file(struct http_request *req, struct hls_server *srv, struct hls_stream *st, struct hls_rendition *r,
                      const char *file) {
  uint64_t a, b;
  struct parked t = {0};
  snprintf(t.channel, sizeof t.channel, "%s", hls_stream_channel(st));
  snprintf(t.rendition, sizeof t.rendition, "%s", r->desc.name);
  if (parse_init(file, &a)) {
    struct hls_blob *blob = hls__rendition_init(r, (uint32_t)a);
    if (!blob) {
      error(req->wsi, 404, "no such init\n");
      return HTTP_DONE;
    }
    send_blob(req->wsi, T_MP4, H_MEDIA, hls_blob_ref(blob));
    return HTTP_DONE;
  }
  if (parse_segment(file, &a)) {
    struct hls_segment *s = hls__rendition_segment(r, a);
    if (s && s->complete && s->data) {
      send_blob(req->wsi, T_MP4, H_MEDIA, hls_blob_ref(s->data));
      return HTTP_DONE;
    }
    if (!s || s->complete || !hls_stream_live(st)) {
      error(req->wsi, 404, "no such segment\n");
      return HTTP_DONE;
    }
    t.kind = PARK_SEGMENT; /* the open one: answered when it closes */
    t.msn = a;
    return park(req, srv, st, r, &t);
  }
  if (parse_part(file, &a, &b)) {
    struct hls_blob *blob = hls__rendition_part(r, (uint32_t)a, b);
    if (blob) {
      send_blob(req->wsi, T_MP4, H_MEDIA, hls_blob_ref(blob));
      return HTTP_DONE;
    }
    /* the preload hint names the next part: hold it until it is complete */
    if (hls_stream_live(st) && r->timeline == a && b == r->next_part_seq) {
      t.kind = PARK_PART;
      t.timeline = (uint32_t)a;
      t.seq = b;
      return park(req, srv, st, r, &t);
    }
    error(req->wsi, 404, "no such part\n");
    return HTTP_DONE;
  }
  error(req->wsi, 404, "not found\n");
  return HTTP_DONE;
}

int hls_http_handle(struct http_request *req) {
  struct hls_server *srv = served;
  if (strcmp(req->method, "OPTIONS") == 0) {
    http_respond(req->wsi, 204, "text/plain",
                 CORS "Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n"
                      "Access-Control-Allow-Headers: *\r\nAccess-Control-Max-Age: 86400\r\n",
                 "", 0, NULL, NULL);
    return HTTP_DONE;
  }
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
    error(req->wsi, 405, "method not allowed\n");
    return HTTP_DONE;
  }
  const char *path = req->path;
  if (!srv || strncmp(path, "/hls/", 5) != 0) {
    error(req->wsi, 404, "not found\n");
    return HTTP_DONE;
  }
  char parts[3][HLS_URL_PART];
  int n = hls_url_split(path + 5, parts);
  struct hls_stream *st = n >= 2 && n <= 3 ? hls_stream_find(srv, parts[0]) : NULL;
  if (st && viewers && req->client_addr) /* a known channel: its names are bounded */
    hls_viewers_seen(viewers, parts[0], hls_viewers_hash(viewers, req->client_addr), uv_now(hls__server_loop(srv)));
  if (n == 2 && strcmp(parts[1], "master.m3u8") == 0) {
    if (st && hls_stream_live(st) && !answer_master(req->wsi, st, false)) {
      struct parked t = {.kind = PARK_MASTER}; /* inits not all there yet */
      snprintf(t.channel, sizeof t.channel, "%s", parts[0]);
      return park(req, srv, st, NULL, &t);
    }
    if (!st || !hls_stream_live(st))
      error(req->wsi, 404, "channel not live\n");
    return HTTP_DONE;
  }
  struct hls_rendition *r = st && n == 3 ? hls__stream_rendition(st, parts[1]) : NULL;
  if (!r) {
    error(req->wsi, 404, "not found\n");
    return HTTP_DONE;
  }
  if (strcmp(parts[2], "index.m3u8") == 0)
    return serve_playlist(req, srv, st, r);
  return serve_file(req, srv, st, r, parts[2]);
}

uint32_t hls_http_viewers(struct hls_server *srv, const char *channel, bool *saturated) {
  if (!srv || !viewers) {
    if (saturated)
      *saturated = false;
    return 0;
  }
  return hls_viewers_count(viewers, channel, uv_now(hls__server_loop(srv)), saturated);
}

void hls_http_metrics(struct hls_server *srv, const struct config_channel *chans, int chan_count, struct buf *out) {
  static const struct metric viewers =
      METRIC_FAMILY("galarelay_hls_viewers", METRIC_GAUGE,
                    "Distinct client addresses that fetched the channel's HLS in the last 30 s (behind an edge "
                    "cache: the edges and what bypasses them).");
  static const struct metric saturated_family =
      METRIC_FAMILY("galarelay_hls_viewers_saturated", METRIC_GAUGE,
                    "1 while the channel's viewer count is at its bound (an address was not counted in the last "
                    "30 s): the count is a lower bound.");
  static const struct metric refused =
      METRIC_FAMILY("galarelay_hls_parked_refused_total", METRIC_COUNTER,
                    "Blocking HLS requests answered 503 at once: their address had hls.max_parked_per_address "
                    "waiting (address), or the server had its bound waiting (server).");
  if (chan_count > CONFIG_MAX_CHANNELS)
    chan_count = CONFIG_MAX_CHANNELS;
  uint32_t count[CONFIG_MAX_CHANNELS];
  bool saturated[CONFIG_MAX_CHANNELS];
  for (int i = 0; i < chan_count; i++)
    count[i] = hls_http_viewers(srv, chans[i].name, &saturated[i]);
  char label[96];
  metrics_head(out, &viewers);
  for (int i = 0; i < chan_count; i++) {
    snprintf(label, sizeof label, "channel=\"%s\"", chans[i].name);
    metrics_count(out, &viewers, label, count[i]);
  }
  metrics_head(out, &saturated_family);
  for (int i = 0; i < chan_count; i++) {
    snprintf(label, sizeof label, "channel=\"%s\"", chans[i].name);
    metrics_value(out, &saturated_family, label, saturated[i] ? 1 : 0);
  }
  metrics_head(out, &refused);
  metrics_count(out, &refused, "reason=\"address\"", refused_address);
  metrics_count(out, &refused, "reason=\"server\"", refused_global);
}

/* The hash key: random per start, so no client can pick addresses that
 * collide in the index. */
static uint64_t viewers_seed(void) {
  uint64_t seed = 0;
  if (uv_random(NULL, NULL, &seed, sizeof seed, 0, NULL) != 0)
    seed = uv_hrtime() ^ (uint64_t)(uintptr_t)&seed;
  return seed;
}

struct hls_server *hls_http_start(uv_loop_t *loop, const struct config_hls *hls, const char *state_dir) {
  struct hls_server *srv = hls_server_new(loop, hls, state_dir);
  if (!srv)
    return NULL;
  addr_seed = viewers_seed();
  hls_viewers_free(viewers);
  viewers = hls_viewers_new(HLS_VIEWERS_CAPACITY, HLS_VIEWERS_WINDOW_MS, viewers_seed());
  if (!viewers)
    log_warn("hls", "out of memory: HLS viewers are not counted");
  if (http_add_route("/hls/", hls_http_handle) != 0) {
    log_error("hls", "cannot register the /hls/ route");
    hls_http_stop(srv, NULL, NULL);
    return NULL;
  }
  served = srv;
  return srv;
}

void hls_http_stop(struct hls_server *srv, void (*cb)(void *arg), void *arg) {
  if (served == srv)
    served = NULL;
  hls_viewers_free(viewers);
  viewers = NULL;
  hls_server_stop(srv, cb, arg);
}
