/* bus: see bus.h. Three queues of struct bus_item, each FIFO:
 *   local   - events to deliver on the next loop iteration (kick async);
 *   backlog - events PUBLISHed to Redis and not yet seen back (byte bound);
 * and the Redis pair (pub, sub) treated as one unit: if either fails, both
 * are dropped, the backlog goes to local delivery, and a timer reconnects
 * both after a backoff. */
#include "chat/bus.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/bus_envelope.h"
#include "chat/idgen.h"
#include "chat/redis_uv.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 2000
#define REJECT_LOG_MS 10000 /* at most one log line per this long about bad MACs */
/* Replays: a signed event is delivered only if its ts is within this of
 * our clock (NTP keeps nodes ms apart) and its seq is above the last one
 * delivered from its origin. ORIGINS_MAX origins are remembered; past it
 * the one heard from longest ago is forgotten (a replay of its events is
 * then still refused once they are older than the window). */
#define REPLAY_WINDOW_MS 60000
#define ORIGINS_MAX 64

struct bus_item {
  struct bus_item *next;
  uint64_t seq;
  char channel[BUS_MAX_CHANNEL];
  size_t len;
  char json[]; /* not NUL-terminated */
};

struct item_list {
  struct bus_item *head, *tail;
};

struct bus_chan {
  struct bus_chan *next;
  char name[BUS_MAX_CHANNEL];
  int confirmed; /* Redis answered our SUBSCRIBE on the current connection */
};

enum timer_mode { TIMER_IDLE, TIMER_RETRY, TIMER_CONNECT };

struct origin_seen {
  char node[BUS_ENVELOPE_ORIGIN_MAX + 1]; /* "" = free */
  uint64_t seq;                           /* the last delivered */
  uint64_t heard;                         /* our wall clock then, ms */
};

struct bus {
  uv_loop_t *loop;
  bus_deliver_fn deliver;
  void *opaque;
  int stopping;
  int open_handles;           /* kick, timer, hiredis polls: freed at 0 */
  void (*stopped)(void *arg); /* bus_stop's callback, after the free */
  void *stopped_arg;

  char node[8];
  uint64_t seq;
  struct idgen ids; /* node part = node */

  struct bus_chan *chans;
  struct item_list local;
  struct item_list backlog;
  size_t backlog_bytes;
  uv_async_t kick;

  /* Redis mode */
  int redis;
  struct config_redis_endpoint endpoint; /* from [redis] url: never logged whole */
  char secret[256];                      /* HMAC key of every event between nodes */
  char prefix[64];
  redisAsyncContext *pub, *sub;
  int pub_up, sub_up;
  uv_timer_t timer;
  enum timer_mode timer_mode;
  unsigned backoff_ms;
  int ever_up;
  int auth_refused;         /* the last connect failed on AUTH (logged once until it works) */
  uint64_t reject_log_ms;   /* when a bad MAC was last logged */
  uint64_t reject_unlogged; /* bad MACs since then */
  struct origin_seen origins[ORIGINS_MAX];

  struct bus_stats st;
};

static void redis_connect(struct bus *b);

/* ---- Items and channels */

static void list_push(struct item_list *l, struct bus_item *it) {
  it->next = NULL;
  if (l->tail)
    l->tail->next = it;
  else
    l->head = it;
  l->tail = it;
}

static void list_free(struct item_list *l) {
  while (l->head) {
    struct bus_item *it = l->head;
    l->head = it->next;
    free(it);
  }
  l->tail = NULL;
}

static struct bus_item *item_new(const char *channel, const char *json, size_t len, uint64_t seq) {
  struct bus_item *it = malloc(sizeof *it + len);
  if (!it)
    return NULL;
  it->next = NULL;
  it->seq = seq;
  snprintf(it->channel, sizeof it->channel, "%s", channel);
  it->len = len;
  memcpy(it->json, json, len);
  return it;
}

static struct bus_chan *chan_find(struct bus *b, const char *name, size_t len) {
  for (struct bus_chan *c = b->chans; c; c = c->next)
    if (strlen(c->name) == len && memcmp(c->name, name, len) == 0)
      return c;
  return NULL;
}

