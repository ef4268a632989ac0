/* redis_uv: runs a hiredis async context on a libuv loop (one uv_poll_t on
 * its socket).
 *
 * Our own instead of Debian's hiredis 0.14 adapters/libuv.h, which drops
 * poll errors: when a connect is refused its callback returns without
 * telling hiredis, so the connect callback never fires and the context
 * hangs. Here a poll error is handed to hiredis (as a write event while
 * connecting, which makes it check the socket and fail the connect; as a
 * read event once connected, which makes it see the broken connection).
 *
 * on_closed(arg) runs once the poll handle is closed, after hiredis freed
 * the context, so an owner can count its open handles and free itself
 * only when uv_run has nothing of it left. Loop thread only. */
#ifndef GALARELAY_CHAT_REDIS_UV_H
#define GALARELAY_CHAT_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* 0, or -EEXIST (ac already attached), -ENOMEM or libuv's code for the
 * poll handle: then the caller still owns ac and must redisAsyncFree it;
 * on_closed will not run. */
int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, void (*on_closed)(void *arg), void *arg);

#endif
