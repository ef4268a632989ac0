/* chat: the websocket transport, rooms, bus and archive glue, the tick
 * timer, metrics. Requests are in chat_requests.c, tickets (archive
 * commit, publish, ack) in ticket.c, the archive records of events in
 * chat_archive.c. See chat.h for the flow, and "Writing
 * to members" below for how frames reach the sockets. */
#include "chat/chat.h"
#include "chat/chat_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/archive.h"
#include "chat/bus.h"
#include "chat/chat_archive_int.h"
#include "chat/chat_requests_int.h"
#include "chat/filter.h"
#include "chat/jwt.h"
#include "chat/protocol.h"
#include "chat/room.h"
#include "chat/ticket_int.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/http.h"
#include "core/log.h"
#include "core/memguard.h"
#include "core/metrics.h"
#include "core/netaddr.h"

static struct chat *chat_of(struct lws *wsi) {
  /* the handle the caller keeps (chat_protocol); NULL once it stopped us */
  const struct lws_protocols *p = lws_get_protocol(wsi);
  struct chat *const *handle = p ? p->user : NULL;
  return handle ? *handle : NULL;
}

static struct chat_room *find_room(struct chat *c, const char *channel) {
  for (int i = 0; i < CHAT_ROOMS_MAX; i++)
    if (c->rooms[i].room && !c->rooms[i].removed && !strcmp(c->rooms[i].channel, channel))
      return &c->rooms[i];
  return NULL;
}

/* ---- Writing to members
 *
 * A member's frames reach its socket through one of two writers, never
 * both inside one frame:
 *   - raw (plain TCP: every frame of the member's queue): fanout_write
 *     sends the shared frames, header included, from the shared buffers
 *     with one sendmsg on lws_get_socket_fd; no copy, no lws buflist;
 *   - lws: the handshake, the control frames (ping, pong, close: lws
 *     writes them itself from its POLLOUT handler, before it calls our
 *     WRITEABLE), and every frame on a TLS connection (lws_write, one per
 *     WRITEABLE: the daemon never serves TLS itself, so a fallback only).
 * The rule that keeps them apart: a raw write starts only when lws holds
 * nothing for the wsi (lws_partial_buffered), and it always leaves the
 * stream at a frame boundary. When the kernel takes a frame in part, the
 * rest of that one frame is handed to lws in the same call (lws_write
 * LWS_WRITE_HTTP: raw bytes, appended to its buflist: the one userspace
 * copy left, counted in galarelay_chat_fanout_copied_bytes_total) and the
 * member waits for WRITEABLE, which lws delivers only once that buflist
 * is on the wire. So whatever lws writes of its own falls between whole
 * frames. Resuming the rest from the shared buffer ourselves would save
 * that copy but cannot be made safe: lws writes a pong, or its keepalive
 * ping, from its POLLOUT handler before our WRITEABLE callback, with no
 * hook to hold it back, and it would land inside our frame.
 *
 * Pacing: a tick queues its frame to every member (room_tick) and each
 * member is put on the ready list (op_wake); the idle handle writes
 * fanout_slice members per turn of the loop (on_fanout_idle), and between
 * slices libuv polls the sockets: posters' messages are read, archive
 * completions run, and a reply (ack, error, welcome) is written at once
 * (op_wake sees it queued: write_now) with whatever that member has
 * queued before it, ahead of the list. */

/* A compressed batch is a binary frame; every other message is text. */
static enum lws_write_protocol frame_opcode(const struct room_frame *f) {
  return f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
}

static void wait_writable(struct chat_conn *conn) {
  conn->awaiting_writable = true;
  lws_callback_on_writable(conn->wsi);
}

/* The rest of a partly sent frame goes to lws (see above). */
static int spill(struct chat *c, struct chat_conn *conn, struct fanout_tx *tx) {
  size_t len;
  const unsigned char *w = room_frame_wire(tx->frame, LWS_PRE, &len);
  size_t rest = len - tx->off;
  int n = lws_write(conn->wsi, (unsigned char *)w + tx->off, rest, LWS_WRITE_HTTP);
  fanout_tx_clear(tx);
  c->stats.spilled_bytes += rest;
  return n < 0 ? -1 : 0;
}

