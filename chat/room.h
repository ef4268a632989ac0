/* room: one channel's live comment room, without sockets.
 *
 * A room knows its members (each with a role and a bounded send queue),
 * the history ring new members receive, the room state (slow mode, hold
 * mode, pinned comment), the held queue moderators review, and per user
 * and per address the rate limit buckets, bans and timeouts.
 *
 * Events reach a room only through room_deliver (from the bus, in the one
 * order every node shares); the room applies them to its state and keeps
 * them until the next room_tick, which serialises them once into shared
 * refcounted frames (one for moderators, one for viewers when they differ)
 * and queues a reference to each member. Moderators get events in their
 * full form, viewers in the lean one (chat_event_for_viewers); a member
 * that asked for compressed batches gets the same batch deflated, once per
 * room and tick, as a binary frame. The transport (chat.c) takes
 * frames off a member's queue with room_member_take when the socket can be
 * written, and is told through room_ops to wake a writer or to close a
 * member that fell too far behind.
 *
 * Send queue policy (per member, the Redis client-output-buffer idea):
 *   - at most ROOM_QUEUE_FRAMES frames and chat.queue_soft_bytes bytes are
 *     queued; past either, the oldest *batch* frames are dropped (never a
 *     reply: ack, error, welcome) and the member is told how many with a
 *     {"type":"dropped","batches":N} event before its next frame;
 *   - when queued bytes plus the bytes dropped since the member's last
 *     completed write pass chat.queue_hard_bytes, the member is closed
 *     (1008): it is not reading at all. Nobody waits for it.
 * Sampling: when comments arrive faster than chat.viewer_events_per_sec,
 * viewers get a sample (a room-wide token bucket decides which comments
 * go into the viewers' frame); moderators get everything; a sender always
 * gets their own comments (a small frame of their own when the sample left
 * them out).
 *
 * Everything here runs on the loop thread. */
#ifndef GALARELAY_CHAT_ROOM_H
#define GALARELAY_CHAT_ROOM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/protocol.h"
#include "chat/ratelimit.h"

struct buf;
struct config_chat;
struct filter;
struct room;

#define ROOM_QUEUE_FRAMES 64 /* frames per member queue (ring) */
#define ROOM_HELD_MAX 1000   /* held comments per room; past it the oldest is forgotten */
/* User and address entries per room (each table). An entry is made only
 * for state worth keeping: a connected address, a user whose comment was
 * accepted or held (bucket and slow mode), a ban or timeout; a refusal
 * never makes one. Entries with nothing left (full buckets, no ban, no
 * connection, out of the slow mode window) are forgotten every few
 * seconds. Past the bound, a new user's comment is refused as
 * rate_limited (a busy server) until the sweep frees room; existing
 * entries are never evicted, so no ban is lost. */
#define ROOM_USERS_MAX 200000
#define ROOM_NAME_MAX 32            /* code points of a display name */
#define ROOM_WELCOME_WORDS_MAX 1000 /* banned words in a moderator's welcome; more: counted */

enum room_role { ROOM_VIEWER = 0, ROOM_MODERATOR = 1 };
const char *room_role_name(enum room_role r);

/* Refusals, in the error codes of docs/protocol.md. */
enum room_refusal {
  ROOM_OK = 0,
  ROOM_RATE_LIMITED,
  ROOM_SLOW_MODE,
  ROOM_TOO_LONG,
  ROOM_EMPTY,
  ROOM_BANNED,
  ROOM_TIMED_OUT,
  ROOM_BAD_REQUEST,
  ROOM_FORBIDDEN,
  ROOM_HELD,
  ROOM_REFUSAL_COUNT,
};
const char *room_refusal_code(enum room_refusal r);

struct room_params {
  int history;
  int max_comment_length; /* code points */
  int max_combining;
  double user_rate;
  int user_burst;
  double addr_rate;
  int addr_burst;
  int max_connections_per_addr;
  size_t queue_soft_bytes;
  size_t queue_hard_bytes;
  int viewer_events_per_sec; /* 0 = no sampling */
  double hello_rate;         /* hellos per second, per connection */
  int hello_burst;
  double hello_addr_rate; /* hellos per second, per address */
  int hello_addr_burst;
  bool filter_hold;
  size_t headroom; /* bytes before each frame's payload (LWS_PRE) */
};
void room_params_from_config(struct room_params *p, const struct config_chat *cfg, size_t headroom);

