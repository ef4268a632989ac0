/* config: the schema table and its INI parser (inih).
 *
 * One row of `keys` is one config key: section, name, type, where it lives
 * in struct config (or struct config_channel / config_rung for the
 * per-instance sections), bounds, default and a one-line doc. The parser
 * walks the table, and so does config_defaults (each default goes through
 * the same value parser as a file's line); nothing is special-cased by
 * name except the cross-key checks in config_validate and the built-in
 * instances (the demo channel, the three-rung ladder).
 *
 * inih gives no line numbers to its handler, so we feed it through our own
 * line reader, which counts lines and sees section headers as they pass
 * (inih does not report a section that has no keys, and an empty unknown
 * section must still be an error). */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/log.h"

#ifndef GALARELAY_BUILD_WEB_ROOT
#define GALARELAY_BUILD_WEB_ROOT ""
#endif
#ifndef GALARELAY_INSTALL_WEB_ROOT
#define GALARELAY_INSTALL_WEB_ROOT "/usr/share/galarelay/web"
#endif

/* Run from a build tree, the daemon serves that build's web root (pages
 * plus the vendored player); installed, the package's. */
static const char *default_web_root(void) {
  struct stat st;
  if (GALARELAY_BUILD_WEB_ROOT[0] && stat(GALARELAY_BUILD_WEB_ROOT, &st) == 0 && S_ISDIR(st.st_mode))
    return GALARELAY_BUILD_WEB_ROOT;
  return GALARELAY_INSTALL_WEB_ROOT;
}

enum key_type {
  KT_STRING, /* plain string */
  KT_SECRET, /* string that may also come from NAME_file */
  KT_TOKENS, /* comma-separated secrets, may come from NAME_file */
  KT_LIST,   /* repeatable key: each occurrence appends (push = …) */
  KT_ADDR,
  KT_INT,
  KT_DOUBLE,
  KT_BOOL,
  KT_SIZE, /* bytes, with optional k/m/g suffix (binary) */
  KT_LOGLEVEL,
};

enum section_kind {
  SEC_NONE,
  SEC_SERVER,
  SEC_RTMP,
  SEC_HLS,
  SEC_TRANSCODER,
  SEC_CHAT,
  SEC_REDIS,
  SEC_CHANNEL,
  SEC_RUNG
};

static const char *const section_names[] = {"",     "server", "rtmp",    "hls", "transcoder",
                                            "chat", "redis",  "channel", "rung"};

struct key_def {
  enum section_kind section;
  const char *name;
  enum key_type type;
  size_t offset; /* in struct config, config_channel or config_rung */
  size_t size;   /* of the field (strings, lists: of one element) */
  double min, max;
  /* The default as a config file would write it, parsed like one by
   * config_defaults() (for [channel NAME] and [rung NAME]: the default of
   * every such section). NULL: none (a required key, a list) or computed
   * (web_root). */
  const char *def;
  /* One line on what it does: the start of its row in docs/config.md
   * (test_config checks both against the docs and galarelay.conf). */
  const char *doc;
};

#define CFG(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define CH(field) offsetof(struct config_channel, field), sizeof(((struct config_channel *)0)->field)
#define CH_ITEM(field) offsetof(struct config_channel, field), sizeof(((struct config_channel *)0)->field[0])
#define RG(field) offsetof(struct config_rung, field), sizeof(((struct config_rung *)0)->field)

