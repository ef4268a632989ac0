/* archive: the durable record of live comments and moderation, in SQLite.
 *
 * One database (state_dir/chat.sqlite3, WAL mode) written only by the
 * archive thread. The loop thread submits records (a comment, a status
 * change, a moderator action, a ban, a banned word, a room state) into a
 * bounded queue; the archive thread writes them in group commits (one
 * transaction per chat.archive_commit_ms, or sooner once
 * chat.archive_batch records are waiting; never more than archive_batch
 * records in one transaction) and reports back through
 * uv_async_send. Each record's completion callback then runs on the loop
 * thread, after its transaction committed (or failed): that is where a
 * room sends the comment's ack, so "acknowledged" means "on disk".
 *
 * Durability: journal_mode=WAL with synchronous=FULL. The WAL is fsync'd
 * at every commit, so an acked record survives kill -9 *and* power loss;
 * group commit is what makes the one fsync per transaction affordable
 * (NORMAL would survive a process crash but not a power cut).
 *
 * Queue bound and policy: at most ARCHIVE_QUEUE_MAX records (or
 * ARCHIVE_QUEUE_BYTES bytes of record text) may be in flight, i.e.
 * submitted and not yet completed. Past that, archive_submit_* returns -EAGAIN
 * at once and never calls the callback: the caller refuses the comment
 * with an error. The loop thread never blocks on the archive.
 *
 * Threading: every function here is for the loop thread only (the one
 * that owns `loop`). Loads are synchronous reads on a separate read-only
 * connection (WAL readers do not wait for the writer): meant for start and
 * config reloads, small indexed queries. */
#ifndef GALARELAY_CHAT_ARCHIVE_H
#define GALARELAY_CHAT_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct buf;
struct config_chat;
struct config_server;
struct archive;

#define ARCHIVE_QUEUE_MAX 8192
#define ARCHIVE_QUEUE_BYTES (8u << 20)

enum archive_status {
  ARCHIVE_VISIBLE = 0,
  ARCHIVE_HELD = 1,
  ARCHIVE_DELETED = 2,
  ARCHIVE_REJECTED = 3,
};
/* "visible", "held", "deleted", "rejected" */
const char *archive_status_name(enum archive_status s);

/* Strings are borrowed: the archive copies what it keeps at submit time,
 * and loads pass pointers valid only during the callback. NULL = "". */
struct archive_comment {
  const char *id; /* bus_make_id(): unique, sorts in publish order */
  const char *channel;
  const char *user_id;
  const char *user_name;
  const char *role; /* "viewer", "moderator", ... */
  const char *text;
  int64_t ts_ms;    /* server time, ms since the epoch */
  const char *addr; /* client address (not shown to viewers) */
  enum archive_status status;
};

struct archive_mod {
  const char *channel;
  int64_t ts_ms;
  const char *moderator; /* user id or name of the moderator */
  const char *action;    /* "delete", "ban", "slow", ... (the mod actions of docs/protocol.md) */
  const char *target;    /* comment id or user; "" if none */
  const char *detail;    /* free text / JSON of the arguments */
};

/* A ban or timeout, on a user id or on an address (one of them set).
 * until_ms = 0: permanent ban; otherwise the timeout's end. */
struct archive_ban {
  const char *channel;
  const char *user_id;
  const char *addr;
  int64_t until_ms;
  int64_t ts_ms;
  const char *by;
};

struct archive_room_state {
  const char *channel;
  int slow_seconds;      /* 0 = off */
  int hold;              /* 1 = every comment held for review */
  const char *pinned_id; /* "" = none */
};

struct archive_params {
  const char *path; /* the database file; created with its folder's perms */
  int commit_ms;    /* longest a record waits before its transaction */
  int batch;        /* commit at once when this many records wait */
  int queue_max;    /* in-flight bound (records); 0 = ARCHIVE_QUEUE_MAX */
};

/* The database path is server->state_dir/chat.sqlite3 (state_dir is
 * created if missing); the commit cadence is the chat section's.
 * pathbuf receives the path; params->path points into it. */
int archive_params_from_config(struct archive_params *p, const struct config_server *server,
                               const struct config_chat *chat, char *pathbuf, size_t pathlen);

/* Open (create tables and indexes if needed), start the archive thread.
 * NULL on error (logged). */
struct archive *archive_open(uv_loop_t *loop, const struct archive_params *p);

/* Graceful, asynchronous stop: refuses new records, lets the thread write
 * everything queued (one last commit), joins it, runs every pending
 * completion callback (on this thread, before returning), then closes the
 * uv handle; the memory is freed in its close callback, which then calls
 * cb(arg) (cb may be NULL), so run the loop afterwards (uv_run returns by
 * itself; uv_loop_close() is then 0). Blocks for the final commit: meant
 * for shutdown. */
void archive_stop(struct archive *a, void (*cb)(void *arg), void *arg);

/* Completion: ok = 1 when the record's transaction committed, 0 when it
 * failed (the record is not stored). Called exactly once per record that
 * submit accepted, on the loop thread, in submission order. An earlier
 * record is never committed after a later one: when several records make
 * up one operation (a delete + its moderator log line), wait for the last.
 * opaque must stay valid until then: pass something that survives the
 * client going away (a refcounted ticket, an id to look up), not a pointer
 * to a connection that may close first. */
typedef void (*archive_done_fn)(void *opaque, int ok);