/* A serialised server message shared by reference. Built once, with its
 * websocket header (unmasked, FIN, text) written at the end of the
 * headroom: a server frame's header is the same for every member, so the
 * transport can send room_frame_wire() as it is to each socket, and lws
 * (which writes the same header into the headroom) can send the payload. */
struct room_frame {
  unsigned refs;
  bool reply;          /* a unicast reply: never dropped */
  bool binary;         /* a deflated batch: sent as a binary websocket frame */
  uint8_t hdr;         /* header bytes before the payload; 0: no room for one */
  size_t len;          /* payload bytes */
  unsigned char *base; /* headroom bytes, then the payload */
};
static inline unsigned char *room_frame_payload(struct room_frame *f, size_t headroom) { return f->base + headroom; }
/* The whole websocket frame (header and payload); NULL when the headroom
 * had no room for a header (under 10 bytes). */
const unsigned char *room_frame_wire(const struct room_frame *f, size_t headroom, size_t *len);
void room_frame_unref(struct room_frame *f);

struct room_member {
  struct room *room; /* NULL until joined */
  void *transport;   /* the connection (chat.c) */
  uint64_t conn_id;
  char addr[64];
  char user_id[CHAT_ID_MAX + 1];
  char name[4 * ROOM_NAME_MAX + 1];
  enum room_role role;
  bool named;             /* may post: hello with a name, or a valid token */
  struct ratelimit hello; /* this connection's hellos (room_admit_hello) */
  bool authenticated;     /* a verified token */
  bool deflate;           /* asked for compressed batches (hello "compress") */
  /* send queue (policy above) */
  struct room_frame *ring[ROOM_QUEUE_FRAMES];
  unsigned head, count;
  size_t queue_bytes;
  size_t debt;              /* bytes dropped since the last frame taken */
  uint64_t dropped_batches; /* not yet told */
  bool kicked;
  /* viewer sample: a sender's own comment ids left out of this tick */
  struct room_member *prev, *next;
};

struct room_ops {
  /* frames were queued for m: have them written (the transport paces it) */
  void (*wake)(void *opaque, struct room_member *m);
  /* close m (it stays a member until the transport calls room_leave) */
  void (*kick)(void *opaque, struct room_member *m, int close_code, const char *reason);
  /* a words event arrived (add/remove of banned words) */
  void (*words)(void *opaque, struct room *r, const json_t *event);
};

struct room *room_new(const char *channel, const struct room_params *p, const struct room_ops *ops, void *opaque,
                      struct filter *filter);
/* Members must have left (room_leave) first. */
void room_free(struct room *r);
void room_configure(struct room *r, const struct room_params *p);
const char *room_channel(const struct room *r);
size_t room_member_count(const struct room *r);

/* Join: 0, or -EAGAIN when the address has too many connections (or the
 * room's address table is full). */
int room_join(struct room *r, struct room_member *m);
/* Leave: drops the queue. Safe to call for a member that never joined. */
void room_leave(struct room_member *m);

/* Close every member (through ops->kick); they leave on their own. */
void room_close_all(struct room *r, int close_code, const char *reason);
void room_for_each_member(struct room *r, void (*fn)(void *opaque, struct room_member *m), void *opaque);

/* ---- Replies (unicast, never dropped): 0, -ENOTCONN (m is no member),
 * -ENOMEM */
int room_send(struct room_member *m, const json_t *msg);
/* room_member.addr, the address a member is limited and banned by, is the
 * client key of core/netaddr.h: an IPv6 member by its /64. */

/* welcome: the user, the state and the history (docs/protocol.md); a moderator's also
 * has the held queue and the banned words (at most ROOM_WELCOME_WORDS_MAX,
 * with banned_words_total). The history part is serialised once per
 * change of the history (room_history_json) and copied into each welcome
 * as bytes: a hello costs a memcpy, never a walk of N comments. */
int room_send_welcome(struct room *r, struct room_member *m);
/* The history as one JSON array text in the form role's members get
 * (viewers: lean comments), built when the history changed since the last
 * call and shared by every welcome until the next change. Owned by the
 * room: valid until the next change of the history. NULL when out of
 * memory. */