static const struct key_def keys[] = {
    {SEC_SERVER, "http_listen", KT_ADDR, CFG(server.http_listen), 0, 0, "127.0.0.1:8080",
     "HTTP: pages, LL-HLS, the chat websocket"},
    {SEC_SERVER, "rtmp_listen", KT_ADDR, CFG(server.rtmp_listen), 0, 0, "127.0.0.1:1935", "RTMP ingest and play"},
    {SEC_SERVER, "state_dir", KT_STRING, CFG(server.state_dir), 0, 0, "./galarelay-state",
     "chat archive, sequence numbers"},
    {SEC_SERVER, "web_root", KT_STRING, CFG(server.web_root), 0, 0, NULL,
     "watch/moderate pages and the vendored player"},
    {SEC_SERVER, "log_level", KT_LOGLEVEL, CFG(server.log_level), 0, 0, "info", "lowest level logged"},
    {SEC_SERVER, "max_http_connections", KT_INT, CFG(server.max_http_connections), 1, 1000000, "20000",
     "open HTTP/websocket connections"},
    {SEC_SERVER, "trusted_proxy", KT_STRING, CFG(server.trusted_proxy), 0, 0, "",
     "numeric address whose X-Forwarded-For is believed"},
    {SEC_SERVER, "allowed_origins", KT_STRING, CFG(server.allowed_origins), 0, 0, "",
     "origins whose pages may open the comment websocket besides the relay's own (comma-separated, * = any"},
    {SEC_SERVER, "memory_limit_mb", KT_INT, CFG(server.memory_limit_mb), 0, 1048576, "0",
     "near it the transcoder sheds rungs, lowest priority first"},
    {SEC_SERVER, "shutdown_timeout", KT_DOUBLE, CFG(server.shutdown_timeout), 0.1, 60, "4",
     "time a graceful stop may take"},

    {SEC_RTMP, "handshake_timeout", KT_DOUBLE, CFG(rtmp.handshake_timeout), 0.1, 600, "5",
     "time from accept to finish the handshake and publish or play"},
    {SEC_RTMP, "idle_timeout", KT_DOUBLE, CFG(rtmp.idle_timeout), 0.1, 3600, "10", "without data, a peer is dropped"},
    {SEC_RTMP, "max_chunk_size", KT_INT, CFG(rtmp.max_chunk_size), 128, 16777215, "65536",
     "largest chunk size a peer may set"},
    {SEC_RTMP, "max_message_size", KT_INT, CFG(rtmp.max_message_size), 1024, 16777215, "8388608",
     "largest RTMP message, bytes"},
    {SEC_RTMP, "max_connections", KT_INT, CFG(rtmp.max_connections), 1, 100000, "1000",
     "publishers, players and connections not yet publishing or playing, together"},
    {SEC_RTMP, "max_unauthenticated_per_address", KT_INT, CFG(rtmp.max_unauthenticated_per_address), 1, 100000, "16",
     "connections from one address not yet publishing or playing (loopback included"},
    {SEC_RTMP, "publisher_reserve", KT_INT, CFG(rtmp.publisher_reserve), 1, 100000, "16",
     "slots players never take, on top of one per stream key (key, backup_key) of every channel"},
    {SEC_RTMP, "offline_player_timeout", KT_DOUBLE, CFG(rtmp.offline_player_timeout), 0.1, 86400, "30",
     "an RTMP player waiting for a channel that is not live is closed after this"},
    {SEC_RTMP, "publisher_takeover", KT_DOUBLE, CFG(rtmp.publisher_takeover), 0, 3600, "2",
     "a live publisher silent this long is replaced by a newcomer with its key"},
    {SEC_RTMP, "player_queue_bytes", KT_SIZE, CFG(rtmp.player_queue_bytes), 65536, 1073741824, "4m",
     "per player; past it the player skips to the next keyframe"},
    {SEC_RTMP, "push_retry_max", KT_DOUBLE, CFG(rtmp.push_retry_max), 0.5, 3600, "30",
     "restream reconnect backoff ceiling"},

    {SEC_CHANNEL, "key", KT_SECRET, CH(key), 0, 0, NULL, "the broadcaster's stream key (rtmp://HOST:1935/live/KEY)"},
    {SEC_CHANNEL, "backup_key", KT_SECRET, CH(backup_key), 0, 0, "", "a second encoder for the same show"},
    {SEC_CHANNEL, "title", KT_STRING, CH(title), 0, 0, "", "shown on the watch page"},
    {SEC_CHANNEL, "push", KT_LIST, CH_ITEM(push), 0, CONFIG_MAX_PUSH, NULL, "restream targets for the source feed"},
    {SEC_CHANNEL, "failover_after", KT_DOUBLE, CH(failover_after), 0.1, 600, "2",
     "without media from the active feed, the other takes over"},
    {SEC_CHANNEL, "prefer_primary", KT_BOOL, CH(prefer_primary), 0, 0, "yes",
     "the primary takes over again when it returns"},
    {SEC_CHANNEL, "slate_image", KT_STRING, CH(slate_image), 0, 0, "", "image shown while no feed is live"},
    {SEC_CHANNEL, "moderator_tokens", KT_TOKENS, CH(moderator_tokens), 0, CONFIG_MAX_TOKENS, "",
     "moderators of this channel only (a plain viewer elsewhere)"},

    {SEC_HLS, "part_duration", KT_DOUBLE, CFG(hls.part_duration), 0.1, 2, "0.333", "LL-HLS partial segment length"},
    {SEC_HLS, "segment_duration", KT_DOUBLE, CFG(hls.segment_duration), 0.5, 12, "2", "segment length"},
    {SEC_HLS, "window_segments", KT_INT, CFG(hls.window_segments), 3, 1000, "10",
     "segments kept per rendition in memory"},
    {SEC_HLS, "record_dir", KT_STRING, CFG(hls.record_dir), 0, 0, "", "mirror segments on disk"},
    {SEC_HLS, "block_timeout", KT_DOUBLE, CFG(hls.block_timeout), 0.5, 60, "6",
     "how long a blocking playlist reload may wait"},
    {SEC_HLS, "max_parked_per_address", KT_INT, CFG(hls.max_parked_per_address), 0, 1000000, "64",
     "blocking requests (playlist reload, hinted part, open segment) one client address (an IPv6 /64) may have "
     "waiting"},

    {SEC_TRANSCODER, "source_passthrough", KT_BOOL, CFG(transcoder.source_passthrough), 0, 0, "yes",
     "offer the source untouched as the top rendition"},
    {SEC_TRANSCODER, "threads", KT_INT, CFG(transcoder.threads), 0, 64, "0", "encoder threads per rung"},
    {SEC_TRANSCODER, "latency_frames", KT_INT, CFG(transcoder.latency_frames), 0, 250, "0",
     "encoder delay budget in frames"},
    {SEC_TRANSCODER, "audio_bitrate", KT_INT, CFG(transcoder.audio_bitrate), 16, 512, "128",
     "AAC bitrate when audio is re-encoded (no effect in this version: AAC is passed through)"},
    {SEC_TRANSCODER, "queue_frames", KT_INT, CFG(transcoder.queue_frames), 4, 1000, "60", "per-rung input queue bound"},

    {SEC_RUNG, "height", KT_INT, RG(height), 64, 4320, NULL, "output height"},
    {SEC_RUNG, "video_bitrate", KT_INT, RG(video_bitrate), 50, 100000, NULL, "target bitrate"},
    {SEC_RUNG, "max_rate", KT_INT, RG(max_rate), 50, 200000, NULL, "peak bitrate"},
    {SEC_RUNG, "preset", KT_STRING, RG(preset), 0, 0, "veryfast", "speed/quality trade"},
    {SEC_RUNG, "profile", KT_STRING, RG(profile), 0, 0, "high", "H.264 profile"},
    {SEC_RUNG, "priority", KT_INT, RG(priority), 0, 100, "10", "under overload the lowest sheds first"},

    {SEC_CHAT, "moderator_tokens", KT_TOKENS, CFG(chat.moderator_tokens), 0, CONFIG_MAX_TOKENS, "demo-moderator",
     "comma-separated tokens that give the moderator role in every channel"},
    {SEC_CHAT, "auth_secret", KT_SECRET, CFG(chat.auth_secret), 0, 0, "",
     "HS256 secret for viewer JWTs (sub, name, role, exp)"},
    {SEC_CHAT, "require_token", KT_BOOL, CFG(chat.require_token), 0, 0, "no", "posting needs a token"},
    {SEC_CHAT, "history", KT_INT, CFG(chat.history), 0, 10000, "100", "comments a newcomer receives"},
    {SEC_CHAT, "max_comment_length", KT_INT, CFG(chat.max_comment_length), 1, 2000, "200", "longest comment"},
    {SEC_CHAT, "max_frame_bytes", KT_INT, CFG(chat.max_frame_bytes), 256, 1048576, "4096",
     "largest websocket message from a client"},
    {SEC_CHAT, "user_rate", KT_DOUBLE, CFG(chat.user_rate), 0.01, 1000, "1", "per-user token bucket refill"},
    {SEC_CHAT, "user_burst", KT_INT, CFG(chat.user_burst), 1, 1000, "5", "per-user bucket size"},
    {SEC_CHAT, "addr_rate", KT_DOUBLE, CFG(chat.addr_rate), 0.01, 100000, "10", "per-address token bucket refill"},
    {SEC_CHAT, "addr_burst", KT_INT, CFG(chat.addr_burst), 1, 100000, "30", "per-address bucket size"},
    {SEC_CHAT, "max_connections_per_addr", KT_INT, CFG(chat.max_connections_per_addr), 1, 1000000, "50",
     "websocket connections per address"},
    {SEC_CHAT, "tick_ms", KT_INT, CFG(chat.tick_ms), 10, 1000, "50", "comments are batched and sent every tick"},
    {SEC_CHAT, "fanout_slice", KT_INT, CFG(chat.fanout_slice), 1, 1000000, "256",
     "members a batch is written to per turn of the event loop"},
    {SEC_CHAT, "queue_soft_bytes", KT_SIZE, CFG(chat.queue_soft_bytes), 4096, 1073741824, "256k",
     "past it a member loses its oldest batches"},
    {SEC_CHAT, "queue_hard_bytes", KT_SIZE, CFG(chat.queue_hard_bytes), 4096, 1073741824, "1m",
     "past it a member is disconnected"},
    {SEC_CHAT, "viewer_events_per_sec", KT_INT, CFG(chat.viewer_events_per_sec), 0, 100000, "100",
     "comments per second a viewer is sent (sampled above)"},
    {SEC_CHAT, "hello_rate", KT_DOUBLE, CFG(chat.hello_rate), 0.001, 1000, "0.2", "per-connection hello bucket refill"},
    {SEC_CHAT, "hello_burst", KT_INT, CFG(chat.hello_burst), 1, 1000, "5", "per-connection hello bucket size"},
    {SEC_CHAT, "hello_addr_rate", KT_DOUBLE, CFG(chat.hello_addr_rate), 0.001, 100000, "5",
     "per-address hello bucket refill (all the address's connections)"},
    {SEC_CHAT, "hello_addr_burst", KT_INT, CFG(chat.hello_addr_burst), 1, 100000, "100",
     "per-address hello bucket size"},
    {SEC_CHAT, "banned_words_file", KT_STRING, CFG(chat.banned_words_file), 0, 0, "",
     "banned words, one per line, reloaded on SIGHUP"},
    {SEC_CHAT, "filter_hold", KT_BOOL, CFG(chat.filter_hold), 0, 0, "no",
     "a banned word holds the comment for review instead of refusing it"},
    {SEC_CHAT, "archive_commit_ms", KT_INT, CFG(chat.archive_commit_ms), 1, 1000, "5", "archive commit interval"},
    {SEC_CHAT, "archive_batch", KT_INT, CFG(chat.archive_batch), 1, 100000, "256",
     "comments per archive commit at most"},
    {SEC_CHAT, "max_combining", KT_INT, CFG(chat.max_combining), 0, 16, "2", "combining marks kept per base character"},

    {SEC_REDIS, "url", KT_STRING, CFG(redis.url), 0, 0, "", "share comments across nodes"},
    {SEC_REDIS, "prefix", KT_STRING, CFG(redis.prefix), 0, 0, "galarelay:", "prefix of the pub/sub channel names"},
    {SEC_REDIS, "secret", KT_SECRET, CFG(redis.secret), 0, 0, "", "HMAC-SHA256 key of every event between nodes"},
};

