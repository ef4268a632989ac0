/* archive: see archive.h. The loop thread owns submit, completions, loads
 * and the in-flight bound; the archive thread owns the writer connection.
 * Pending records are a FIFO list under a mutex and a condition (loop to
 * thread); each written batch goes back to the loop through a workq
 * (core/workq.h), whose callback runs the completions. */
#include "chat/archive.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/workq.h"
#include "core/metrics.h"

#define ARCHIVE_NSTR 7

enum archive_kind {
  REC_COMMENT,
  REC_STATUS,
  REC_CLEAR,
  REC_MOD,
  REC_BAN,
  REC_UNBAN,
  REC_WORD,
  REC_STATE,
  REC_APPROVE,
  REC_USER_DELETED,
  REC_COMMENT_IF_NEW,
  REC_DROP_HELD,
  REC_KINDS /* how many */
};

/* One record: its strings live in the same allocation, after the struct. */
struct archive_rec {
  struct archive_rec *next;
  enum archive_kind kind;
  const char *s[ARCHIVE_NSTR];
  int64_t n[2];
  int i[2];
  size_t bytes;
  uint64_t queued_ns; /* uv_hrtime at submit: bounds the wait for commit */
  archive_done_fn done;
  void *opaque;
  int ok;
};

struct rec_list {
  struct archive_rec *head, *tail;
  size_t count;
};

/* Commit latency histogram bounds, seconds. */
static const double commit_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
#define NBUCKETS (sizeof commit_buckets / sizeof commit_buckets[0])

struct archive {
  uv_loop_t *loop;
  /* Written batches (a struct rec_list each), archive thread to loop.
   * Refuse-new, bound queue_max + 1: a batch holds at least one record and
   * at most queue_max records are in flight, so it is never full. */
  struct workq *written;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cond;
  sqlite3 *wdb;                  /* archive thread only (after open) */
  sqlite3 *rdb;                  /* loop thread only: loads */
  sqlite3_stmt *stmt[REC_KINDS]; /* writer statements, by enum archive_kind */
  sqlite3_stmt *stmt_word_del;   /* REC_WORD remove */
  int commit_ms;
  int batch;
  int queue_max;

  /* under mu */
  struct rec_list in; /* submitted, not yet written */
  int stopping;
  uint64_t commits, commit_failures, committed, failed;
  double lat_sum, lat_max;
  uint64_t lat_buckets[NBUCKETS + 1];