static void queue_local(struct bus *b, struct bus_item *it) {
  list_push(&b->local, it);
  uv_async_send(&b->kick);
}

/* ---- Delivery */

static void deliver(struct bus *b, const char *channel, const char *origin, uint64_t seq, const char *json, size_t len,
                    int local) {
  struct bus_msg m = {.channel = channel, .origin = origin, .seq = seq, .json = json, .len = len, .local = local};
  b->st.delivered++;
  b->deliver(b->opaque, &m);
}

static void on_kick(uv_async_t *h) {
  struct bus *b = h->data;
  /* Take the whole list: what the callbacks publish waits for the next
   * iteration, so a busy room cannot starve the loop. */
  struct item_list l = b->local;
  memset(&b->local, 0, sizeof b->local);
  while (l.head && !b->stopping) {
    struct bus_item *it = l.head;
    l.head = it->next;
    if (chan_find(b, it->channel, strlen(it->channel)))
      deliver(b, it->channel, b->node, it->seq, it->json, it->len, 1);
    free(it);
  }
  list_free(&l);
}

/* Backlog items up to and including seq leave the backlog. The one equal to
 * seq came back from Redis (freed); older ones were skipped by Redis (the
 * subscription was not there for them) and are delivered locally. */
static void backlog_settle(struct bus *b, uint64_t seq, int deliver_match) {
  while (b->backlog.head && b->backlog.head->seq <= seq) {
    struct bus_item *it = b->backlog.head;
    b->backlog.head = it->next;
    if (!b->backlog.head)
      b->backlog.tail = NULL;
    b->backlog_bytes -= it->len;
    if (it->seq < seq || deliver_match)
      queue_local(b, it);
    else
      free(it);
  }
}

/* One item out of the middle (a PUBLISH that Redis refused). */
static void backlog_take(struct bus *b, uint64_t seq) {
  struct bus_item **pp = &b->backlog.head, *prev = NULL;
  for (; *pp; prev = *pp, pp = &(*pp)->next) {
    if ((*pp)->seq != seq)
      continue;
    struct bus_item *it = *pp;
    *pp = it->next;
    if (b->backlog.tail == it)
      b->backlog.tail = prev;
    b->backlog_bytes -= it->len;
    queue_local(b, it);
    return;
  }
}

/* ---- Redis: connection pair and backoff */

static void handle_closed(void *arg) {
  struct bus *b = arg;
  if (--b->open_handles > 0)
    return;
  void (*cb)(void *) = b->stopped;
  void *cb_arg = b->stopped_arg;
  free(b);
  if (cb)
    cb(cb_arg);
}

static void on_uv_closed(uv_handle_t *h) { handle_closed(h->data); }

static void timer_arm(struct bus *b, enum timer_mode mode, uint64_t ms);

static void redis_fail(struct bus *b, const char *why) {
  int was_up = b->pub_up && b->sub_up;
  redisAsyncContext *pub = b->pub, *sub = b->sub;
  b->pub = b->sub = NULL;
  b->pub_up = b->sub_up = 0;
  b->st.redis_connected = 0;
  /* Callbacks of these contexts see pointers that are no longer ours and
   * ignore them (hiredis calls them with NULL replies while freeing). */
  if (pub)
    redisAsyncFree(pub);
  if (sub)
    redisAsyncFree(sub);
  for (struct bus_chan *c = b->chans; c; c = c->next)
    c->confirmed = 0;
  if (b->backlog.head)
    backlog_settle(b, b->backlog.tail->seq, 1);
  if (was_up)
    log_warn("bus", "redis down, delivering locally why=%s host=%s port=%d", why, b->endpoint.host, b->endpoint.port);
  else
    log_debug("bus", "redis connect failed why=%s backoff_ms=%u", why, b->backoff_ms);
  timer_arm(b, TIMER_RETRY, b->backoff_ms);
  b->backoff_ms = b->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b->backoff_ms * 2;
}