#define KEY_COUNT (sizeof keys / sizeof keys[0])

/* ---- errors ------------------------------------------------------------- */

static void add_error(struct config_errors *errs, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_error(struct config_errors *errs, const char *file, int line, const char *fmt, ...) {
  size_t used = strlen(errs->text);
  if (used + 2 >= sizeof errs->text)
    return;
  int n = line > 0 ? snprintf(errs->text + used, sizeof errs->text - used, "%s:%d: ", file, line)
                   : snprintf(errs->text + used, sizeof errs->text - used, "%s: ", file);
  if (n < 0 || used + (size_t)n >= sizeof errs->text)
    return;
  used += (size_t)n;
  va_list ap;
  va_start(ap, fmt);
  n = vsnprintf(errs->text + used, sizeof errs->text - used, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  used = strlen(errs->text);
  if (used + 1 < sizeof errs->text) {
    errs->text[used] = '\n';
    errs->text[used + 1] = '\0';
  }
  errs->count++;
}

/* ---- value parsers ------------------------------------------------------ */

static int parse_addr(const char *value, struct config_addr *out) {
  char host[64];
  const char *colon;
  if (value[0] == '[') {
    const char *close = strchr(value, ']');
    if (!close || close[1] != ':' || (size_t)(close - value - 1) >= sizeof host)
      return -1;
    memcpy(host, value + 1, (size_t)(close - value - 1));
    host[close - value - 1] = '\0';
    colon = close + 1;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) != 1)
      return -1;
  } else {
    colon = strrchr(value, ':');
    if (!colon || (size_t)(colon - value) >= sizeof host)
      return -1;
    memcpy(host, value, (size_t)(colon - value));
    host[colon - value] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) != 1)
      return -1;
  }
  char *end;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
    return -1;
  snprintf(out->host, sizeof out->host, "%s", host);
  out->port = (uint16_t)port;
  return 0;
}

static int parse_double(const char *value, double *out) {
  char *end;
  errno = 0;
  double d = strtod(value, &end);
  if (errno || end == value || *end || !isfinite(d))
    return -1;
  *out = d;
  return 0;
}