/* All submits: 0 = queued (done will be called once; done may be NULL),
 * -EAGAIN = refused (queue full, or closing), -ENOMEM: done is never
 * called. */
int archive_submit_comment(struct archive *a, const struct archive_comment *c, archive_done_fn done, void *opaque);
/* The same for a comment received from another node (Redis mode): one
 * whose (channel, id) is already stored is left as it is, and that is not
 * a failure (the bus may deliver an event twice around a Redis failure). */
int archive_submit_comment_if_new(struct archive *a, const struct archive_comment *c, archive_done_fn done,
                                  void *opaque);
/* An approve done on another node: the held comment held_id is dropped
 * (if still held). The visible comment comes as its own comment event,
 * under the id it was published with, stored by
 * archive_submit_comment_if_new before this (bus order); re-keying the
 * held row instead could collide with it. */
int archive_submit_drop_held(struct archive *a, const char *channel, const char *held_id, archive_done_fn done,
                             void *opaque);
/* delete / reject a comment by id (approve: archive_submit_approve). */
int archive_submit_status(struct archive *a, const char *channel, const char *id, enum archive_status status,
                          archive_done_fn done, void *opaque);
/* approve: the held comment becomes visible under new_id, the id it was
 * published with (a held comment's first id would sort before comments
 * published while it waited). */
int archive_submit_approve(struct archive *a, const char *channel, const char *held_id, const char *new_id,
                           archive_done_fn done, void *opaque);
/* "clear": every visible comment of the channel with ts <= ts_ms becomes
 * deleted. Held ones stay held: a clear leaves the review queue alone in
 * memory too, so a moderator may still approve them afterwards. */
int archive_submit_clear(struct archive *a, const char *channel, int64_t ts_ms, archive_done_fn done, void *opaque);
/* A ban or timeout of user_id: every visible comment of that user id in
 * the channel becomes deleted, what room.c removes from the history (and
 * sends delete events for), so a restart does not bring them back. Held
 * ones stay held, as in memory. */
int archive_submit_user_deleted(struct archive *a, const char *channel, const char *user_id, archive_done_fn done,
                                void *opaque);
int archive_submit_mod(struct archive *a, const struct archive_mod *m, archive_done_fn done, void *opaque);
/* Insert or replace the ban on (channel, user_id or addr). */
int archive_submit_ban(struct archive *a, const struct archive_ban *b, archive_done_fn done, void *opaque);
/* Lift the ban/timeout on (channel, user_id) or (channel, addr). */
int archive_submit_unban(struct archive *a, const char *channel, const char *user_id, const char *addr,
                         archive_done_fn done, void *opaque);
/* channel "" or NULL = global word list. add = 1 adds, 0 removes. */
int archive_submit_word(struct archive *a, const char *channel, const char *word, int add, archive_done_fn done,
                        void *opaque);
int archive_submit_room_state(struct archive *a, const struct archive_room_state *s, archive_done_fn done,
                              void *opaque);

/* ---- Loads (synchronous, loop thread; return 0, or -EIO on a read error) */

typedef void (*archive_comment_fn)(void *opaque, const struct archive_comment *c);
typedef void (*archive_ban_fn)(void *opaque, const struct archive_ban *b);
typedef void (*archive_word_fn)(void *opaque, const char *channel, const char *word);

/* The last `limit` comments of `channel` with `status`, oldest first (for
 * the history ring: ARCHIVE_VISIBLE; for the review queue: ARCHIVE_HELD). */
int archive_load_comments(struct archive *a, const char *channel, enum archive_status status, int limit,
                          archive_comment_fn cb, void *opaque);
/* The greatest comment id of `channel` in any status (deleted and
 * rejected too), for the id generator's floor at start: 1 and the id in
 * out, 0 when the channel has none, -1 on error. */
int archive_newest_id(struct archive *a, const char *channel, char *out, size_t len);
/* Bans that are still active at now_ms (permanent or until > now_ms).
 * channel NULL = every channel. */
int archive_load_bans(struct archive *a, const char *channel, int64_t now_ms, archive_ban_fn cb, void *opaque);
/* channel NULL = every word (global ones have channel ""); "" = global only;
 * a name = that channel's words only. */
int archive_load_words(struct archive *a, const char *channel, archive_word_fn cb, void *opaque);
/* Fills *out (its pinned_id points into pinned, which has room for
 * pinned_len bytes). Returns 0 when a state was stored, -ENOENT when none
 * (out is then all off), -EIO on a read error. */
int archive_load_room_state(struct archive *a, const char *channel, struct archive_room_state *out, char *pinned,
                            size_t pinned_len);

/* ---- Metrics (loop thread) */

struct archive_stats {
  uint64_t submitted;
  uint64_t refused;   /* queue full or closing */
  uint64_t committed; /* records in committed transactions */
  uint64_t failed;    /* records whose write or commit failed */
  uint64_t commits;   /* transactions */
  uint64_t commit_failures;
  uint64_t in_flight; /* queue depth: submitted, completion not yet run */
  double commit_seconds_sum;
  double commit_seconds_max;
};
void archive_get_stats(const struct archive *a, struct archive_stats *out);

/* Prometheus text: galarelay_chat_archive_* (queue depth, commits,
 * failures, records, commit latency histogram). */
void archive_metrics(const struct archive *a, struct buf *out);

#endif