/* The fallback writer (TLS): one frame through lws per WRITEABLE. */
static int write_through_lws(struct chat *c, struct chat_conn *conn) {
  struct room_frame *f = room_member_take(&conn->m);
  if (!f)
    return 0;
  int n = lws_write(conn->wsi, room_frame_payload(f, LWS_PRE), f->len, frame_opcode(f));
  room_frame_unref(f);
  c->stats.lws_frames++;
  if (n < 0)
    return -1;
  if (room_member_has_frames(&conn->m))
    wait_writable(conn);
  return 0;
}

/* Write what conn's queue holds now, as far as the socket takes it.
 * -1: the socket is broken. */
static int conn_write(struct chat *c, struct chat_conn *conn) {
  if (!conn->wsi || conn->close_code || conn->awaiting_writable)
    return 0;
  if (!conn->raw || lws_partial_buffered(conn->wsi)) {
    if (room_member_has_frames(&conn->m))
      wait_writable(conn);
    return 0;
  }
  struct fanout_tx tx = {0};
  enum fanout_result r = fanout_write(lws_get_socket_fd(conn->wsi), &conn->m, LWS_PRE, &tx, &c->fanout);
  if (r == FANOUT_ERROR) {
    fanout_tx_clear(&tx);
    return -1;
  }
  if (r == FANOUT_DONE)
    return 0;
  if (tx.frame && spill(c, conn, &tx) < 0)
    return -1;
  wait_writable(conn);
  return 0;
}

static void close_broken(struct chat_conn *conn) {
  conn->close_code = LWS_CLOSE_STATUS_UNEXPECTED_CONDITION; /* closed at WRITEABLE */
  lws_callback_on_writable(conn->wsi);
}

/* A reply goes out now, with what is queued before it, ahead of the list. */
static void write_now(struct chat *c, struct chat_conn *conn) {
  fanout_ready_remove(&c->ready, &conn->ready);
  if (conn_write(c, conn) < 0)
    close_broken(conn);
}

static void write_member(void *opaque, struct fanout_link *l) {
  struct chat_conn *conn = (struct chat_conn *)((char *)l - offsetof(struct chat_conn, ready));
  if (conn_write(opaque, conn) < 0)
    close_broken(conn);
}

static void on_fanout_idle(uv_idle_t *h) {
  struct chat *c = h->data;
  c->stats.slices++;
  if (fanout_ready_run(&c->ready, c->fanout_slice, write_member, c) == 0)
    uv_idle_stop(h);
}

/* ---- The websocket protocol */

static void on_message(struct chat *c, struct chat_conn *conn, const void *data, size_t len) {
  if (conn->rx_binary) {
    c->stats.bad_request++;
    chat__reply_error(conn, NULL, ROOM_BAD_REQUEST, "binary frames are not messages", -1);
    return;
  }
  struct chat_msg msg;
  struct chat_parse_error err;
  enum chat_parse_result r = chat_protocol_parse(data, len, &msg, &err);
  if (r == CHAT_PARSE_BAD_UTF8) { /* RFC 6455 8.1: fail the connection */
    c->stats.bad_utf8++;
    lws_close_reason(conn->wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, (unsigned char *)"invalid UTF-8", 13);
    conn->close_code = LWS_CLOSE_STATUS_INVALID_PAYLOAD;
    return;
  }
  if (r != CHAT_PARSE_OK) {
    c->stats.bad_request++;
    chat__reply_error(conn, err.nonce, ROOM_BAD_REQUEST, err.message, -1);
    return;
  }
  switch (msg.type) {
  case CHAT_MSG_HELLO: chat__on_hello(c, conn, &msg); break;
  case CHAT_MSG_COMMENT: chat__on_comment(c, conn, &msg); break;
  case CHAT_MSG_MOD: chat__on_mod(c, conn, &msg); break;
  }
  chat_msg_free(&msg);
}