  /* loop thread only */
  int closing;
  void (*stopped)(void *arg); /* archive_stop's callback, after the free */
  void *stopped_arg;
  size_t in_flight;
  size_t in_flight_bytes;
  uint64_t submitted, refused;
};

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS comments ("
    " seq INTEGER PRIMARY KEY, id TEXT NOT NULL, channel TEXT NOT NULL,"
    " user_id TEXT NOT NULL, user_name TEXT NOT NULL, role TEXT NOT NULL,"
    " text TEXT NOT NULL, ts INTEGER NOT NULL, addr TEXT NOT NULL,"
    " status INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS comments_channel_id ON comments(channel, id);"
    "CREATE INDEX IF NOT EXISTS comments_channel_status ON comments(channel, status, id);"
    "CREATE INDEX IF NOT EXISTS comments_channel_user ON comments(channel, user_id, ts);"
    "CREATE TABLE IF NOT EXISTS mod_log ("
    " seq INTEGER PRIMARY KEY, channel TEXT NOT NULL, ts INTEGER NOT NULL,"
    " moderator TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,"
    " detail TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS mod_log_channel_ts ON mod_log(channel, ts);"
    "CREATE TABLE IF NOT EXISTS bans ("
    " channel TEXT NOT NULL, user_id TEXT NOT NULL, addr TEXT NOT NULL,"
    " until INTEGER NOT NULL, ts INTEGER NOT NULL, by TEXT NOT NULL,"
    " PRIMARY KEY (channel, user_id, addr));"
    "CREATE INDEX IF NOT EXISTS bans_until ON bans(until);"
    "CREATE TABLE IF NOT EXISTS banned_words ("
    " channel TEXT NOT NULL, word TEXT NOT NULL, PRIMARY KEY (channel, word));"
    "CREATE TABLE IF NOT EXISTS room_state ("
    " channel TEXT PRIMARY KEY, slow INTEGER NOT NULL, hold INTEGER NOT NULL,"
    " pinned TEXT NOT NULL);"
    "PRAGMA user_version = 1;";

/* Indexed by enum archive_kind. */
static const char *const stmt_sql[REC_KINDS] = {
    [REC_COMMENT] = "INSERT INTO comments(id, channel, user_id, user_name, role, text, ts,"
                    " addr, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?9, ?7, ?11)",
    [REC_STATUS] = "UPDATE comments SET status = ?11 WHERE channel = ?1 AND id = ?2",
    /* visible only: held comments stay in the review queue, as in memory */
    [REC_CLEAR] = "UPDATE comments SET status = 2 WHERE channel = ?1 AND status = 0"
                  " AND ts <= ?9",
    [REC_MOD] = "INSERT INTO mod_log(channel, ts, moderator, action, target, detail)"
                " VALUES (?1, ?9, ?2, ?3, ?4, ?5)",
    [REC_BAN] = "INSERT OR REPLACE INTO bans(channel, user_id, addr, until, ts, by)"
                " VALUES (?1, ?2, ?3, ?9, ?10, ?4)",
    [REC_UNBAN] = "DELETE FROM bans WHERE channel = ?1 AND ((?2 <> '' AND user_id = ?2)"
                  " OR (?3 <> '' AND addr = ?3))",
    [REC_WORD] = "INSERT OR IGNORE INTO banned_words(channel, word) VALUES (?1, ?2)",
    [REC_STATE] = "INSERT OR REPLACE INTO room_state(channel, slow, hold, pinned)"
                  " VALUES (?1, ?11, ?12, ?2)",
    /* published under its new id (ids sort in publish order) */
    [REC_APPROVE] = "UPDATE comments SET id = ?3, status = 0 WHERE channel = ?1 AND id = ?2"
                    " AND status = 1",
    /* ban/timeout: what room.c's apply_ban takes out of the history (the
     * user id's visible comments; held ones stay reviewable) */
    [REC_USER_DELETED] = "UPDATE comments SET status = 2 WHERE channel = ?1 AND user_id = ?2"
                         " AND status = 0",
    /* from another node: it may come twice around a Redis failure */
    [REC_COMMENT_IF_NEW] = "INSERT OR IGNORE INTO comments(id, channel, user_id, user_name,"
                           " role, text, ts, addr, status)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?9, ?7, ?11)",
    /* approved on another node: its comment event inserted the new id */
    [REC_DROP_HELD] = "DELETE FROM comments WHERE channel = ?1 AND id = ?2 AND status = 1",
};
/* Parameters: ?1..?7 = s[0..6], ?9/?10 = n[0..1], ?11/?12 = i[0..1]. */

const char *archive_status_name(enum archive_status s) {
  switch (s) {
  case ARCHIVE_VISIBLE: return "visible";
  case ARCHIVE_HELD: return "held";
  case ARCHIVE_DELETED: return "deleted";
  case ARCHIVE_REJECTED: return "rejected";
  }
  return "?";
}

static void list_push(struct rec_list *l, struct archive_rec *r) {
  r->next = NULL;
  if (l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
  l->count++;
}

/* ---- Archive thread */

static int bind_rec(sqlite3_stmt *st, const struct archive_rec *r) {
  int np = sqlite3_bind_parameter_count(st);
  for (int p = 1; p <= np; p++) {
    int rc = SQLITE_OK;
    if (p <= ARCHIVE_NSTR)
      rc = sqlite3_bind_text(st, p, r->s[p - 1] ? r->s[p - 1] : "", -1, SQLITE_STATIC);
    else if (p == 9 || p == 10)
      rc = sqlite3_bind_int64(st, p, r->n[p - 9]);
    else if (p == 11 || p == 12)
      rc = sqlite3_bind_int(st, p, r->i[p - 11]);
    if (rc != SQLITE_OK)
      return rc;
  }
  return SQLITE_OK;
}

static int write_rec(struct archive *a, struct archive_rec *r) {
  sqlite3_stmt *st = a->stmt[r->kind];
  if (r->kind == REC_WORD && !r->i[0])
    st = a->stmt_word_del;
  int rc = bind_rec(st, r);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) {
    log_warn("archive", "write failed kind=%d err=%s", (int)r->kind, sqlite3_errmsg(a->wdb));
    return -EIO;
  }
  return 0;
}

/* One transaction for the whole list. A record whose statement fails is
 * reported as failed and the others still commit (a statement error rolls
 * back that statement only); a failed COMMIT fails them all. */
static void write_batch(struct archive *a, struct rec_list *batch) {
  uint64_t t0 = uv_hrtime();
  int ok = sqlite3_exec(a->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
  size_t good = 0;
  for (struct archive_rec *r = batch->head; r; r = r->next) {
    r->ok = ok && write_rec(a, r) == 0;
    good += (size_t)r->ok;
  }
  if (ok && sqlite3_exec(a->wdb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    log_error("archive", "commit failed records=%zu err=%s", batch->count, sqlite3_errmsg(a->wdb));
    sqlite3_exec(a->wdb, "ROLLBACK", NULL, NULL, NULL);
    ok = 0;
  } else if (!ok) {
    log_error("archive", "begin failed records=%zu err=%s", batch->count, sqlite3_errmsg(a->wdb));
  }
  if (!ok) {
    for (struct archive_rec *r = batch->head; r; r = r->next)
      r->ok = 0;
    good = 0;
  }
  double secs = (double)(uv_hrtime() - t0) / 1e9;

  uv_mutex_lock(&a->mu);
  if (ok) {
    a->commits++;
    a->lat_sum += secs;
    if (secs > a->lat_max)
      a->lat_max = secs;
    size_t k = 0;
    while (k < NBUCKETS && secs > commit_buckets[k])
      k++;
    a->lat_buckets[k]++;
  } else {
    a->commit_failures++;
  }
  a->committed += good;
  a->failed += batch->count - good;
  uv_mutex_unlock(&a->mu);
  if (workq_push(a->written, batch) < 0) /* cannot be: see the bound */
    log_error("archive", "written batch lost records=%zu", batch->count);
}

static void archive_thread(void *arg) {
  struct archive *a = arg;
  uv_mutex_lock(&a->mu);
  for (;;) {
    while (!a->in.head && !a->stopping)
      uv_cond_wait(&a->cond, &a->mu);
    if (!a->in.head)
      break; /* stopping and drained */
    /* Group commit: wait until the oldest record has waited commit_ms,
     * or enough records are here, or we are told to stop. */
    uint64_t deadline = a->in.head->queued_ns + (uint64_t)a->commit_ms * 1000000u;
    while (!a->stopping && a->in.count < (size_t)a->batch) {
      uint64_t now = uv_hrtime();
      if (now >= deadline)
        break;
      uv_cond_timedwait(&a->cond, &a->mu, deadline - now);
    }
    /* At most `batch` records per transaction, so one commit's latency
     * stays bounded under a flood; the rest go in the next one at once. */
    struct rec_list batch = {a->in.head, a->in.head, 1};
    while (batch.count < (size_t)a->batch && batch.tail->next) {
      batch.tail = batch.tail->next;
      batch.count++;
    }
    a->in.head = batch.tail->next;
    if (!a->in.head)
      a->in.tail = NULL;
    a->in.count -= batch.count;
    batch.tail->next = NULL;
    uv_mutex_unlock(&a->mu);
    write_batch(a, &batch);
    uv_mutex_lock(&a->mu);
  }
  uv_mutex_unlock(&a->mu);
}

/* ---- Loop thread: completions */

/* One written batch (ok or not): its records' completions, in order. */
static void on_written(void *item, void *opaque) {
  struct archive *a = opaque;
  const struct rec_list *batch = item;
  for (struct archive_rec *r = batch->head, *next; r; r = next) {
    next = r->next;
    a->in_flight--;
    a->in_flight_bytes -= r->bytes;
    if (r->done)
      r->done(r->opaque, r->ok);
    free(r);
  }
}

/* ---- Open / close */

static int exec_sql(sqlite3 *db, const char *sql, const char *what) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    log_error("archive", "%s failed: %s", what, err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    return -EIO;
  }
  return 0;
}

static int open_writer(struct archive *a, const char *path) {
  if (sqlite3_open_v2(path, &a->wdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
      SQLITE_OK) {
    log_error("archive", "open failed path=%s err=%s", path, a->wdb ? sqlite3_errmsg(a->wdb) : "no memory");
    return -EIO;
  }
  sqlite3_busy_timeout(a->wdb, 5000);
  /* FULL: the WAL is fsync'd at each commit, so an ack survives power loss
   * too; group commit pays that once per transaction (see archive.h). */
  if (exec_sql(a->wdb, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", "pragmas") ||
      exec_sql(a->wdb, schema_sql, "schema"))
    return -EIO;
  for (int k = 0; k < REC_KINDS; k++) {
    if (sqlite3_prepare_v3(a->wdb, stmt_sql[k], -1, SQLITE_PREPARE_PERSISTENT, &a->stmt[k], NULL) != SQLITE_OK) {
      log_error("archive", "prepare failed: %s", sqlite3_errmsg(a->wdb));
      return -EIO;
    }
  }
  if (sqlite3_prepare_v3(a->wdb, "DELETE FROM banned_words WHERE channel = ?1 AND word = ?2", -1,
                         SQLITE_PREPARE_PERSISTENT, &a->stmt_word_del, NULL) != SQLITE_OK)
    return -EIO;
  return 0;
}

static void close_dbs(struct archive *a) {
  for (int k = 0; k < REC_KINDS; k++)
    sqlite3_finalize(a->stmt[k]);
  sqlite3_finalize(a->stmt_word_del);
  sqlite3_close(a->wdb);
  sqlite3_close(a->rdb);
}

int archive_params_from_config(struct archive_params *p, const struct config_server *server,
                               const struct config_chat *chat, char *pathbuf, size_t pathlen) {
  memset(p, 0, sizeof *p);
  const char *dir = server->state_dir[0] ? server->state_dir : ".";
  if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
    int err = errno;
    log_error("archive", "cannot create state_dir=%s: %s", dir, strerror(err));
    return -err;
  }
  int n = snprintf(pathbuf, pathlen, "%s/chat.sqlite3", dir);
  if (n < 0 || (size_t)n >= pathlen)
    return -ENAMETOOLONG;
  p->path = pathbuf;
  p->commit_ms = chat->archive_commit_ms;
  p->batch = chat->archive_batch;
  p->queue_max = ARCHIVE_QUEUE_MAX;
  return 0;
}

struct archive *archive_open(uv_loop_t *loop, const struct archive_params *p) {
  struct archive *a = calloc(1, sizeof *a);
  if (!a)
    return NULL;
  a->loop = loop;
  a->commit_ms = p->commit_ms > 0 ? p->commit_ms : 0;
  a->batch = p->batch > 0 ? p->batch : 1;
  a->queue_max = p->queue_max > 0 ? p->queue_max : ARCHIVE_QUEUE_MAX;
  if (open_writer(a, p->path) != 0 ||
      sqlite3_open_v2(p->path, &a->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    close_dbs(a);
    free(a);
    return NULL;
  }
  sqlite3_busy_timeout(a->rdb, 200);
  const struct workq_ops written_ops = {.on_item = on_written, .opaque = a};
  if (workq_new(loop, sizeof(struct rec_list), a->queue_max + 1, WORKQ_REFUSE_NEW, &written_ops, &a->written) < 0) {
    close_dbs(a);
    free(a);
    return NULL;
  }
  uv_mutex_init(&a->mu);
  uv_cond_init(&a->cond);
  if (uv_thread_create(&a->thread, archive_thread, a) != 0) {
    log_error("archive", "cannot start the archive thread");
    close_dbs(a);
    uv_mutex_destroy(&a->mu);
    uv_cond_destroy(&a->cond);
    workq_stop(a->written, free, a); /* a goes once the queue's handle is closed */
    return NULL;
  }
  log_info("archive", "open path=%s commit_ms=%d batch=%d", p->path, a->commit_ms, a->batch);
  return a;
}

static void on_closed(void *arg) {
  struct archive *a = arg;
  void (*cb)(void *) = a->stopped;
  void *cb_arg = a->stopped_arg;
  uv_mutex_destroy(&a->mu);
  uv_cond_destroy(&a->cond);
  free(a);
  if (cb)
    cb(cb_arg);
}

void archive_stop(struct archive *a, void (*cb)(void *arg), void *arg) {
  if (!a || a->closing)
    return;
  a->closing = 1;
  a->stopped = cb;
  a->stopped_arg = arg;
  uv_mutex_lock(&a->mu);
  a->stopping = 1;
  uv_cond_signal(&a->cond);
  uv_mutex_unlock(&a->mu);
  uv_thread_join(&a->thread);
  workq_drain(a->written); /* the last completions, before the queue goes */
  log_info("archive", "closed commits=%llu records=%llu failed=%llu", (unsigned long long)a->commits,
           (unsigned long long)a->committed, (unsigned long long)a->failed);
  close_dbs(a);
  workq_stop(a->written, on_closed, a);
}

/* ---- Submit */

static int submit(struct archive *a, enum archive_kind kind, const char *const *strs, int nstr, int64_t n0, int64_t n1,
                  int i0, int i1, archive_done_fn done, void *opaque) {
  size_t lens[ARCHIVE_NSTR], total = 0;
  for (int k = 0; k < nstr; k++) {
    lens[k] = strs[k] ? strlen(strs[k]) : 0;
    total += lens[k] + 1;
  }
  if (a->closing || a->in_flight >= (size_t)a->queue_max || a->in_flight_bytes + total > ARCHIVE_QUEUE_BYTES) {
    a->refused++;
    return -EAGAIN;
  }
  struct archive_rec *r = calloc(1, sizeof *r + total);
  if (!r) {
    a->refused++;
    return -ENOMEM;
  }
  char *p = (char *)(r + 1);
  for (int k = 0; k < nstr; k++) {
    if (lens[k])
      memcpy(p, strs[k], lens[k]);
    p[lens[k]] = '\0';
    r->s[k] = p;
    p += lens[k] + 1;
  }
  r->kind = kind;
  r->n[0] = n0;
  r->n[1] = n1;
  r->i[0] = i0;
  r->i[1] = i1;
  r->bytes = total;
  r->done = done;
  r->opaque = opaque;
  r->queued_ns = uv_hrtime();
  a->in_flight++;
  a->in_flight_bytes += total;
  a->submitted++;
  uv_mutex_lock(&a->mu);
  list_push(&a->in, r);
  /* Wake the thread for the first record (it starts the commit_ms clock)
   * and when a batch is full; in between it sleeps on its deadline. */
  if (a->in.count == 1 || a->in.count >= (size_t)a->batch)
    uv_cond_signal(&a->cond);
  uv_mutex_unlock(&a->mu);
  return 0;
}

int archive_submit_comment(struct archive *a, const struct archive_comment *c, archive_done_fn done, void *opaque) {
  const char *s[] = {c->id, c->channel, c->user_id, c->user_name, c->role, c->text, c->addr};
  return submit(a, REC_COMMENT, s, 7, c->ts_ms, 0, (int)c->status, 0, done, opaque);
}

int archive_submit_comment_if_new(struct archive *a, const struct archive_comment *c, archive_done_fn done,
                                  void *opaque) {
  const char *s[] = {c->id, c->channel, c->user_id, c->user_name, c->role, c->text, c->addr};
  return submit(a, REC_COMMENT_IF_NEW, s, 7, c->ts_ms, 0, (int)c->status, 0, done, opaque);
}

int archive_submit_drop_held(struct archive *a, const char *channel, const char *held_id, archive_done_fn done,
                             void *opaque) {
  const char *s[] = {channel, held_id};
  return submit(a, REC_DROP_HELD, s, 2, 0, 0, 0, 0, done, opaque);
}

int archive_submit_status(struct archive *a, const char *channel, const char *id, enum archive_status status,
                          archive_done_fn done, void *opaque) {
  const char *s[] = {channel, id};
  return submit(a, REC_STATUS, s, 2, 0, 0, (int)status, 0, done, opaque);
}

int archive_submit_approve(struct archive *a, const char *channel, const char *held_id, const char *new_id,
                           archive_done_fn done, void *opaque) {
  const char *s[] = {channel, held_id, new_id};
  return submit(a, REC_APPROVE, s, 3, 0, 0, 0, 0, done, opaque);
}

int archive_submit_clear(struct archive *a, const char *channel, int64_t ts_ms, archive_done_fn done, void *opaque) {
  const char *s[] = {channel};
  return submit(a, REC_CLEAR, s, 1, ts_ms, 0, 0, 0, done, opaque);
}

int archive_submit_user_deleted(struct archive *a, const char *channel, const char *user_id, archive_done_fn done,
                                void *opaque) {
  const char *s[] = {channel, user_id};
  return submit(a, REC_USER_DELETED, s, 2, 0, 0, 0, 0, done, opaque);
}

int archive_submit_mod(struct archive *a, const struct archive_mod *m, archive_done_fn done, void *opaque) {
  const char *s[] = {m->channel, m->moderator, m->action, m->target, m->detail};
  return submit(a, REC_MOD, s, 5, m->ts_ms, 0, 0, 0, done, opaque);
}

int archive_submit_ban(struct archive *a, const struct archive_ban *b, archive_done_fn done, void *opaque) {
  const char *s[] = {b->channel, b->user_id, b->addr, b->by};
  return submit(a, REC_BAN, s, 4, b->until_ms, b->ts_ms, 0, 0, done, opaque);
}

int archive_submit_unban(struct archive *a, const char *channel, const char *user_id, const char *addr,
                         archive_done_fn done, void *opaque) {
  const char *s[] = {channel, user_id, addr};
  return submit(a, REC_UNBAN, s, 3, 0, 0, 0, 0, done, opaque);
}

int archive_submit_word(struct archive *a, const char *channel, const char *word, int add, archive_done_fn done,
                        void *opaque) {
  const char *s[] = {channel, word};
  return submit(a, REC_WORD, s, 2, 0, 0, add ? 1 : 0, 0, done, opaque);
}

int archive_submit_room_state(struct archive *a, const struct archive_room_state *st, archive_done_fn done,
                              void *opaque) {
  const char *s[] = {st->channel, st->pinned_id};
  return submit(a, REC_STATE, s, 2, 0, 0, st->slow_seconds, st->hold ? 1 : 0, done, opaque);
}

/* ---- Loads */

static const char *col(sqlite3_stmt *st, int k) {
  const unsigned char *t = sqlite3_column_text(st, k);
  return t ? (const char *)t : "";
}

static int finish_load(struct archive *a, sqlite3_stmt *st, int rc, const char *what) {
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    log_error("archive", "load %s failed: %s", what, sqlite3_errmsg(a->rdb));
    return -EIO;
  }
  return 0;
}

int archive_load_comments(struct archive *a, const char *channel, enum archive_status status, int limit,
                          archive_comment_fn cb, void *opaque) {
  /* Newest `limit` by id, then turned around to oldest first. */
  static const char sql[] = "SELECT id, channel, user_id, user_name, role, text, ts, addr, status FROM"
                            " (SELECT * FROM comments WHERE channel = ?1 AND status = ?2 ORDER BY id DESC"
                            " LIMIT ?3) ORDER BY id ASC";
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(a->rdb, sql, -1, &st, NULL) != SQLITE_OK)
    return finish_load(a, st, SQLITE_ERROR, "comments");
  sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, (int)status);
  sqlite3_bind_int(st, 3, limit);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct archive_comment c = {
        .id = col(st, 0),
        .channel = col(st, 1),
        .user_id = col(st, 2),
        .user_name = col(st, 3),
        .role = col(st, 4),
        .text = col(st, 5),
        .ts_ms = sqlite3_column_int64(st, 6),
        .addr = col(st, 7),
        .status = (enum archive_status)sqlite3_column_int(st, 8),
    };
    cb(opaque, &c);
  }
  return finish_load(a, st, rc, "comments");
}

