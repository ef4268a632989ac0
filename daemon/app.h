/* app: the daemon's shared context, owned by main and touched only on the
 * loop thread. Subsystems keep a pointer to it; nothing here is global. */
#ifndef GALARELAY_APP_H
#define GALARELAY_APP_H

#include <stdint.h>
#include <uv.h>

struct config;
struct lws_context;
struct channel_registry; /* relay/channel.h */
struct restream;         /* relay/restream.h */
struct rtmp_server;      /* relay/rtmp_server.h */
struct hls_server;       /* transcoder/hls/hls_http.h */
struct chat;             /* chat/chat.h */
struct transcoder;       /* transcoder/transcoder.h */

struct app {
  uv_loop_t *loop;
  /* The current config. Swapped on SIGHUP by main (old one freed after the
   * subsystems have been told through their *_reload functions). */
  const struct config *cfg;
  struct lws_context *lws;

  struct channel_registry *channels;
  struct restream *restream;
  struct rtmp_server *rtmp;
  struct hls_server *hls;
  struct transcoder *transcoder;
  struct chat *chat;

  uint64_t started_ms;     /* uv_now at start, for uptime */
  uint64_t config_reloads; /* successful */
  uint64_t config_reload_failures;
  int stopping; /* set once SIGTERM/SIGINT arrived */
};

#endif