static int on_established(struct chat *c, struct lws *wsi, struct chat_conn *conn) {
  char uri[256];
  if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 || strncmp(uri, "/chat/", 6))
    return -1;
  struct chat_room *slot = find_room(c, uri + 6);
  if (!slot || c->stopping)
    return -1;
  memset(conn, 0, sizeof(*conn));
  conn->wsi = wsi;
  conn->raw = !lws_is_ssl(wsi) && lws_get_socket_fd(wsi) >= 0;
  conn->slot = slot;
  conn->m.transport = conn;
  conn->m.conn_id = ++c->next_conn_id;
  /* X-Forwarded-For only from the configured proxy; limits and bans by
   * the /64 for IPv6 (netaddr_client_key) */
  char addr[INET6_ADDRSTRLEN + 8];
  http_client_addr(wsi, c->cfg.server->trusted_proxy, addr, sizeof(addr));
  netaddr_client_key(addr, conn->m.addr, sizeof(conn->m.addr));
  char id[BUS_ID_LEN];
  chat__make_id(c, id);
  snprintf(conn->m.user_id, sizeof(conn->m.user_id), "g%s", id);
  c->stats.connections++;
  if (room_join(slot->room, &conn->m) != 0) {
    c->stats.refused_join++;
    /* not a member: say why directly, then close */
    json_t *e = chat_error_json(NULL, "rate_limited", "too many connections from this address", 10000);
    size_t n;
    unsigned char *f = e ? chat_json_frame(e, LWS_PRE, &n) : NULL;
    json_decref(e);
    if (f)
      lws_write(wsi, f + LWS_PRE, n, LWS_WRITE_TEXT);
    free(f);
    conn->wsi = NULL; /* nothing for the close callback to undo */
    lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)"too many", 8);
    return -1;
  }
  room_send_welcome(slot->room, &conn->m); /* a reply: op_wake writes it at once */
  return 0;
}

/* A message that arrives in one callback (nearly all: lws hands over up
 * to rx_buffer_size at once) is parsed where lws has it; only one that
 * arrives in pieces (fragments, or a frame split across reads) is copied
 * into conn->rx, allocated for that message and freed after it, so an
 * idle viewer holds no reassembly buffer. */
static int on_receive(struct chat *c, struct chat_conn *conn, const void *in, size_t len) {
  struct lws *wsi = conn->wsi;
  size_t max = (size_t)c->cfg.chat->max_frame_bytes;
  bool first = lws_is_first_fragment(wsi);
  bool last = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
  if (first) {
    conn->rx_len = 0;
    conn->rx_binary = lws_frame_is_binary(wsi);
  }
  if (conn->rx_len + len + lws_remaining_packet_payload(wsi) > max) {
    c->stats.oversize++;
    lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)"too large", 9);
    return -1;
  }
  if (first && last) {
    on_message(c, conn, in, len);
    return conn->close_code ? -1 : 0;
  }
  if (conn->rx_cap < max) { /* first piece, or a reload raised the limit meanwhile */
    unsigned char *grown = realloc(conn->rx, max);
    if (!grown)
      return -1;
    conn->rx = grown;
    conn->rx_cap = max;
  }
  memcpy(conn->rx + conn->rx_len, in, len);
  conn->rx_len += len;
  if (!last)
    return 0;
  on_message(c, conn, conn->rx, conn->rx_len);
  free(conn->rx);
  conn->rx = NULL;
  conn->rx_cap = conn->rx_len = 0;
  return conn->close_code ? -1 : 0;
}

/* lws has written what it held (its buflist, its control frames) */
static int on_writeable(struct chat *c, struct chat_conn *conn) {
  conn->awaiting_writable = false;
  if (conn->close_code) {
    lws_close_reason(conn->wsi, conn->close_code, NULL, 0);
    return -1;
  }
  if (!c)
    return 0;
  if (!conn->raw)
    return write_through_lws(c, conn);
  fanout_ready_remove(&c->ready, &conn->ready);
  return conn_write(c, conn);
}

static void on_closed(struct chat *c, struct chat_conn *conn) {
  if (c) /* without it (stopped), chat_stop took every member off the list */
    fanout_ready_remove(&c->ready, &conn->ready);
  while (conn->tickets)
    chat__ticket_detach(conn->tickets);
  room_leave(&conn->m);
  free(conn->rx);
  conn->rx = NULL;
  conn->wsi = NULL;
}