int archive_newest_id(struct archive *a, const char *channel, char *out, size_t len) {
  /* the (channel, id) index answers it without a scan */
  static const char sql[] = "SELECT max(id) FROM comments WHERE channel = ?1";
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(a->rdb, sql, -1, &st, NULL) != SQLITE_OK)
    return finish_load(a, st, SQLITE_ERROR, "newest id");
  sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st), found = 0;
  if (rc == SQLITE_ROW) {
    found = sqlite3_column_type(st, 0) != SQLITE_NULL;
    snprintf(out, len, "%s", col(st, 0));
    rc = sqlite3_step(st);
  }
  return finish_load(a, st, rc, "newest id") ? -1 : found;
}

int archive_load_bans(struct archive *a, const char *channel, int64_t now_ms, archive_ban_fn cb, void *opaque) {
  static const char sql[] = "SELECT channel, user_id, addr, until, ts, by FROM bans"
                            " WHERE (?1 IS NULL OR channel = ?1) AND (until = 0 OR until > ?2)"
                            " ORDER BY channel, ts";
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(a->rdb, sql, -1, &st, NULL) != SQLITE_OK)
    return finish_load(a, st, SQLITE_ERROR, "bans");
  if (channel)
    sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, now_ms);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct archive_ban b = {
        .channel = col(st, 0),
        .user_id = col(st, 1),
        .addr = col(st, 2),
        .until_ms = sqlite3_column_int64(st, 3),
        .ts_ms = sqlite3_column_int64(st, 4),
        .by = col(st, 5),
    };
    cb(opaque, &b);
  }
  return finish_load(a, st, rc, "bans");
}