static void on_timer(uv_timer_t *t) {
  struct bus *b = t->data;
  enum timer_mode mode = b->timer_mode;
  b->timer_mode = TIMER_IDLE;
  if (b->stopping)
    return;
  if (mode == TIMER_RETRY)
    redis_connect(b);
  else if (mode == TIMER_CONNECT)
    redis_fail(b, "connect timeout");
}

static void timer_arm(struct bus *b, enum timer_mode mode, uint64_t ms) {
  b->timer_mode = mode;
  uv_timer_start(&b->timer, on_timer, ms, 0);
}

static int is_ours(struct bus *b, const redisAsyncContext *ac) {
  return !b->stopping && ac && (ac == b->pub || ac == b->sub);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata);
static void on_auth_reply(redisAsyncContext *ac, void *reply, void *privdata);
static void ctx_up(struct bus *b, const redisAsyncContext *ac);

static void subscribe_chan(struct bus *b, struct bus_chan *c) {
  redisAsyncCommand(b->sub, on_sub_reply, b, "SUBSCRIBE %s%s", b->prefix, c->name);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  struct bus *b = ac->data;
  if (!is_ours(b, ac))
    return;
  if (status != REDIS_OK) {
    /* hiredis frees ac after this callback: forget it first. */
    if (ac == b->pub)
      b->pub = NULL;
    else
      b->sub = NULL;
    redis_fail(b, ac->errstr[0] ? ac->errstr : "connect failed");
    return;
  }
  if (b->endpoint.password[0]) { /* nothing else is sent before AUTH's answer */
    if (b->endpoint.user[0])
      redisAsyncCommand((redisAsyncContext *)ac, on_auth_reply, b, "AUTH %s %s", b->endpoint.user,
                        b->endpoint.password);
    else
      redisAsyncCommand((redisAsyncContext *)ac, on_auth_reply, b, "AUTH %s", b->endpoint.password);
    return;
  }
  ctx_up(b, ac);
}

static void on_auth_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  struct bus *b = privdata;
  const redisReply *r = reply;
  if (!r || !is_ours(b, ac))
    return; /* teardown */
  if (r->type != REDIS_REPLY_ERROR) {
    ctx_up(b, ac);
    return;
  }
  if (!b->auth_refused)
    log_error("bus",
              "redis refused our password (AUTH) err=%s host=%s port=%d: check the "
              "password in [redis] url; retrying",
              r->str, b->endpoint.host, b->endpoint.port);
  b->auth_refused = 1;
  redis_fail(b, "AUTH refused");
}

/* One context of the pair is up (connected, and authenticated when the
 * url has a password); both: subscribe every room. */
static void ctx_up(struct bus *b, const redisAsyncContext *ac) {
  if (ac == b->pub)
    b->pub_up = 1;
  else
    b->sub_up = 1;
  if (!(b->pub_up && b->sub_up))
    return;
  b->auth_refused = 0;
  uv_timer_stop(&b->timer);
  b->timer_mode = TIMER_IDLE;
  b->backoff_ms = BACKOFF_MIN_MS;
  b->st.redis_connected = 1;
  if (b->ever_up)
    b->st.reconnects++;
  b->ever_up = 1;
  log_info("bus", "redis connected host=%s port=%d node=%s", b->endpoint.host, b->endpoint.port, b->node);
  for (struct bus_chan *c = b->chans; c; c = c->next)
    subscribe_chan(b, c);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  struct bus *b = ac->data;
  (void)status;
  if (!is_ours(b, ac))
    return;
  if (ac == b->pub)
    b->pub = NULL; /* being freed by hiredis */
  else
    b->sub = NULL;
  redis_fail(b, ac->errstr[0] ? ac->errstr : "disconnected");
}

static redisAsyncContext *open_ctx(struct bus *b) {
  redisAsyncContext *ac = redisAsyncConnect(b->endpoint.host, b->endpoint.port);
  if (!ac)
    return NULL;
  if (ac->err || redis_uv_attach(ac, b->loop, handle_closed, b) != 0) {
    log_debug("bus", "redis connect error=%s", ac->errstr);
    redisAsyncFree(ac);
    return NULL;
  }
  b->open_handles++;
  ac->data = b;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  return ac;
}