static int chat_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  struct chat_conn *conn = user;
  struct chat *c = chat_of(wsi);
  switch (reason) {
  case LWS_CALLBACK_WSI_DESTROY: /* every connection ends here (protocols[0]) */
    http_connection_destroyed(wsi);
    return 0;
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: { /* refuse the handshake: no such room, or over the memory ceiling */
    char uri[256];
    if (c && http_ws_check_origin(wsi, c->cfg.server->allowed_origins)) /* 403: a page of another site */
      return -1;
    return !c || c->stopping || memguard_over_limit() || lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
           strncmp(uri, "/chat/", 6) || !find_room(c, uri + 6);
  }
  case LWS_CALLBACK_ESTABLISHED: return c ? on_established(c, wsi, conn) : -1;
  case LWS_CALLBACK_RECEIVE:
    if (!c || !conn->wsi)
      return -1;
    return on_receive(c, conn, in, len);
  case LWS_CALLBACK_SERVER_WRITEABLE:
    if (!conn->wsi)
      return -1;
    return on_writeable(c, conn);
  case LWS_CALLBACK_CLOSED:
    if (conn->wsi)
      on_closed(c, conn);
    return 0;
  default: return 0;
  }
}

static const struct lws_protocols chat_proto = {
    /* .user: the caller's handle (chat_of) */
    .name = "chat",
    .callback = chat_callback,
    .per_session_data_size = sizeof(struct chat_conn),
    .rx_buffer_size = 4096,
};

void chat_protocol(struct lws_protocols *out, struct chat *const *handle) {
  *out = chat_proto;
  out->user = (void *)handle;
}

/* ---- Room ops */

/* Frames were queued: the member writes in a later slice (pacing, above),
 * or at WRITEABLE when it waits for one. Asking lws for WRITEABLE for every
 * member instead would cost two epoll_ctl calls per member per tick (lws
 * arms and disarms POLLOUT), the largest cost of a 10k-viewer fan-out when
 * profiled. */
static void op_wake(void *opaque, struct room_member *m) {
  struct chat *c = opaque;
  struct chat_conn *conn = m->transport;
  if (!conn->wsi || conn->awaiting_writable || conn->close_code)
    return;
  if (room_member_reply_queued(m)) { /* an ack, error or welcome: now, ahead of the list */
    write_now(c, conn);
    return;
  }
  fanout_ready_add(&c->ready, &conn->ready);
  if (!uv_is_active((uv_handle_t *)&c->fanout_idle))
    uv_idle_start(&c->fanout_idle, on_fanout_idle);
}

static void op_kick(void *opaque, struct room_member *m, int code, const char *reason) {
  struct chat *c = opaque;
  struct chat_conn *conn = m->transport;
  if (!conn->wsi)
    return;
  fanout_ready_remove(&c->ready, &conn->ready);
  log_info("chat", "closing member channel=%s addr=%s reason=%s", room_channel(m->room), m->addr, reason);
  conn->close_code = code;
  lws_callback_on_writable(conn->wsi);
  /* a client that reads nothing never becomes writable: close it anyway */
  lws_set_timeout(conn->wsi, PENDING_TIMEOUT_CLOSE_SEND, 2);
}

static void op_words(void *opaque, struct room *r, const json_t *ev) {
  (void)r;
  struct chat *c = opaque;
  json_t *add = json_object_get(ev, "add"), *rem = json_object_get(ev, "remove");
  for (size_t i = 0; c->filter && i < json_array_size(add); i++)
    if (json_is_string(json_array_get(add, i)))
      filter_add_word(c->filter, json_string_value(json_array_get(add, i)));
  for (size_t i = 0; c->filter && i < json_array_size(rem); i++)
    if (json_is_string(json_array_get(rem, i)))
      filter_remove_word(c->filter, json_string_value(json_array_get(rem, i)));
}

static const struct room_ops chat_room_ops = {op_wake, op_kick, op_words};

/* ---- Bus and tick */

static void on_bus(void *opaque, const struct bus_msg *bm) {
  struct chat *c = opaque;
  struct chat_room *slot = find_room(c, bm->channel);
  if (!slot)
    return;
  json_t *ev = json_loadb(bm->json, bm->len, 0, NULL);
  if (!ev || room_deliver(slot->room, ev, chat__wall_ms()) != 0) {
    log_warn("chat", "unreadable event from the bus channel=%s origin=%s", bm->channel, bm->origin ? bm->origin : "?");
  } else if (c->archive && bm->origin && strcmp(bm->origin, bus_node_id(c->bus)) != 0) {
    /* our own events come back from Redis too (or locally): archived
     * already, before they were published */
    chat__archive_remote(c, slot, ev, bm->origin);
  }
  json_decref(ev);
}

static void free_room_slot(struct chat *c, struct chat_room *slot) {
  if (c->bus)
    bus_unsubscribe_channel(c->bus, slot->channel);
  room_free(slot->room);
  memset(slot, 0, sizeof(*slot));
}