static int parse_bool(const char *value, bool *out) {
  static const char *const yes[] = {"yes", "true", "on", "1"};
  static const char *const no[] = {"no", "false", "off", "0"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(value, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp(value, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return -1;
}

static int parse_size(const char *value, double *out) {
  char *end;
  errno = 0;
  double d = strtod(value, &end);
  if (errno || end == value || !isfinite(d) || d < 0)
    return -1;
  double mult = 1;
  if (*end) {
    switch (tolower((unsigned char)*end)) {
    case 'k': mult = 1024.0; break;
    case 'm': mult = 1024.0 * 1024; break;
    case 'g': mult = 1024.0 * 1024 * 1024; break;
    default: return -1;
    }
    end++;
    if ((*end == 'i' || *end == 'I') && (end[1] == 'b' || end[1] == 'B'))
      end += 2;
    else if (*end == 'b' || *end == 'B')
      end++;
    if (*end)
      return -1;
  }
  *out = d * mult;
  return 0;
}

/* ---- parser state ------------------------------------------------------- */

struct parse_state {
  struct config *cfg;
  struct config_errors *errs;
  const char *file;
  /* line reader over a string */
  const char *text;
  size_t pos;
  int line;
  /* the current section */
  enum section_kind section;
  void *base;       /* struct the section's keys live in */
  bool section_bad; /* unknown or invalid: its keys are skipped silently */
  bool file_has_channels, file_has_rungs;
  /* duplicate detection: one bit per key (+ its _file variant) per section
   * instance; reset at every header. */
  unsigned char seen[KEY_COUNT];
  bool global_seen[sizeof section_names / sizeof section_names[0]];
  /* where keys of the single sections and rung headers were set, so that
   * the cross-key checks in validate() can name a line */
  int key_line[KEY_COUNT];
  int rung_line[CONFIG_MAX_RUNGS];
};

static bool valid_name(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n >= max)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-' || c == '_'))
      return false;
  }
  return true;
}

/* In "defaults" below: a new [channel NAME] or [rung NAME] starts from them. */
static void default_channel(struct config *cfg, struct config_channel *ch, const char *name);
static void default_rung(struct config *cfg, struct config_rung *r, const char *name);

static void section_begin(struct parse_state *st, const char *header) {
  memset(st->seen, 0, sizeof st->seen);
  st->section = SEC_NONE;
  st->base = NULL;
  st->section_bad = true;

  char kind[32] = "", name[128] = "", extra[2];
  /* a third word makes n 3, which no section kind accepts */
  int n = sscanf(header, "%31s %127s %1s", kind, name, extra);
  for (size_t k = 1; k < sizeof section_names / sizeof section_names[0]; k++) {
    if (strcmp(kind, section_names[k]) != 0)
      continue;
    enum section_kind sk = (enum section_kind)k;
    struct config *cfg = st->cfg;
    if (sk == SEC_CHANNEL || sk == SEC_RUNG) {
      if (n != 2 || !valid_name(name, 32)) {
        add_error(st->errs, st->file, st->line, "[%s NAME] needs a name of a-z, 0-9, '-' or '_' (got \"%s\")", kind,
                  header);
        return;
      }
      if (sk == SEC_CHANNEL) {
        if (!st->file_has_channels) { /* the file's channels replace the demo channel */
          cfg->channel_count = 0;
          st->file_has_channels = true;
        }
        for (int i = 0; i < cfg->channel_count; i++) {
          if (strcmp(cfg->channels[i].name, name) == 0) {
            add_error(st->errs, st->file, st->line, "duplicate channel \"%s\" (first at line %d)", name,
                      cfg->channels[i].line);
            return;
          }
        }
        if (cfg->channel_count >= CONFIG_MAX_CHANNELS) {
          add_error(st->errs, st->file, st->line, "too many channels (at most %d)", CONFIG_MAX_CHANNELS);
          return;
        }
        struct config_channel *ch = &cfg->channels[cfg->channel_count++];
        default_channel(cfg, ch, name);
        ch->line = st->line;
        st->base = ch;
      } else {
        if (!st->file_has_rungs) { /* the file's rungs replace the default ladder */
          cfg->transcoder.rung_count = 0;
          st->file_has_rungs = true;
        }
        for (int i = 0; i < cfg->transcoder.rung_count; i++) {
          if (strcmp(cfg->transcoder.rungs[i].name, name) == 0) {
            add_error(st->errs, st->file, st->line, "duplicate rung \"%s\"", name);
            return;
          }
        }
        if (cfg->transcoder.rung_count >= CONFIG_MAX_RUNGS) {
          add_error(st->errs, st->file, st->line, "too many rungs (at most %d)", CONFIG_MAX_RUNGS);
          return;
        }
        st->rung_line[cfg->transcoder.rung_count] = st->line;
        struct config_rung *r = &cfg->transcoder.rungs[cfg->transcoder.rung_count++];
        default_rung(cfg, r, name);
        st->base = r;
      }
    } else {
      if (n != 1) {
        add_error(st->errs, st->file, st->line, "[%s] takes no name", kind);
        return;
      }
      if (st->global_seen[k]) {
        add_error(st->errs, st->file, st->line, "duplicate section [%s]", kind);
        return;
      }
      st->global_seen[k] = true;
      st->base = st->cfg;
    }
    st->section = sk;
    st->section_bad = false;
    return;
  }
  add_error(st->errs, st->file, st->line, "unknown section [%s]", header);
}

/* inih's reader: one line per call; we count lines and catch headers. */
static char *read_line(char *str, int num, void *stream) {
  struct parse_state *st = stream;
  if (st->text[st->pos] == '\0' || num < 2)
    return NULL;
  const char *start = st->text + st->pos;
  const char *nl = strchr(start, '\n');
  size_t len = nl ? (size_t)(nl - start + 1) : strlen(start);
  size_t copy = len < (size_t)num - 1 ? len : (size_t)num - 1;
  memcpy(str, start, copy);
  str[copy] = '\0';
  st->pos += len;
  st->line++;

  /* inih's line buffer is fixed (INI_MAX_LINE): a longer line would be
   * cut silently, truncating a value. Refuse it and hand inih a blank. */
  size_t content = len;
  while (content && (start[content - 1] == '\n' || start[content - 1] == '\r'))
    content--;
  if (content > (size_t)num - 1) {
    add_error(st->errs, st->file, st->line, "line is too long (at most %d bytes; put long secrets in NAME_file)",
              num - 1);
    str[0] = '\0';
    return str;
  }

  char *p = str;
  if (st->line == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
    p += 3; /* UTF-8 BOM: inih skips it too */
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '[') {
    /* An indented header would be a continuation line to inih but a header
     * to us: unindent it so both agree that it is a header. */
    if (p != str)
      memmove(str, p, strlen(p) + 1);
    p = str;
    const char *close = strchr(p, ']');
    if (close) {
      char header[256];
      size_t hl = (size_t)(close - p - 1);
      if (hl >= sizeof header)
        hl = sizeof header - 1;
      memcpy(header, p + 1, hl);
      header[hl] = '\0';
      section_begin(st, header);
    }
  }
  return str;
}

static int read_secret_file(struct parse_state *st, const char *path, char *out, size_t size) {
  FILE *f = fopen(path, "r");
  if (!f) {
    add_error(st->errs, st->file, st->line, "cannot read secret file \"%s\": %s", path, strerror(errno));
    return -1;
  }
  size_t n = fread(out, 1, size - 1, f);
  bool more = fgetc(f) != EOF;
  fclose(f);
  out[n] = '\0';
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
    out[--n] = '\0';
  if (more) {
    add_error(st->errs, st->file, st->line, "secret file \"%s\" is too long (at most %zu bytes)", path, size - 1);
    return -1;
  }
  if (n == 0) {
    add_error(st->errs, st->file, st->line, "secret file \"%s\" is empty", path);
    return -1;
  }
  return 0;
}

static int set_tokens(struct parse_state *st, const struct key_def *k, const char *value) {
  struct config_tokens *t = (struct config_tokens *)((char *)st->base + k->offset);
  t->count = 0;
  t->line = st->line;
  char copy[4096];
  snprintf(copy, sizeof copy, "%s", value);
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",\n", &save); tok; tok = strtok_r(NULL, ",\n", &save)) {
    while (isspace((unsigned char)*tok))
      tok++;
    size_t len = strlen(tok);
    while (len && isspace((unsigned char)tok[len - 1]))
      tok[--len] = '\0';
    if (!len)
      continue;
    if (t->count >= (int)k->max) {
      add_error(st->errs, st->file, st->line, "too many tokens in %s (at most %d)", k->name, (int)k->max);
      return -1;
    }
    if (len >= sizeof t->token[0]) {
      add_error(st->errs, st->file, st->line, "a token in %s is too long (at most %zu bytes)", k->name,
                sizeof t->token[0] - 1);
      return -1;
    }
    memcpy(t->token[t->count++], tok, len + 1);
  }
  return 0;
}