int archive_load_words(struct archive *a, const char *channel, archive_word_fn cb, void *opaque) {
  static const char sql[] = "SELECT channel, word FROM banned_words"
                            " WHERE ?1 IS NULL OR channel = ?1 ORDER BY channel, word";
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(a->rdb, sql, -1, &st, NULL) != SQLITE_OK)
    return finish_load(a, st, SQLITE_ERROR, "words");
  if (channel)
    sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    cb(opaque, col(st, 0), col(st, 1));
  return finish_load(a, st, rc, "words");
}

int archive_load_room_state(struct archive *a, const char *channel, struct archive_room_state *out, char *pinned,
                            size_t pinned_len) {
  static const char sql[] = "SELECT slow, hold, pinned FROM room_state WHERE channel = ?1";
  memset(out, 0, sizeof *out);
  out->channel = channel;
  if (pinned_len)
    pinned[0] = '\0';
  out->pinned_id = pinned;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(a->rdb, sql, -1, &st, NULL) != SQLITE_OK)
    return finish_load(a, st, SQLITE_ERROR, "room state");
  sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_finalize(st);
    return -ENOENT;
  }
  if (rc != SQLITE_ROW)
    return finish_load(a, st, rc, "room state");
  out->slow_seconds = sqlite3_column_int(st, 0);
  out->hold = sqlite3_column_int(st, 1);
  if (pinned_len)
    snprintf(pinned, pinned_len, "%s", col(st, 2));
  sqlite3_finalize(st);
  return 0;
}