static void on_tick(uv_timer_t *t) {
  struct chat *c = t->data;
  int64_t now = chat__wall_ms();
  for (int i = 0; i < CHAT_ROOMS_MAX; i++) {
    struct chat_room *slot = &c->rooms[i];
    if (!slot->room)
      continue;
    if (slot->removed && room_member_count(slot->room) == 0 && slot->tickets == 0)
      free_room_slot(c, slot);
    else
      room_tick(slot->room, now);
  }
}

/* ---- Loading from the archive */

static void load_comment(void *opaque, const struct archive_comment *ac) {
  struct chat_room *slot = opaque;
  json_t *ev = chat_comment_event(ac->id, chat_user_json(ac->user_id, ac->user_name, ac->role), ac->text, ac->ts_ms);
  if (!ev)
    return;
  if (ac->status == ARCHIVE_HELD)
    room_load_held(slot->room, ev);
  else
    room_load_comment(slot->room, ev);
}

static void load_ban(void *opaque, const struct archive_ban *b) {
  struct chat_room *slot = opaque;
  room_load_ban(slot->room, b->user_id, b->addr, b->until_ms);
}

static void load_word(void *opaque, const char *channel, const char *word) {
  (void)channel;
  struct chat *c = opaque;
  filter_add_word(c->filter, word);
}

static void load_room(struct chat *c, struct chat_room *slot) {
  if (!c->archive)
    return;
  archive_load_comments(c->archive, slot->channel, ARCHIVE_VISIBLE, c->params.history, load_comment, slot);
  archive_load_comments(c->archive, slot->channel, ARCHIVE_HELD, ROOM_HELD_MAX, load_comment, slot);
  archive_load_bans(c->archive, slot->channel, chat__wall_ms(), load_ban, slot);
  /* ids made from now on sort after every id of the channel, also when
   * the clock went back across the restart */
  char newest[BUS_ID_LEN];
  if (c->bus && archive_newest_id(c->archive, slot->channel, newest, sizeof(newest)) == 1)
    bus_id_floor(c->bus, newest);
  struct archive_room_state st;
  char pinned[BUS_ID_LEN * 2];
  if (archive_load_room_state(c->archive, slot->channel, &st, pinned, sizeof(pinned)) == 0)
    room_load_state(slot->room, st.slow_seconds, st.hold != 0, st.pinned_id);
}

static int add_room(struct chat *c, const char *channel) {
  for (int i = 0; i < CHAT_ROOMS_MAX; i++) {
    struct chat_room *slot = &c->rooms[i];
    if (slot->room)
      continue;
    snprintf(slot->channel, sizeof(slot->channel), "%s", channel);
    slot->room = room_new(channel, &c->params, &chat_room_ops, c, c->filter);
    int rc = !slot->room ? -ENOMEM : c->bus ? bus_subscribe_channel(c->bus, channel) : 0;
    if (rc != 0) {
      room_free(slot->room);
      memset(slot, 0, sizeof(*slot));
      return rc;
    }
    load_room(c, slot);
    return 0;
  }
  return -ENOSPC; /* every slot taken */
}

/* Channels added get a room; removed ones close their members. */
static bool has_channel(const struct chat_sections *cfg, const char *name) {
  for (int i = 0; i < cfg->channel_count; i++)
    if (!strcmp(cfg->channels[i].name, name))
      return true;
  return false;
}

static void sync_rooms(struct chat *c, const struct chat_sections *cfg) {
  for (int i = 0; i < CHAT_ROOMS_MAX; i++) {
    struct chat_room *slot = &c->rooms[i];
    if (!slot->room || slot->removed || has_channel(cfg, slot->channel))
      continue;
    slot->removed = true;
    room_close_all(slot->room, LWS_CLOSE_STATUS_GOINGAWAY, "channel removed");
    log_info("chat", "room closed channel=%s", slot->channel);
  }
  for (int i = 0; i < cfg->channel_count; i++) {
    const char *name = cfg->channels[i].name;
    for (int k = 0; k < CHAT_ROOMS_MAX; k++) /* removed and back again: keep it */
      if (c->rooms[k].room && c->rooms[k].removed && !strcmp(c->rooms[k].channel, name))
        c->rooms[k].removed = false;
    if (!find_room(c, name) && add_room(c, name) != 0)
      log_error("chat", "cannot open room channel=%s", name);
  }
}