static void set_value(struct parse_state *st, const struct key_def *k, const char *value, bool from_file) {
  char *field = (char *)st->base + k->offset;
  char secret[4096];
  if (from_file) {
    if (read_secret_file(st, value, secret, k->type == KT_TOKENS ? sizeof secret : k->size) < 0)
      return;
    value = secret;
  }
  double d;
  switch (k->type) {
  case KT_STRING:
  case KT_SECRET:
    if (strlen(value) >= k->size) {
      add_error(st->errs, st->file, st->line, "%s is too long (at most %zu bytes)", k->name, k->size - 1);
      return;
    }
    snprintf(field, k->size, "%s", value);
    return;
  case KT_TOKENS: set_tokens(st, k, value); return;
  case KT_LIST: {
    struct config_channel *ch = st->base;
    if (ch->push_count >= (int)k->max) {
      add_error(st->errs, st->file, st->line, "too many %s targets (at most %d)", k->name, (int)k->max);
      return;
    }
    if (strncmp(value, "rtmp://", 7) != 0 || strlen(value) >= k->size) {
      char shown[256];
      config_redact_url(value, shown, sizeof shown); /* its stream key stays out of the message */
      add_error(st->errs, st->file, st->line, "%s must be an rtmp:// URL (got \"%s\")", k->name, shown);
      return;
    }
    snprintf(field + (size_t)ch->push_count * k->size, k->size, "%s", value);
    ch->push_count++;
    return;
  }
  case KT_ADDR:
    if (parse_addr(value, (struct config_addr *)field) < 0) {
      add_error(st->errs, st->file, st->line, "%s: bad address \"%s\" (want IP:PORT or [IPv6]:PORT)", k->name, value);
      return;
    }
    if (strcmp(k->name, "http_listen") == 0)
      st->cfg->lines.http_listen = st->line;
    else
      st->cfg->lines.rtmp_listen = st->line;
    return;
  case KT_BOOL:
    if (parse_bool(value, (bool *)field) < 0)
      add_error(st->errs, st->file, st->line, "%s: want yes or no (got \"%s\")", k->name, value);
    return;
  case KT_LOGLEVEL: {
    enum log_level lvl;
    if (log_level_parse(value, &lvl) < 0) {
      add_error(st->errs, st->file, st->line, "%s: want debug, info, warn or error (got \"%s\")", k->name, value);
      return;
    }
    *(int *)field = (int)lvl;
    return;
  }
  case KT_INT:
  case KT_DOUBLE:
  case KT_SIZE:
    if ((k->type == KT_SIZE ? parse_size(value, &d) : parse_double(value, &d)) < 0 ||
        (k->type == KT_INT && d != floor(d))) {
      add_error(st->errs, st->file, st->line, "%s: bad number \"%s\"", k->name, value);
      return;
    }
    if (d < k->min || d > k->max) {
      add_error(st->errs, st->file, st->line, "%s: %s is out of range (%g to %g)", k->name, value, k->min, k->max);
      return;
    }
    if (k->type == KT_DOUBLE)
      *(double *)field = d;
    else if (k->type == KT_SIZE)
      *(size_t *)field = (size_t)d;
    else { /* int or uint32_t fields, both 4 bytes; bounds keep it positive */
      int v = (int)d;
      memcpy(field, &v, sizeof v);
    }
    return;
  }
}