static void redis_connect(struct bus *b) {
  b->pub = open_ctx(b);
  b->sub = b->pub ? open_ctx(b) : NULL;
  if (!b->pub || !b->sub) {
    redis_fail(b, "connect error");
    return;
  }
  timer_arm(b, TIMER_CONNECT, CONNECT_TIMEOUT_MS);
}

/* ---- Redis: messages */

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A signed event seen before (its origin's seq not above the last one) or
 * outside the time window: a replay. Otherwise remembered. */
static int is_replay(struct bus *b, const struct bus_envelope *env) {
  uint64_t now = wall_ms();
  if (env->ts_ms + REPLAY_WINDOW_MS < now || env->ts_ms > now + REPLAY_WINDOW_MS)
    return 1;
  struct origin_seen *o = NULL, *oldest = &b->origins[0];
  for (int i = 0; i < ORIGINS_MAX && !o; i++) {
    if (!strcmp(b->origins[i].node, env->origin))
      o = &b->origins[i];
    else if (b->origins[i].heard < oldest->heard)
      oldest = &b->origins[i];
  }
  if (o && env->seq <= o->seq)
    return 1;
  if (!o) { /* free slots have heard = 0: taken first */
    o = oldest;
    snprintf(o->node, sizeof o->node, "%s", env->origin);
  }
  o->seq = env->seq;
  o->heard = now;
  return 0;
}

/* Every event sent or received is signed (bus_envelope). */
static void count_rejected(struct bus *b, const char *channel, int replay) {
  if (replay)
    b->st.rejected_replay++;
  else
    b->st.rejected_mac++;
  b->reject_unlogged++;
  uint64_t now = uv_now(b->loop);
  if (b->reject_log_ms && now - b->reject_log_ms < REJECT_LOG_MS)
    return;
  log_warn("bus",
           "dropped events without a valid HMAC or replayed count=%" PRIu64
           " last_channel=%s last_reason=%s: forged, or a node with another [redis] secret "
           "or clock",
           b->reject_unlogged, channel, replay ? "replay" : "hmac");
  b->reject_log_ms = now ? now : 1;
  b->reject_unlogged = 0;
}

static void on_message(struct bus *b, const redisReply *ch, const redisReply *payload) {
  size_t plen = strlen(b->prefix);
  if (ch->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING || (size_t)ch->len <= plen ||
      (size_t)ch->len - plen >= BUS_MAX_CHANNEL || memcmp(ch->str, b->prefix, plen) != 0) {
    b->st.malformed++;
    return;
  }
  char channel[BUS_MAX_CHANNEL];
  memcpy(channel, ch->str + plen, (size_t)ch->len - plen);
  channel[ch->len - plen] = '\0';
  struct bus_envelope env;
  int rc = bus_envelope_open(b->secret, channel, payload->str, (size_t)payload->len, &env);
  if (rc == BUS_ENVELOPE_BAD_MAC) {
    count_rejected(b, channel, 0);
    return;
  }
  if (rc != BUS_ENVELOPE_OK) {
    b->st.malformed++;
    return;
  }
  if (is_replay(b, &env)) {
    count_rejected(b, channel, 1);
    return;
  }
  b->st.redis_received++;
  if (strcmp(env.origin, b->node) == 0)
    backlog_settle(b, env.seq, 0);
  if (chan_find(b, channel, strlen(channel)))
    deliver(b, channel, env.origin, env.seq, env.event, env.event_len, 0);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  struct bus *b = privdata;
  const redisReply *r = reply;
  if (!r || !is_ours(b, ac) || ac != b->sub)
    return; /* teardown */
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
    return;
  const char *kind = r->element[0]->str;
  if (strcmp(kind, "message") == 0) {
    on_message(b, r->element[1], r->element[2]);
  } else if (strcmp(kind, "subscribe") == 0 && r->element[1]->type == REDIS_REPLY_STRING) {
    size_t plen = strlen(b->prefix);
    if ((size_t)r->element[1]->len > plen) {
      struct bus_chan *c = chan_find(b, r->element[1]->str + plen, (size_t)r->element[1]->len - plen);
      if (c)
        c->confirmed = 1;
    }
  }
}

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  struct bus *b = ac->data;
  const redisReply *r = reply;
  uint64_t seq = (uint64_t)(uintptr_t)privdata;
  if (!r || !is_ours(b, ac))
    return; /* lost with the connection: redis_fail delivers the backlog */
  if (r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
    b->st.redis_published++;
    return;
  }
  /* Refused, or nobody subscribed (our SUBSCRIBE not in place): it will
   * never come back, so deliver it here. */
  b->st.publish_failures++;
  if (r->type == REDIS_REPLY_ERROR)
    log_warn("bus", "redis publish failed err=%s", r->str);
  backlog_take(b, seq);
}

