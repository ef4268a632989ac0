/* redis_uv: see redis_uv.h. hiredis tells us which events it wants
 * (add/del read/write) and we keep one uv_poll_t in step with that. */
#include "chat/redis_uv.h"

#include <errno.h>

#include <hiredis/hiredis.h>
#include <stdlib.h>

struct redis_uv {
  uv_poll_t poll;
  redisAsyncContext *ac; /* NULL once hiredis called cleanup */
  int events;            /* UV_READABLE | UV_WRITABLE currently wanted */
  void (*on_closed)(void *arg);
  void *arg;
};

static void on_poll(uv_poll_t *h, int status, int events) {
  struct redis_uv *r = h->data;
  if (status < 0) {
    /* The fix over Debian's adapter: hiredis must learn about the error
     * or a refused connect hangs forever. */
    if (r->ac && !(r->ac->c.flags & REDIS_CONNECTED))
      redisAsyncHandleWrite(r->ac);
    else if (r->ac)
      redisAsyncHandleRead(r->ac);
    return;
  }
  /* hiredis may free the context inside either call: re-check r->ac. */
  if (r->ac && (events & UV_READABLE))
    redisAsyncHandleRead(r->ac);
  if (r->ac && (events & UV_WRITABLE))
    redisAsyncHandleWrite(r->ac);
}

static void update(struct redis_uv *r, int events) {
  if (events == r->events)
    return;
  r->events = events;
  if (events)
    uv_poll_start(&r->poll, events, on_poll);
  else
    uv_poll_stop(&r->poll);
}

static void add_read(void *p) { update(p, ((struct redis_uv *)p)->events | UV_READABLE); }
static void del_read(void *p) { update(p, ((struct redis_uv *)p)->events & ~UV_READABLE); }
static void add_write(void *p) { update(p, ((struct redis_uv *)p)->events | UV_WRITABLE); }
static void del_write(void *p) { update(p, ((struct redis_uv *)p)->events & ~UV_WRITABLE); }

static void on_close(uv_handle_t *h) {
  struct redis_uv *r = h->data;
  if (r->on_closed)
    r->on_closed(r->arg);
  free(r);
}

/* Called by hiredis while it frees the context. */
static void cleanup(void *p) {
  struct redis_uv *r = p;
  r->ac = NULL;
  uv_close((uv_handle_t *)&r->poll, on_close);
}

int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, void (*on_closed)(void *arg), void *arg) {
  if (ac->ev.data != NULL)
    return -EEXIST;
  struct redis_uv *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  int rc = uv_poll_init(loop, &r->poll, ac->c.fd);
  if (rc != 0) {
    free(r);
    return rc;
  }
  r->poll.data = r;
  r->ac = ac;
  r->on_closed = on_closed;
  r->arg = arg;
  ac->ev.data = r;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  return 0;
}