/* ---- Entry points */

/* One part of the service is released (chat_stop); the last frees it and
 * tells the caller. */
static void part_stopped(void *arg) {
  struct chat *c = arg;
  if (--c->parts_open > 0)
    return;
  void (*cb)(void *) = c->stopped;
  void *cb_arg = c->stopped_arg;
  free(c);
  if (cb)
    cb(cb_arg);
}

static void handle_closed(uv_handle_t *h) { part_stopped(h->data); } /* the tick, the idle handle */

struct chat *chat_start(uv_loop_t *loop, const struct chat_sections *cfg) {
  struct chat *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->loop = loop;
  c->cfg = *cfg;
  room_params_from_config(&c->params, cfg->chat, LWS_PRE);
  c->filter = filter_new(loop);
  char path[1024];
  struct archive_params ap;
  if (!c->filter || archive_params_from_config(&ap, cfg->server, cfg->chat, path, sizeof(path)) != 0 ||
      !(c->archive = archive_open(loop, &ap)) || !(c->bus = bus_start(loop, cfg->redis, on_bus, c))) {
    log_error("chat", "chat could not start");
    if (c->archive)
      archive_stop(c->archive, NULL, NULL);
    filter_stop(c->filter, NULL, NULL);
    free(c);
    return NULL;
  }
  if (c->archive)
    archive_load_words(c->archive, NULL, load_word, c);
  filter_set_file(c->filter, cfg->chat->banned_words_file);
  sync_rooms(c, cfg);
  uv_timer_init(loop, &c->tick);
  c->tick.data = c;
  fanout_ready_init(&c->ready);
  uv_idle_init(loop, &c->fanout_idle);
  c->fanout_idle.data = c;
  c->fanout_slice = (size_t)cfg->chat->fanout_slice;
  uv_timer_start(&c->tick, on_tick, (uint64_t)cfg->chat->tick_ms, (uint64_t)cfg->chat->tick_ms);
  log_info("chat", "chat started rooms=%d tick_ms=%d", cfg->channel_count, cfg->chat->tick_ms);
  return c;
}

void chat_reload(struct chat *c, const struct chat_sections *cfg) {
  c->cfg = *cfg;
  room_params_from_config(&c->params, cfg->chat, LWS_PRE);
  for (int i = 0; i < CHAT_ROOMS_MAX; i++)
    if (c->rooms[i].room)
      room_configure(c->rooms[i].room, &c->params);
  filter_set_file(c->filter, cfg->chat->banned_words_file);
  sync_rooms(c, cfg);
  uv_timer_set_repeat(&c->tick, (uint64_t)cfg->chat->tick_ms);
  c->fanout_slice = (size_t)cfg->chat->fanout_slice;
}

/* At stop: write what is queued now (the last acks); what the socket does
 * not take goes to lws, after what it holds, and out before the close. */
static void flush_member(void *opaque, struct room_member *m) {
  struct chat *c = opaque;
  struct chat_conn *conn = m->transport;
  struct room_frame *f;
  if (conn->raw && conn_write(c, conn) < 0)
    return;
  while (conn->wsi && (f = room_member_take(m))) {
    lws_write(conn->wsi, room_frame_payload(f, LWS_PRE), f->len, frame_opcode(f));
    room_frame_unref(f);
  }
}

