/* config: the daemon's configuration, parsed from an INI file with inih.
 *
 * Every key is one row of a table in config.c (name, type, bounds, default,
 * a one-line doc); config/galarelay.conf and docs/config.md document the
 * same keys for operators, and test_config holds them to the table. A
 * config is immutable once loaded: a reload (SIGHUP) parses and validates a
 * whole new one and swaps the pointer on the loop thread, or keeps the old
 * one. Errors name FILE:LINE. */
#ifndef GALARELAY_CONFIG_H
#define GALARELAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_CHANNELS 64
#define CONFIG_MAX_PUSH 8
#define CONFIG_MAX_RUNGS 8
#define CONFIG_MAX_TOKENS 32

/* Moderator tokens (comma-separated secrets): [chat] ones moderate every
 * channel, a [channel NAME] one only that channel. */
struct config_tokens {
  char token[CONFIG_MAX_TOKENS][128];
  int count;
  int line; /* where they were set (0 = default), for messages */
};

/* A listen address: numeric IPv4 or [IPv6] and a port. */
struct config_addr {
  char host[64]; /* as written, without brackets: "127.0.0.1", "::", "0.0.0.0" */
  uint16_t port;
};

struct config_channel {
  char name[64];        /* from the section header: [channel NAME]; [a-z0-9_-] */
  char key[256];        /* the broadcaster's stream key (secret) */
  char backup_key[256]; /* "" = none */
  char title[256];
  char push[CONFIG_MAX_PUSH][512]; /* rtmp:// restream targets */
  int push_count;
  double failover_after;                 /* seconds without media before the other feed takes over */
  bool prefer_primary;                   /* the primary takes over again when it returns */
  char slate_image[512];                 /* "" = generated card */
  struct config_tokens moderator_tokens; /* moderators of this channel only */
  int line;                              /* where the section starts, for messages */
};

struct config_rung {
  char name[32];
  int height;
  int video_bitrate; /* kbit/s */
  int max_rate;      /* kbit/s */
  char preset[32];   /* x264 preset */
  char profile[32];  /* baseline | main | high */
  int priority;      /* lower sheds first under overload */
};

struct config_server {
  struct config_addr http_listen;
  struct config_addr rtmp_listen;
  char state_dir[512];
  char web_root[512];
  int log_level; /* enum log_level */
  int max_http_connections;
  char trusted_proxy[64];     /* X-Forwarded-For is believed only from here */
  char allowed_origins[1024]; /* websocket Origins besides the same origin; "*" = any */
  int memory_limit_mb;        /* 0 = no ceiling */
  double shutdown_timeout;    /* seconds */
};

struct config_rtmp {
  double handshake_timeout; /* seconds */
  double idle_timeout;      /* seconds without data before a peer is dropped */
  uint32_t max_chunk_size;
  uint32_t max_message_size;
  int max_connections;
  int max_unauthenticated_per_address; /* not yet publishing or playing */
  int publisher_reserve;               /* slots players never take, beyond one per stream key */
  double offline_player_timeout;       /* a player waits this long for an offline channel */
  double publisher_takeover;           /* a silent live publisher is replaced after this */
  size_t player_queue_bytes;           /* per RTMP player; past it skip to next keyframe */
  double push_retry_max;               /* seconds, restream backoff ceiling */
};

struct config_hls {
  double part_duration;       /* seconds */
  double segment_duration;    /* seconds */
  int window_segments;        /* per rendition in memory */
  char record_dir[512];       /* "" = no mirror on disk */
  double block_timeout;       /* seconds a blocking reload may be parked */
  int max_parked_per_address; /* blocking requests waiting per client address; 0 = no bound */
};

struct config_transcoder {
  struct config_rung rungs[CONFIG_MAX_RUNGS];
  int rung_count;
  bool source_passthrough;
  int threads;        /* encoder threads per rung, 0 = auto */
  int latency_frames; /* encoder delay budget in frames */
  int audio_bitrate;  /* kbit/s, when audio must be re-encoded */
  int queue_frames;   /* per rung input queue bound */
};