static int on_pair(void *user, const char *section, const char *name, const char *value) {
  (void)section;
  struct parse_state *st = user;
  if (st->section_bad)
    return 1; /* already reported at the header */
  if (st->section == SEC_NONE) {
    add_error(st->errs, st->file, st->line, "\"%s\" is outside any section", name);
    return 1;
  }
  char base_name[64];
  snprintf(base_name, sizeof base_name, "%s", name);
  bool from_file = false;
  size_t len = strlen(base_name);
  /* NAME_file is the file form of secret NAME, unless a key is itself
   * called so (banned_words_file). */
  bool exact = false;
  for (size_t i = 0; i < KEY_COUNT && !exact; i++)
    exact = keys[i].section == st->section && strcmp(keys[i].name, name) == 0;
  if (!exact && len > 5 && strcmp(base_name + len - 5, "_file") == 0) {
    base_name[len - 5] = '\0';
    from_file = true;
  }
  for (size_t i = 0; i < KEY_COUNT; i++) {
    const struct key_def *k = &keys[i];
    if (k->section != st->section || strcmp(k->name, base_name) != 0)
      continue;
    if (from_file && k->type != KT_SECRET && k->type != KT_TOKENS)
      break; /* NAME_file exists only for secrets: unknown key */
    if (st->seen[i] && k->type != KT_LIST) {
      add_error(st->errs, st->file, st->line, "duplicate key \"%s\" in [%s]%s", name, section,
                from_file || st->seen[i] == 2 ? " (NAME and NAME_file both set?)" : "");
      return 1;
    }
    st->seen[i] = from_file ? 2 : 1;
    st->key_line[i] = st->line;
    set_value(st, k, value, from_file);
    return 1;
  }
  add_error(st->errs, st->file, st->line, "unknown key \"%s\" in [%s]", name, section);
  return 1;
}

/* ---- defaults ----------------------------------------------------------- */

/* Every key of one section kind set to its default, into base (the config,
 * or one channel or rung), through set_value as if a file said so. A
 * default that does not parse is a bug in the table: test_config walks
 * them all. */
static void apply_defaults(struct config *cfg, enum section_kind section, void *base) {
  static struct config_errors ignored; /* test_config proves there are none */
  struct parse_state st = {.cfg = cfg, .errs = &ignored, .file = "(defaults)", .section = section, .base = base};
  for (size_t i = 0; i < KEY_COUNT; i++)
    if (keys[i].section == section && keys[i].def)
      set_value(&st, &keys[i], keys[i].def, false);
}

static void default_rung(struct config *cfg, struct config_rung *r, const char *name) {
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  apply_defaults(cfg, SEC_RUNG, r);
}

static void default_channel(struct config *cfg, struct config_channel *ch, const char *name) {
  memset(ch, 0, sizeof *ch);
  snprintf(ch->name, sizeof ch->name, "%s", name);
  apply_defaults(cfg, SEC_CHANNEL, ch);
}

/* A rung of the built-in ladder: its peak is 1.5 times its bitrate. */
static void builtin_rung(struct config *cfg, struct config_rung *r, const char *name, int height, int kbps,
                         int priority) {
  default_rung(cfg, r, name);
  r->height = height;
  r->video_bitrate = kbps;
  r->max_rate = kbps * 3 / 2;
  r->priority = priority;
}

void config_defaults(struct config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  static const enum section_kind single[] = {SEC_SERVER, SEC_RTMP, SEC_HLS, SEC_TRANSCODER, SEC_CHAT, SEC_REDIS};
  for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
    apply_defaults(cfg, single[i], cfg);
  snprintf(cfg->server.web_root, sizeof cfg->server.web_root, "%s", default_web_root());

  /* The demo channel (docs/protocol.md): its keys are public, so they are
   * accepted on loopback listeners only (config_validate). */
  struct config_channel *gala = &cfg->channels[0];
  default_channel(cfg, gala, "gala");
  snprintf(gala->key, sizeof gala->key, "demo-key");
  snprintf(gala->backup_key, sizeof gala->backup_key, "demo-backup-key");
  snprintf(gala->title, sizeof gala->title, "留浙云春晚");
  cfg->channel_count = 1;

  builtin_rung(cfg, &cfg->transcoder.rungs[0], "720p", 720, 2800, 30);
  builtin_rung(cfg, &cfg->transcoder.rungs[1], "480p", 480, 1400, 20);
  builtin_rung(cfg, &cfg->transcoder.rungs[2], "360p", 360, 800, 10);
  cfg->transcoder.rung_count = 3;
}

/* ---- validation --------------------------------------------------------- */

static const char *const x264_presets[] = {"ultrafast", "superfast", "veryfast", "faster",   "fast",
                                           "medium",    "slow",      "slower",   "veryslow", NULL};
static const char *const h264_profiles[] = {"baseline", "main", "high", NULL};

static bool in_list(const char *s, const char *const *list) {
  for (; *list; list++)
    if (strcmp(s, *list) == 0)
      return true;
  return false;
}

/* The line where a key of a single section was set; 0 = default or no
 * parse (config_validate on a built struct). */
static int key_line(const struct parse_state *st, enum section_kind section, const char *name) {
  if (!st)
    return 0;
  for (size_t i = 0; i < KEY_COUNT; i++)
    if (keys[i].section == section && strcmp(keys[i].name, name) == 0)
      return st->key_line[i];
  return 0;
}