void chat_stop(struct chat *c, void (*cb)(void *arg), void *arg) {
  if (!c || c->stopping)
    return;
  c->stopping = true;
  c->stopped = cb;
  c->stopped_arg = arg;
  /* the tick and the fan-out's idle handle, and the archive, bus and
   * filter: each calls part_stopped once released (the filter may at once) */
  c->parts_open = 2 + (c->archive != NULL) + (c->bus != NULL) + (c->filter != NULL);
  /* every acked comment is on disk: the archive writes what is queued and
   * runs the completions (acks go into the members' queues) */
  if (c->archive)
    archive_stop(c->archive, part_stopped, c);
  c->archive = NULL;
  for (int i = 0; i < CHAT_ROOMS_MAX; i++) {
    struct chat_room *slot = &c->rooms[i];
    if (!slot->room)
      continue;
    /* Members already gone (the lws context closed their connections
     * first) leave nothing to flush; the others get what the last commits
     * published, then a 1001. */
    if (room_member_count(slot->room) == 0)
      continue;
    room_tick(slot->room, chat__wall_ms()); /* what the last commits published */
    room_for_each_member(slot->room, flush_member, c);
    room_close_all(slot->room, LWS_CLOSE_STATUS_GOINGAWAY, "server stopping");
  }
  /* members still connected leave in their close callbacks, which find
   * the caller's handle NULL and only free their own buffers; detach them
   * here */
  for (int i = 0; i < CHAT_ROOMS_MAX; i++)
    if (c->rooms[i].room)
      room_free(c->rooms[i].room);
  memset(c->rooms, 0, sizeof(c->rooms));
  if (c->bus)
    bus_stop(c->bus, part_stopped, c);
  c->bus = NULL;
  if (c->filter)
    filter_stop(c->filter, part_stopped, c);
  c->filter = NULL;
  while (c->ready.count) /* members that close later find no chat: unlink them now */
    fanout_ready_remove(&c->ready, c->ready.head.next);
  uv_timer_stop(&c->tick);
  uv_close((uv_handle_t *)&c->tick, handle_closed);
  uv_close((uv_handle_t *)&c->fanout_idle, handle_closed);
}

/* ---- Metrics and API */

/* One room's values for /metrics. */
struct room_sample {
  size_t members;
  struct room_stats st;
};

static void bad_frames_metrics(const struct chat *c, struct buf *out) {
  static const struct metric bad =
      METRIC_FAMILY("galarelay_chat_bad_frames_total", METRIC_COUNTER, "Frames refused before parsing, by reason");
  static const struct metric conns =
      METRIC_FAMILY("galarelay_chat_connections_total", METRIC_COUNTER, "Websocket connections accepted");
  metrics_head(out, &bad);
  metrics_count(out, &bad, "reason=\"invalid_utf8\"", c->stats.bad_utf8);
  metrics_count(out, &bad, "reason=\"too_large\"", c->stats.oversize);
  metrics_count(out, &bad, "reason=\"bad_request\"", c->stats.bad_request);
  metrics_head(out, &conns);
  metrics_count(out, &conns, NULL, c->stats.connections);
}

/* The write path: sends per member-tick (sends / member_ticks) and the
 * bytes copied per delivered event (copied / delivered events) are what
 * the chat benchmark prints. */
static void fanout_metrics(const struct chat *c, struct buf *out) {
  static const struct metric rows[] = {
      METRIC_FAMILY("galarelay_chat_fanout_sends_total", METRIC_COUNTER,
                    "System calls that wrote frames to members' sockets"),
      METRIC_FAMILY("galarelay_chat_fanout_blocked_total", METRIC_COUNTER,
                    "Writes the kernel refused (socket buffer full)"),
      METRIC_FAMILY("galarelay_chat_fanout_bytes_total", METRIC_COUNTER,
                    "Bytes the kernel accepted from the fan-out writer"),
      METRIC_FAMILY("galarelay_chat_fanout_copied_bytes_total", METRIC_COUNTER,
                    "Bytes copied in userspace: rests of partly sent frames handed to lws"),
      METRIC_FAMILY("galarelay_chat_fanout_lws_frames_total", METRIC_COUNTER,
                    "Frames written through lws_write instead (TLS)"),
      METRIC_FAMILY("galarelay_chat_fanout_slices_total", METRIC_COUNTER,
                    "Fan-out slices run (one per loop turn while members wait)"),
      METRIC_FAMILY("galarelay_chat_fanout_ready", METRIC_GAUGE, "Members waiting for a fan-out slice"),
  };
  const uint64_t v[] = {c->fanout.sends,     c->fanout.blocked, c->fanout.bytes,         c->stats.spilled_bytes,
                        c->stats.lws_frames, c->stats.slices,   (uint64_t)c->ready.count};
  for (size_t k = 0; k < METRICS_COUNT(rows); k++) {
    metrics_head(out, &rows[k]);
    metrics_count(out, &rows[k], NULL, v[k]);
  }
}