/* ---- Metrics */

void archive_get_stats(const struct archive *a, struct archive_stats *o) {
  struct archive *m = (struct archive *)a; /* the mutex is not logically state */
  memset(o, 0, sizeof *o);
  o->submitted = a->submitted;
  o->refused = a->refused;
  o->in_flight = a->in_flight;
  uv_mutex_lock(&m->mu);
  o->committed = a->committed;
  o->failed = a->failed;
  o->commits = a->commits;
  o->commit_failures = a->commit_failures;
  o->commit_seconds_sum = a->lat_sum;
  o->commit_seconds_max = a->lat_max;
  uv_mutex_unlock(&m->mu);
}

void archive_metrics(const struct archive *a, struct buf *out) {
#define AS(NAME, TYPE, FIELD) METRIC_FIELD(NAME, TYPE, NULL, struct archive_stats, FIELD)
  static const struct metric depth[] = {AS("galarelay_chat_archive_queue_depth", METRIC_GAUGE, in_flight)};
  static const struct metric records = METRIC_FAMILY("galarelay_chat_archive_records_total", METRIC_COUNTER, NULL);
  static const struct metric rows[] = {
      AS("galarelay_chat_archive_commits_total", METRIC_COUNTER, commits),
      AS("galarelay_chat_archive_commit_failures_total", METRIC_COUNTER, commit_failures),
      AS("galarelay_chat_archive_commit_seconds_max", METRIC_GAUGE, commit_seconds_max),
  };
#undef AS
  static const struct metric latency = METRIC_FAMILY("galarelay_chat_archive_commit_seconds", METRIC_HISTOGRAM, NULL);
  static const struct metric bucket =
      METRIC_FAMILY("galarelay_chat_archive_commit_seconds_bucket", METRIC_HISTOGRAM, NULL);
  static const struct metric sum = METRIC_FAMILY("galarelay_chat_archive_commit_seconds_sum", METRIC_HISTOGRAM, NULL);
  static const struct metric count =
      METRIC_FAMILY("galarelay_chat_archive_commit_seconds_count", METRIC_HISTOGRAM, NULL);
  struct archive_stats s;
  archive_get_stats(a, &s);
  uint64_t buckets[NBUCKETS + 1];
  struct archive *m = (struct archive *)a;
  uv_mutex_lock(&m->mu);
  memcpy(buckets, a->lat_buckets, sizeof buckets);
  uv_mutex_unlock(&m->mu);
  metrics_write(out, depth, 1, &s);
  metrics_head(out, &records);
  metrics_count(out, &records, "result=\"committed\"", s.committed);
  metrics_count(out, &records, "result=\"failed\"", s.failed);
  metrics_count(out, &records, "result=\"refused\"", s.refused);
  metrics_write(out, rows, METRICS_COUNT(rows), &s);
  metrics_head(out, &latency);
  uint64_t cum = 0;
  char le[48];
  for (size_t k = 0; k < NBUCKETS; k++) {
    cum += buckets[k];
    snprintf(le, sizeof le, "le=\"%g\"", commit_buckets[k]);
    metrics_count(out, &bucket, le, cum);
  }
  cum += buckets[NBUCKETS];
  metrics_count(out, &bucket, "le=\"+Inf\"", cum);
  metrics_value(out, &sum, NULL, s.commit_seconds_sum);
  metrics_count(out, &count, NULL, cum);
}
