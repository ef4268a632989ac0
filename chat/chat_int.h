/* chat_int: the types the files of the chat service share: the service
 * (struct chat), a room slot and a connection. Types only: each file's
 * internal functions are declared in an internal header of its own beside
 * it (ticket_int.h, chat_requests_int.h, chat_archive_int.h), so that a
 * file reaches only the files it calls. Not an API: nothing outside chat/
 * includes these headers. Internal names carry the chat__ prefix. Loop
 * thread only. */
#ifndef GALARELAY_CHAT_INT_H
#define GALARELAY_CHAT_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "chat/bus.h"
#include "chat/chat.h"
#include "chat/idgen.h"
#include "chat/fanout.h"
#include "chat/protocol.h"
#include "chat/room.h"
#include "config/config.h"

struct archive;
struct filter;
struct lws;
struct ticket;

#define CHAT_ROOMS_MAX CONFIG_MAX_CHANNELS
#define CHAT_JWT_LEEWAY_S 30
#define CHAT_EVENTS_PER_OP 4

struct chat_room {
  char channel[64];
  struct room *room;
  unsigned tickets; /* tickets not yet answered (ticket_int.h) */
  bool removed;     /* gone from the config: freed once empty */
};

struct chat {
  uv_loop_t *loop;
  struct chat_sections cfg;   /* the current sections (chat_reload replaces them) */
  void (*stopped)(void *arg); /* chat_stop's callback */
  void *stopped_arg;
  int parts_open; /* while stopping: parts not yet released */
  uv_timer_t tick;
  struct archive *archive;
  struct bus *bus;
  struct filter *filter;
  struct room_params params;
  struct chat_room rooms[CHAT_ROOMS_MAX];
  uint64_t next_conn_id;
  struct idgen ids; /* ids while there is no bus (stopping) */
  bool stopping;
  /* the fan-out's pacing (fanout.h): members with frames to write, a slice
   * of them per turn of the loop while the idle handle runs */
  struct fanout_ready ready;
  uv_idle_t fanout_idle;
  size_t fanout_slice;
  struct fanout_stats fanout;
  struct {
    uint64_t connections, bad_utf8, oversize, bad_request, refused_join;
    uint64_t slices;        /* fan-out slices run */
    uint64_t spilled_bytes; /* rests of partly sent frames handed to lws (copied) */
    uint64_t lws_frames;    /* frames written through lws_write (not raw) */
  } stats;
};

/* Per connection (lws per-session data). */
struct chat_conn {
  struct room_member m; /* first: the room's view of this connection */
  struct lws *wsi;
  struct chat_room *slot;
  /* reassembly of one message that arrives in pieces, at most
   * max_frame_bytes; allocated at its first piece, freed after its last */
  unsigned char *rx;
  size_t rx_cap; /* bytes allocated (max_frame_bytes when it was allocated) */
  size_t rx_len;
  bool rx_binary;
  int close_code; /* set: close at the next writable callback */
  /* the write path (chat.c, "Writing to members") */
  struct fanout_link ready; /* in chat.ready: frames to write */
  bool raw;                 /* plain TCP: frames go to the socket ourselves */
  bool awaiting_writable;   /* lws holds bytes, or the kernel is full: wait for WRITEABLE */
  struct ticket *tickets;
  /* who this moderator is in the moderation log and the archive: the
   * token's short id (token:1a2b3c4d) or the JWT's sub; never the token */
  char who[CHAT_ID_MAX + 1];
};

#endif