struct config_chat {
  struct config_tokens moderator_tokens; /* moderators of every channel */
  char auth_secret[256];
  bool require_token;
  int history;
  int max_comment_length; /* code points */
  int max_frame_bytes;
  double user_rate; /* comments per second, token bucket refill */
  int user_burst;
  double addr_rate;
  int addr_burst;
  int max_connections_per_addr;
  int tick_ms;
  int fanout_slice;          /* members written per turn of the loop */
  size_t queue_soft_bytes;   /* past it a member loses its oldest batches */
  size_t queue_hard_bytes;   /* past it a member is closed */
  int viewer_events_per_sec; /* sample cap for viewers, 0 = everything */
  double hello_rate;         /* hellos per second per connection (refill) */
  int hello_burst;
  double hello_addr_rate; /* hellos per second per address (refill) */
  int hello_addr_burst;
  char banned_words_file[512];
  bool filter_hold; /* banned word: hold for review instead of refusing */
  int archive_commit_ms;
  int archive_batch;
  int max_combining; /* combining marks kept per base character */
};

struct config_redis {
  char url[256]; /* may hold a password: never logged */
  char prefix[64];
  char secret[256]; /* HMAC key of events between nodes; required with url */
};

struct config {
  char path[512]; /* the file it came from; "" = built-in defaults */

  struct config_server server;

  struct config_rtmp rtmp;

  struct config_channel channels[CONFIG_MAX_CHANNELS];
  int channel_count;

  struct config_hls hls;

  struct config_transcoder transcoder;

  struct config_chat chat;

  struct config_redis redis;

  /* Where some keys were set (0 = built-in default), for messages of
   * cross-key checks. */
  struct {
    int http_listen, rtmp_listen;
  } lines;
};

/* Errors are collected, one line each, "FILE:LINE: what is wrong". */
struct config_errors {
  char text[8192];
  int count;
};

/* The built-in defaults (docs/protocol.md: demo channel, three-rung ladder). */
void config_defaults(struct config *cfg);

/* Parse FILE over the defaults and validate. Returns 0, or with errs
 * filled -EINVAL (errors in the file), -ENOENT/-EACCES (cannot open it),
 * -EFBIG (over 1 MiB) or -ENOMEM. On error cfg is left in an unspecified state: parse into a fresh
 * one, and swap only on success. */
int config_load(struct config *cfg, const char *path, struct config_errors *errs);

/* Parse from memory (tests, fuzzing); name is used in messages. */
int config_load_string(struct config *cfg, const char *name, const char *text, struct config_errors *errs);

/* Cross-key checks that also apply to the defaults (demo secrets on
 * non-loopback listeners, duplicate keys across channels): 0, or -EINVAL
 * with errs filled. */
int config_validate(const struct config *cfg, struct config_errors *errs);

const struct config_channel *config_find_channel(const struct config *cfg, const char *name);

bool config_addr_is_loopback(const struct config_addr *addr);
/* "127.0.0.1:8080" / "[::1]:8080" for logs and URLs. */
void config_addr_format(const struct config_addr *addr, char *out, size_t size);
/* A URL that may carry a secret (a restream target's stream key), as logs
 * and error messages show it: the last path element and any ?query or
 * #fragment become "***", and a user:password@ goes, so
 * "rtmp://u:p@live.example.com:1935/app/KEY?t=1" reads
 * "rtmp://live.example.com:1935/app/" "***". Text without "://" is all
 * "***": nothing of a value that is not a URL can be told safe. */
void config_redact_url(const char *url, char *out, size_t size);

/* Where [redis] url points: redis://[[USER]:PASSWORD@]HOST[:PORT][/], the
 * user and password percent-decoded (RFC 3986), so that a password may hold
 * '@', ':' or '/'. One parser for --check and the bus. */
struct config_redis_endpoint {
  char host[128];
  int port;           /* 6379 when the url has none */
  char user[64];      /* AUTH user (Redis ACL), "" = default */
  char password[256]; /* AUTH password, "" = none */
};
/* 0, or -EINVAL when url is not such a url (*out is then unspecified). */
int config_redis_url_parse(const char *url, struct config_redis_endpoint *out);

/* The schema, for documentation checks: key i of section kind. Returns
 * NULL past the end. section is "server", "channel", "rung", … */
const char *config_key_at(int i, const char **section);
/* Key i's default as a config file writes it ("4m", "yes", "" = empty);
 * NULL when it has none (required, a list) or it is computed (web_root). */
const char *config_key_default(int i);
/* Key i's one-line doc: how its row in docs/config.md begins. */
const char *config_key_doc(int i);
/* Parse every default of the table: 0, or -EINVAL with errs filled. */
int config_check_defaults(struct config_errors *errs);

#endif