void chat_metrics(const struct chat *c, struct buf *out) {
#define RS(NAME, TYPE, HELP, FIELD) METRIC_FIELD(NAME, TYPE, HELP, struct room_sample, FIELD)
  static const struct metric rows[] = {
      RS("galarelay_chat_members", METRIC_GAUGE, "Websocket members per room", members),
      RS("galarelay_chat_comments_accepted_total", METRIC_COUNTER, "Comments accepted", st.accepted),
      METRIC_FAMILY("galarelay_chat_comments_refused_total", METRIC_COUNTER, "Comments refused, by reason"),
      RS("galarelay_chat_delivered_events_total", METRIC_COUNTER, "Events queued to members", st.delivered_events),
      RS("galarelay_chat_dropped_batches_total", METRIC_COUNTER, "Batches dropped for slow members",
         st.dropped_batches),
      RS("galarelay_chat_slow_members_closed_total", METRIC_COUNTER, "Members closed past the hard bound",
         st.kicked_slow),
      RS("galarelay_chat_queue_bytes", METRIC_GAUGE, "Bytes queued to members", st.queue_bytes),
      RS("galarelay_chat_held_comments", METRIC_GAUGE, "Comments waiting for review", st.held),
      RS("galarelay_chat_hello_refused_total", METRIC_COUNTER, "Hellos refused by the hello rate limits",
         st.hello_refused),
      METRIC_FAMILY("galarelay_chat_delivered_bytes_total", METRIC_COUNTER,
                    "Batch bytes queued to members, by frame form (text; deflate: compressed batches)"),
      RS("galarelay_chat_deflated_batches_total", METRIC_COUNTER, "Batches deflated, once per room, audience and tick",
         st.deflated_frames),
      RS("galarelay_chat_member_ticks_total", METRIC_COUNTER, "Members queued frames by a tick, summed over ticks",
         st.member_ticks),
  };
#undef RS
  struct room_sample *rs = calloc(CHAT_ROOMS_MAX, sizeof *rs);
  if (!rs)
    return;
  for (int i = 0; i < CHAT_ROOMS_MAX; i++) {
    if (!c->rooms[i].room)
      continue;
    rs[i].members = room_member_count(c->rooms[i].room);
    room_get_stats(c->rooms[i].room, &rs[i].st);
  }
  char label[128];
  for (size_t k = 0; k < METRICS_COUNT(rows); k++) {
    metrics_head(out, &rows[k]);
    for (int i = 0; i < CHAT_ROOMS_MAX; i++) {
      if (!c->rooms[i].room)
        continue;
      if (rows[k].source != METRIC_SRC_NONE) {
        snprintf(label, sizeof label, "channel=\"%s\"", c->rooms[i].channel);
        metrics_sample(out, &rows[k], label, &rs[i]);
        continue;
      }
      if (!strcmp(rows[k].name, "galarelay_chat_delivered_bytes_total")) {
        snprintf(label, sizeof label, "channel=\"%s\",form=\"text\"", c->rooms[i].channel);
        metrics_count(out, &rows[k], label, rs[i].st.delivered_text_bytes);
        snprintf(label, sizeof label, "channel=\"%s\",form=\"deflate\"", c->rooms[i].channel);
        metrics_count(out, &rows[k], label, rs[i].st.delivered_deflate_bytes);
        continue;
      }
      for (int r = ROOM_RATE_LIMITED; r < ROOM_REFUSAL_COUNT; r++) { /* comments refused, by reason */
        snprintf(label, sizeof label, "channel=\"%s\",reason=\"%s\"", c->rooms[i].channel, room_refusal_code(r));
        metrics_count(out, &rows[k], label, rs[i].st.refused[r]);
      }
    }
  }
  free(rs);
  bad_frames_metrics(c, out);
  fanout_metrics(c, out);
  if (c->filter) {
    static const struct metric words =
        METRIC_FIELD("galarelay_chat_banned_words", METRIC_GAUGE, "Banned words in the current automaton",
                     struct filter_stats, words);
    struct filter_stats fs;
    filter_get_stats(c->filter, &fs);
    metrics_write(out, &words, 1, &fs);
  }
  if (c->archive)
    archive_metrics(c->archive, out);
  if (c->bus)
    bus_metrics(c->bus, out);
}

int chat_room_counts(const struct chat *c, const char *channel, int *members) {
  for (int i = 0; i < CHAT_ROOMS_MAX; i++) {
    const struct chat_room *slot = &c->rooms[i];
    if (slot->room && !slot->removed && !strcmp(slot->channel, channel)) {
      *members = (int)room_member_count(slot->room);
      return 0;
    }
  }
  return -ENOENT;
}