const char *room_history_json(struct room *r, enum room_role role, size_t *len);

/* A hello from m (which changes the name or role and costs a welcome):
 * ROOM_OK, or ROOM_RATE_LIMITED with *retry_after_ms when the
 * connection's or the address's hello bucket is empty. Takes a token
 * from both only when allowed. */
enum room_refusal room_admit_hello(struct room *r, struct room_member *m, uint64_t now_ms, int64_t *retry_after_ms);
/* Next frame to write, with one reference for the caller (unref after
 * writing), or NULL when the queue is empty. */
struct room_frame *room_member_take(struct room_member *m);
bool room_member_has_frames(const struct room_member *m);
/* The i-th frame room_member_take would return next (0 = the next),
 * without taking it or a reference: valid until the queue changes. NULL
 * past the end, and at once while a dropped notice is due (take builds it
 * then). Lets the transport write several frames with one system call and
 * take only what the kernel accepted. */
struct room_frame *room_member_peek(const struct room_member *m, unsigned i);
/* Whether the newest frame in m's queue is a reply (ack, error, welcome):
 * the transport writes those at once instead of in the fan-out's turn. */
bool room_member_reply_queued(const struct room_member *m);

/* ---- Posting */

/* Check a comment from m (text: the raw client text, valid UTF-8). On
 * ROOM_OK or ROOM_HELD *display is the display form (malloc'd, caller
 * frees); ROOM_HELD means: keep it for review. Other results are refusals,
 * *retry_after_ms set where waiting helps (-1 otherwise). Takes a token
 * from the user's and the address's bucket only when accepted. */
enum room_refusal room_admit_comment(struct room *r, struct room_member *m, const char *text, char **display,
                                     int64_t *retry_after_ms, uint64_t now_ms, int64_t wall_ms);
/* Remember where a user posted from, so a ban reaches their address. */
void room_note_author(struct room *r, const char *user_id, const char *addr);
/* Addresses known for a user (connected members and recent comments);
 * calls fn for each. */
void room_user_addrs(struct room *r, const char *user_id, void (*fn)(void *opaque, const char *addr), void *opaque);

/* ---- Events: applied in bus order, queued for the next tick.
 * event types: comment, delete, clear, state, held, resolved (docs/protocol.md), and
 * the moderators' ban, timeout, unban, words. Returns 0, or -EINVAL if
 * malformed. */
int room_deliver(struct room *r, const json_t *event, int64_t wall_ms);
void room_tick(struct room *r, int64_t wall_ms);

/* ---- Loading at start (archive): no events are generated */
void room_load_comment(struct room *r, json_t *comment /* stolen */);
void room_load_held(struct room *r, json_t *comment /* stolen */);
void room_load_ban(struct room *r, const char *user_id, const char *addr, int64_t until_ms);
void room_load_state(struct room *r, int slow_seconds, bool hold, const char *pinned_id);

/* ---- Lookups for moderator actions */
const json_t *room_find_comment(const struct room *r, const char *id); /* history */
const json_t *room_find_held(const struct room *r, const char *id);
int room_slow_seconds(const struct room *r);
bool room_hold(const struct room *r);
const json_t *room_pinned(const struct room *r);

struct room_stats {
  uint64_t accepted;
  uint64_t refused[ROOM_REFUSAL_COUNT];
  uint64_t delivered_events; /* event copies queued to members */
  uint64_t dropped_batches;
  uint64_t kicked_slow;
  uint64_t frames;                  /* batch frames built */
  uint64_t deflated_frames;         /* of them deflated (compressed batches) */
  uint64_t delivered_text_bytes;    /* batch payload bytes queued to members, text frames */
  uint64_t delivered_deflate_bytes; /* and deflated (binary) frames */
  uint64_t member_ticks;            /* members that got frames in a tick, summed over ticks */
  size_t queue_bytes;               /* now, over all members */
  size_t held;
  size_t users, addrs;     /* entries in the tables now */
  uint64_t hello_refused;  /* hellos refused by room_admit_hello */
  uint64_t history_builds; /* times the history JSON was serialised */
};
void room_get_stats(const struct room *r, struct room_stats *out);
/* Record a refusal decided outside room_admit_comment (forbidden, busy). */
void room_count_refusal(struct room *r, enum room_refusal why);

#endif