/* ---- Public API */

struct bus *bus_start(uv_loop_t *loop, const struct config_redis *cfg, bus_deliver_fn deliver_fn, void *opaque) {
  struct bus *b = calloc(1, sizeof *b);
  if (!b)
    return NULL;
  b->loop = loop;
  b->deliver = deliver_fn;
  b->opaque = opaque;
  unsigned char rnd[3] = {0};
  if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0)
    log_warn("bus", "no random node id");
  snprintf(b->node, sizeof b->node, "%02x%02x%02x", rnd[0], rnd[1], rnd[2]);
  idgen_init(&b->ids, (uint32_t)rnd[0] << 16 | (uint32_t)rnd[1] << 8 | rnd[2]);
  if (cfg->url[0]) {
    /* the url may hold a password: never logged */
    if (config_redis_url_parse(cfg->url, &b->endpoint) != 0) {
      log_error("bus", "bad [redis] url (want redis://[:PASSWORD@]HOST:PORT)");
      free(b);
      return NULL;
    }
    if (!cfg->secret[0] || strlen(cfg->secret) >= sizeof b->secret) {
      log_error("bus", "[redis] url needs a secret (or secret_file) shared by every node");
      free(b);
      return NULL;
    }
    snprintf(b->secret, sizeof b->secret, "%s", cfg->secret);
    b->redis = 1;
    snprintf(b->prefix, sizeof b->prefix, "%s", cfg->prefix);
  }
  uv_async_init(loop, &b->kick, on_kick);
  b->kick.data = b;
  uv_timer_init(loop, &b->timer);
  b->timer.data = b;
  b->open_handles = 2;
  b->backoff_ms = BACKOFF_MIN_MS;
  log_info("bus", "start mode=%s node=%s", b->redis ? "redis" : "local", b->node);
  if (b->redis)
    redis_connect(b);
  return b;
}

int bus_subscribe_channel(struct bus *b, const char *channel) {
  size_t n = strlen(channel);
  if (n == 0 || n >= BUS_MAX_CHANNEL)
    return -EINVAL;
  if (chan_find(b, channel, n))
    return 0;
  struct bus_chan *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  memcpy(c->name, channel, n + 1);
  c->next = b->chans;
  b->chans = c;
  if (b->pub_up && b->sub_up)
    subscribe_chan(b, c);
  return 0;
}

void bus_unsubscribe_channel(struct bus *b, const char *channel) {
  for (struct bus_chan **pp = &b->chans; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->name, channel) != 0)
      continue;
    struct bus_chan *c = *pp;
    *pp = c->next;
    if (b->sub_up)
      redisAsyncCommand(b->sub, NULL, NULL, "UNSUBSCRIBE %s%s", b->prefix, c->name);
    free(c);
    return;
  }
}

int bus_publish(struct bus *b, const char *channel, const char *json, size_t len) {
  if (b->stopping)
    return -ECANCELED;
  struct bus_chan *c = chan_find(b, channel, strlen(channel));
  if (!c)
    return -ENOENT;
  uint64_t seq = ++b->seq;
  struct bus_item *it = item_new(channel, json, len, seq);
  if (!it)
    return -ENOMEM;
  b->st.published++;
  int up = b->redis && b->pub_up && b->sub_up && c->confirmed;
  if (up && b->backlog_bytes + len > BUS_BACKLOG_BYTES) {
    b->st.backlog_full++;
    up = 0;
  }
  if (up) {
    struct buf env;
    buf_init(&env);
    if (bus_envelope_seal(&env, b->secret, channel, b->node, seq, wall_ms(), json, len) == 0 &&
        redisAsyncCommand(b->pub, on_pub_reply, (void *)(uintptr_t)seq, "PUBLISH %s%s %b", b->prefix, channel, env.data,
                          env.len) == REDIS_OK) {
      list_push(&b->backlog, it);
      b->backlog_bytes += len;
      buf_free(&env);
      return 0;
    }
    buf_free(&env);
    b->st.publish_failures++;
  }
  b->st.local_direct++;
  queue_local(b, it);
  return 0;
}