static int validate(const struct config *cfg, struct config_errors *errs, const struct parse_state *st) {
  const char *file = cfg->path[0] ? cfg->path : "(defaults)";
  int before = errs->count;

  for (int i = 0; i < cfg->channel_count; i++) {
    const struct config_channel *ch = &cfg->channels[i];
    if (!ch->key[0])
      add_error(errs, file, ch->line, "[channel %s] needs a key (or key_file)", ch->name);
    if (ch->backup_key[0] && strcmp(ch->backup_key, ch->key) == 0)
      add_error(errs, file, ch->line, "[channel %s]: backup_key must differ from key", ch->name);
    /* A stream key picks one channel: the same key twice is ambiguous. */
    for (int j = 0; j < i; j++) {
      const struct config_channel *o = &cfg->channels[j];
      const char *mine[2] = {ch->key, ch->backup_key}, *theirs[2] = {o->key, o->backup_key};
      for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
          if (mine[a][0] && strcmp(mine[a], theirs[b]) == 0)
            add_error(errs, file, ch->line, "[channel %s] uses the same stream key as [channel %s]", ch->name, o->name);
    }
  }
  for (int i = 0; i < cfg->transcoder.rung_count; i++) {
    const struct config_rung *r = &cfg->transcoder.rungs[i];
    int rl = st ? st->rung_line[i] : 0;
    if (r->height <= 0 || r->height % 2)
      add_error(errs, file, rl, "[rung %s]: height must be an even number (got %d)", r->name, r->height);
    if (r->video_bitrate <= 0)
      add_error(errs, file, rl, "[rung %s]: video_bitrate is required", r->name);
    if (r->max_rate && r->max_rate < r->video_bitrate)
      add_error(errs, file, rl, "[rung %s]: max_rate must be at least video_bitrate", r->name);
    if (!in_list(r->preset, x264_presets))
      add_error(errs, file, rl, "[rung %s]: unknown x264 preset \"%s\"", r->name, r->preset);
    if (!in_list(r->profile, h264_profiles))
      add_error(errs, file, rl, "[rung %s]: profile must be baseline, main or high (got \"%s\")", r->name, r->profile);
  }
  int hl = key_line(st, SEC_HLS, "segment_duration");
  if (cfg->hls.part_duration * 2 > cfg->hls.segment_duration)
    add_error(errs, file, hl ? hl : key_line(st, SEC_HLS, "part_duration"),
              "[hls]: segment_duration must be at least twice part_duration");
  int ql = key_line(st, SEC_CHAT, "queue_hard_bytes");
  if (cfg->chat.queue_hard_bytes < cfg->chat.queue_soft_bytes)
    add_error(errs, file, ql ? ql : key_line(st, SEC_CHAT, "queue_soft_bytes"),
              "[chat]: queue_hard_bytes must be at least queue_soft_bytes");
  struct config_redis_endpoint endpoint;
  if (cfg->redis.url[0] && config_redis_url_parse(cfg->redis.url, &endpoint) != 0)
    add_error(errs, file, key_line(st, SEC_REDIS, "url"),
              "[redis]: url must be redis://[[USER]:PASSWORD@]HOST[:PORT] (the value is not repeated: it may hold a "
              "password)");
  /* Without it anyone who can reach Redis could forge bans and comments. */
  if (cfg->redis.url[0] && !cfg->redis.secret[0])
    add_error(errs, file, key_line(st, SEC_REDIS, "url"),
              "[redis]: url needs a secret (or secret_file) shared by every node");

  /* The demo secrets are public (they are in the README): refuse them as
   * soon as anyone but this machine can reach a listener. */
  if (!config_addr_is_loopback(&cfg->server.http_listen) || !config_addr_is_loopback(&cfg->server.rtmp_listen)) {
    int line = !config_addr_is_loopback(&cfg->server.rtmp_listen) ? cfg->lines.rtmp_listen : cfg->lines.http_listen;
    for (int i = 0; i < cfg->channel_count; i++) {
      const struct config_channel *ch = &cfg->channels[i];
      if (strcmp(ch->key, "demo-key") == 0 || strcmp(ch->backup_key, "demo-backup-key") == 0)
        add_error(errs, file, ch->line ? ch->line : line,
                  "[channel %s] keeps a demo stream key while listening beyond loopback: set a secret key", ch->name);
    }
    for (int i = 0; i < cfg->chat.moderator_tokens.count; i++)
      if (strcmp(cfg->chat.moderator_tokens.token[i], "demo-moderator") == 0)
        add_error(errs, file, cfg->chat.moderator_tokens.line ? cfg->chat.moderator_tokens.line : line,
                  "[chat] keeps the demo moderator token while listening beyond loopback: set a secret token");
    for (int c = 0; c < cfg->channel_count; c++) {
      const struct config_tokens *t = &cfg->channels[c].moderator_tokens;
      for (int i = 0; i < t->count; i++)
        if (strcmp(t->token[i], "demo-moderator") == 0)
          add_error(errs, file, t->line ? t->line : line,
                    "[channel %s] has the demo moderator token while listening beyond loopback: set a secret token",
                    cfg->channels[c].name);
    }
  }
  return errs->count > before ? -EINVAL : 0;
}

int config_validate(const struct config *cfg, struct config_errors *errs) { return validate(cfg, errs, NULL); }

/* ---- entry points ------------------------------------------------------- */

int config_load_string(struct config *cfg, const char *name, const char *text, struct config_errors *errs) {
  config_defaults(cfg);
  memset(errs, 0, sizeof *errs);
  snprintf(cfg->path, sizeof cfg->path, "%s", name);
  struct parse_state st = {.cfg = cfg, .errs = errs, .file = name, .text = text};
  int rc = ini_parse_stream(read_line, &st, on_pair, &st);
  if (rc > 0)
    add_error(errs, name, rc, "syntax error (want [section], key = value, or a ; comment)");
  else if (rc < 0)
    add_error(errs, name, 0, "cannot parse (out of memory)");
  if (errs->count)
    return -EINVAL;
  return validate(cfg, errs, &st);
}