void bus_stop(struct bus *b, void (*cb)(void *arg), void *arg) {
  if (!b || b->stopping)
    return;
  b->stopping = 1;
  b->stopped = cb;
  b->stopped_arg = arg;
  /* stopping makes every hiredis callback a no-op while the contexts are
   * freed; their poll handles close and count down open_handles. */
  if (b->pub)
    redisAsyncFree(b->pub);
  if (b->sub)
    redisAsyncFree(b->sub);
  b->pub = b->sub = NULL;
  list_free(&b->local);
  list_free(&b->backlog);
  while (b->chans) {
    struct bus_chan *c = b->chans;
    b->chans = c->next;
    free(c);
  }
  uv_timer_stop(&b->timer);
  uv_close((uv_handle_t *)&b->timer, on_uv_closed);
  uv_close((uv_handle_t *)&b->kick, on_uv_closed);
}

void bus_make_id(struct bus *b, char out[BUS_ID_LEN]) { idgen_make(&b->ids, wall_ms(), out); }

int bus_id_floor(struct bus *b, const char *id) { return idgen_floor(&b->ids, id); }

const char *bus_node_id(const struct bus *b) { return b->node; }

bool bus_is_redis_connected(const struct bus *b) { return b->pub_up && b->sub_up; }

bool bus_is_channel_via_redis(const struct bus *b, const char *channel) {
  const struct bus_chan *c = chan_find((struct bus *)b, channel, strlen(channel));
  return c && b->redis && bus_is_redis_connected(b) && c->confirmed;
}

void bus_get_stats(const struct bus *b, struct bus_stats *out) {
  *out = b->st;
  out->backlog_bytes = b->backlog_bytes;
  out->redis_connected = bus_is_redis_connected(b);
}

void bus_metrics(const struct bus *b, struct buf *out) {
#define BS(NAME, TYPE, FIELD) METRIC_FIELD(NAME, TYPE, NULL, struct bus_stats, FIELD)
  static const struct metric rows[] = {
      BS("galarelay_redis_connected", METRIC_GAUGE, redis_connected),
      BS("galarelay_redis_reconnects_total", METRIC_COUNTER, reconnects),
      BS("galarelay_chat_bus_published_total", METRIC_COUNTER, published),
      BS("galarelay_chat_bus_delivered_total", METRIC_COUNTER, delivered),
      BS("galarelay_chat_bus_local_direct_total", METRIC_COUNTER, local_direct),
      BS("galarelay_chat_bus_redis_published_total", METRIC_COUNTER, redis_published),
      BS("galarelay_chat_bus_redis_received_total", METRIC_COUNTER, redis_received),
      BS("galarelay_chat_bus_publish_failures_total", METRIC_COUNTER, publish_failures),
      BS("galarelay_chat_bus_backlog_full_total", METRIC_COUNTER, backlog_full),
      BS("galarelay_chat_bus_malformed_total", METRIC_COUNTER, malformed),
      BS("galarelay_chat_bus_backlog_bytes", METRIC_GAUGE, backlog_bytes),
  };
#undef BS
  static const struct metric rejected =
      METRIC_FAMILY("galarelay_chat_bus_rejected_total", METRIC_COUNTER, "Events from Redis dropped, by reason");
  struct bus_stats s;
  bus_get_stats(b, &s);
  metrics_write(out, rows, METRICS_COUNT(rows), &s);
  metrics_head(out, &rejected);
  metrics_count(out, &rejected, "reason=\"hmac\"", s.rejected_mac);
  metrics_count(out, &rejected, "reason=\"replay\"", s.rejected_replay);
}