int config_load(struct config *cfg, const char *path, struct config_errors *errs) {
  memset(errs, 0, sizeof *errs);
  FILE *f = fopen(path, "rb");
  if (!f) {
    int err = errno;
    config_defaults(cfg);
    add_error(errs, path, 0, "cannot open: %s", strerror(err));
    return -err;
  }
  char *text = NULL;
  size_t len = 0, cap = 0;
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + n + 1 > cap || len + n + 1 > 1024 * 1024) {
      if (len + n + 1 > 1024 * 1024) {
        free(text);
        fclose(f);
        config_defaults(cfg);
        add_error(errs, path, 0, "file is larger than 1 MiB");
        return -EFBIG;
      }
      cap = (len + n + 1) * 2;
      char *p = realloc(text, cap);
      if (!p) {
        free(text);
        fclose(f);
        add_error(errs, path, 0, "out of memory");
        return -ENOMEM;
      }
      text = p;
    }
    memcpy(text + len, chunk, n);
    len += n;
  }
  fclose(f);
  if (memchr(text ? text : "", '\0', len)) {
    free(text);
    config_defaults(cfg);
    add_error(errs, path, 0, "file contains a NUL byte: not a text config");
    return -EINVAL;
  }
  int rc = config_load_string(cfg, path, text ? (text[len] = '\0', text) : "", errs);
  free(text);
  return rc;
}

const struct config_channel *config_find_channel(const struct config *cfg, const char *name) {
  for (int i = 0; i < cfg->channel_count; i++)
    if (strcmp(cfg->channels[i].name, name) == 0)
      return &cfg->channels[i];
  return NULL;
}

bool config_addr_is_loopback(const struct config_addr *addr) {
  struct in_addr a4;
  if (inet_pton(AF_INET, addr->host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  return strcmp(addr->host, "::1") == 0;
}

void config_redact_url(const char *url, char *out, size_t size) {
  const char *sep = strstr(url, "://");
  size_t end = strcspn(url, "?#"); /* a query may carry a token too */
  if (!sep || (size_t)(sep - url) >= end) {
    snprintf(out, size, "***");
    return;
  }
  size_t host = (size_t)(sep - url) + 3;
  size_t path = host + strcspn(url + host, "/?#");
  size_t from = host; /* past user:password@ */
  for (size_t i = host; i < path; i++)
    if (url[i] == '@')
      from = i + 1;
  size_t keep = path; /* the authority, then the path up to its last '/' */
  for (size_t i = path; i < end; i++)
    if (url[i] == '/')
      keep = i + 1;
  snprintf(out, size, "%.*s%.*s%s", (int)host, url, (int)(keep - from), url + from, url[keep] ? "***" : "");
}

void config_addr_format(const struct config_addr *addr, char *out, size_t size) {
  if (strchr(addr->host, ':'))
    snprintf(out, size, "[%s]:%u", addr->host, addr->port);
  else
    snprintf(out, size, "%s:%u", addr->host, addr->port);
}

const char *config_key_at(int i, const char **section) {
  if (i < 0 || (size_t)i >= KEY_COUNT)
    return NULL;
  if (section)
    *section = section_names[keys[i].section];
  return keys[i].name;
}

const char *config_key_default(int i) { return i >= 0 && (size_t)i < KEY_COUNT ? keys[i].def : NULL; }

const char *config_key_doc(int i) { return i >= 0 && (size_t)i < KEY_COUNT ? keys[i].doc : NULL; }

int config_check_defaults(struct config_errors *errs) {
  static struct config scratch;
  memset(errs, 0, sizeof *errs);
  memset(&scratch, 0, sizeof scratch);
  struct parse_state st = {.cfg = &scratch, .errs = errs, .file = "(defaults)"};
  for (size_t i = 0; i < KEY_COUNT; i++) {
    if (!keys[i].def)
      continue;
    st.section = keys[i].section;
    st.base = keys[i].section == SEC_CHANNEL ? (void *)&scratch.channels[0]
              : keys[i].section == SEC_RUNG  ? (void *)&scratch.transcoder.rungs[0]
                                             : (void *)&scratch;
    set_value(&st, &keys[i], keys[i].def, false);
  }
  return errs->count ? -EINVAL : 0;
}

_Static_assert(sizeof(int) == sizeof(uint32_t), "KT_INT stores into int and uint32_t fields alike");

static int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = (char)(c | 0x20);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decoding of the url's user and password (RFC 3986). */
static int url_decode(const char *in, size_t len, char *out, size_t size) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++, n++) {
    if (n + 1 >= size)
      return -1;
    char c = in[i];
    if (c == '%') {
      int hi = i + 2 < len ? hex_digit(in[i + 1]) : -1;
      int lo = i + 2 < len ? hex_digit(in[i + 2]) : -1;
      if (hi < 0 || lo < 0 || (hi | lo) == 0) /* no NUL: it would cut the string */
        return -1;
      c = (char)(hi << 4 | lo);
      i += 2;
    }
    out[n] = c;
  }
  out[n] = '\0';
  return 0;
}

int config_redis_url_parse(const char *url, struct config_redis_endpoint *out) {
  static const char scheme[] = "redis://";
  if (strncmp(url, scheme, sizeof scheme - 1) != 0)
    return -EINVAL;
  const char *h = url + sizeof scheme - 1;
  const char *at = strrchr(h, '@');
  out->user[0] = out->password[0] = '\0';
  if (at) {
    const char *colon = memchr(h, ':', (size_t)(at - h));
    if (!colon || url_decode(h, (size_t)(colon - h), out->user, sizeof out->user) != 0 ||
        url_decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof out->password) != 0 || !out->password[0])
      return -EINVAL;
    h = at + 1;
  }
  const char *colon = strrchr(h, ':');
  size_t hl = colon ? (size_t)(colon - h) : strcspn(h, "/");
  if (hl == 0 || hl >= sizeof out->host)
    return -EINVAL;
  memcpy(out->host, h, hl);
  out->host[hl] = '\0';
  out->port = 6379;
  if (colon) {
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || p <= 0 || p > 65535 || (*end && strcmp(end, "/") != 0))
      return -EINVAL;
    out->port = (int)p;
  }
  return 0;
}
