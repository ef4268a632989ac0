/* test_config: the config table and its INI parser.
 *
 * Each case parses a small text of its own (config_load_string resets the
 * config and the errors), so the cases are independent. Error cases check
 * that the message names FILE:LINE and says what is wrong. The last cases
 * read the shipped config/galarelay.conf and docs/config.md and check that
 * every key of the table is documented there. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

#ifndef GALARELAY_SOURCE_DIR
#error "GALARELAY_SOURCE_DIR must name the source tree (config/tests.cmake sets it)"
#endif

/* A config is a few hundred KiB: keep it off the stack. */
static struct config cfg;
static struct config_errors errs;

static int load(const char *text) { return config_load_string(&cfg, "t.conf", text, &errs); }

/* The text must fail with an error that names `where` ("t.conf:3:") and
 * contains `what`. */
static void expect_error(const char *text, const char *where, const char *what) {
  int rc = load(text);
  if (rc != -EINVAL || !strstr(errs.text, where) || !strstr(errs.text, what))
    fail_msg("want an error at \"%s\" saying \"%s\"; got rc=%d:\n%s", where, what, rc, errs.text);
  assert_true(errs.count > 0);
}

static void expect_ok(const char *text) {
  int rc = load(text);
  if (rc != 0)
    fail_msg("want success; got:\n%s", errs.text);
  assert_int_equal(errs.count, 0);
}

/* A temporary file holding content; the caller unlinks path. */
static void write_temp(const char *content, char *path, size_t size) {
  const char *dir = getenv("TMPDIR");
  snprintf(path, size, "%s/galarelay-test-config-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t len = strlen(content);
  assert_int_equal(write(fd, content, len), (ssize_t)len);
  close(fd);
}

static char *read_whole(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  assert_true(n >= 0);
  char *text = malloc((size_t)n + 1);
  assert_non_null(text);
  assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
  text[n] = '\0';
  fclose(f);
  return text;
}

/* ---- defaults ----------------------------------------------------------- */

static void defaults_match_spec(void **state) {
  (void)state;
  config_defaults(&cfg);
  assert_string_equal(cfg.server.http_listen.host, "127.0.0.1");
  assert_int_equal(cfg.server.http_listen.port, 8080);
  assert_string_equal(cfg.server.rtmp_listen.host, "127.0.0.1");
  assert_int_equal(cfg.server.rtmp_listen.port, 1935);
  assert_string_equal(cfg.server.state_dir, "./galarelay-state");
  assert_int_equal(cfg.channel_count, 1);
  assert_string_equal(cfg.channels[0].name, "gala");
  assert_string_equal(cfg.channels[0].key, "demo-key");
  assert_string_equal(cfg.channels[0].backup_key, "demo-backup-key");
  assert_string_equal(cfg.channels[0].title, "留浙云春晚");
  assert_int_equal(cfg.channels[0].push_count, 0);
  assert_int_equal(cfg.chat.moderator_tokens.count, 1);
  assert_string_equal(cfg.chat.moderator_tokens.token[0], "demo-moderator");
  assert_string_equal(cfg.chat.auth_secret, "");
  assert_string_equal(cfg.redis.url, "");
  assert_string_equal(cfg.path, "");
}

static void defaults_ladder_has_three_rungs(void **state) {
  (void)state;
  config_defaults(&cfg);
  assert_true(cfg.transcoder.source_passthrough);
  assert_int_equal(cfg.transcoder.rung_count, 3);
  static const char *const names[] = {"720p", "480p", "360p"};
  static const int heights[] = {720, 480, 360};
  for (int i = 0; i < 3; i++) {
    const struct config_rung *r = &cfg.transcoder.rungs[i];
    assert_string_equal(r->name, names[i]);
    assert_int_equal(r->height, heights[i]);
    assert_true(r->video_bitrate > 0);
    assert_true(r->max_rate >= r->video_bitrate);
    assert_string_equal(r->preset, "veryfast");
    assert_string_equal(r->profile, "high");
  }
  /* the smallest sheds first */
  assert_true(cfg.transcoder.rungs[0].priority > cfg.transcoder.rungs[2].priority);
}

static void defaults_validate(void **state) {
  (void)state;
  config_defaults(&cfg);
  memset(&errs, 0, sizeof errs);
  assert_int_equal(config_validate(&cfg, &errs), 0);
  assert_int_equal(errs.count, 0);
}

static void empty_file_keeps_defaults(void **state) {
  (void)state;
  expect_ok("");
  assert_string_equal(cfg.path, "t.conf");
  assert_int_equal(cfg.channel_count, 1);
  assert_string_equal(cfg.channels[0].key, "demo-key");
  assert_int_equal(cfg.transcoder.rung_count, 3);
}

static void comments_and_blank_lines(void **state) {
  (void)state;
  expect_ok("; a comment\n# another\n\n[server]\n  ; indented comment\nstate_dir = /x ; inline\n");
  assert_string_equal(cfg.server.state_dir, "/x");
}

static void inline_semicolon_without_space_is_kept(void **state) {
  (void)state;
  expect_ok("[channel a]\nkey = k1\ntitle = a;b ; comment\n");
  assert_string_equal(cfg.channels[0].title, "a;b");
}

static void values_of_every_type(void **state) {
  (void)state;
  expect_ok("[server]\nlog_level = debug\nmax_http_connections = 12\nshutdown_timeout = 0.5\n"
            "[rtmp]\nmax_chunk_size = 4096\nplayer_queue_bytes = 128k\n"
            "[chat]\nrequire_token = yes\nfilter_hold = On\n"
            "[redis]\nurl = redis://127.0.0.1:6379\nprefix = x:\nsecret = bus-key\n");
  assert_int_equal(cfg.server.max_http_connections, 12);
  assert_true(cfg.server.shutdown_timeout == 0.5);
  assert_int_equal(cfg.rtmp.max_chunk_size, 4096);
  assert_int_equal(cfg.rtmp.player_queue_bytes, 128 * 1024);
  assert_true(cfg.chat.require_token);
  assert_true(cfg.chat.filter_hold);
  assert_string_equal(cfg.redis.url, "redis://127.0.0.1:6379");
  assert_string_equal(cfg.redis.prefix, "x:");
  assert_string_equal(cfg.redis.secret, "bus-key");
  assert_int_equal(cfg.server.log_level, 0); /* LOG_LEVEL_DEBUG */
}

static void size_suffixes(void **state) {
  (void)state;
  expect_ok("[chat]\nqueue_soft_bytes = 4k\nqueue_hard_bytes = 1m\n");
  assert_int_equal(cfg.chat.queue_soft_bytes, 4096);
  assert_int_equal(cfg.chat.queue_hard_bytes, 1024 * 1024);
  expect_ok("[chat]\nqueue_soft_bytes = 8KiB\nqueue_hard_bytes = 1g\n");
  assert_int_equal(cfg.chat.queue_soft_bytes, 8192);
  assert_int_equal(cfg.chat.queue_hard_bytes, 1024u * 1024 * 1024);
  expect_ok("[chat]\nqueue_soft_bytes = 5000\n");
  assert_int_equal(cfg.chat.queue_soft_bytes, 5000);
}

static void err_bad_size_suffix(void **state) {
  (void)state;
  expect_error("[chat]\nqueue_soft_bytes = 4x\n", "t.conf:2:", "bad number");
  expect_error("[chat]\nqueue_soft_bytes = 4kk\n", "t.conf:2:", "bad number");
  expect_error("[chat]\nqueue_soft_bytes = -4k\n", "t.conf:2:", "bad number");
}

/* ---- errors name FILE:LINE ---------------------------------------------- */

static void err_unknown_section(void **state) {
  (void)state;
  expect_error("[server]\n[bogus]\nx = 1\n", "t.conf:2:", "unknown section [bogus]");
}

static void err_unknown_empty_section(void **state) {
  (void)state;
  expect_error("\n\n[nothing]\n", "t.conf:3:", "unknown section");
}

static void err_unknown_key(void **state) {
  (void)state;
  expect_error("[server]\nstate_dir = x\nlisten = 1.2.3.4:5\n", "t.conf:3:", "unknown key \"listen\"");
}

static void err_file_variant_of_non_secret(void **state) {
  (void)state;
  expect_error("[channel a]\nkey = k1\ntitle_file = /etc/hostname\n", "t.conf:3:", "unknown key \"title_file\"");
}

static void err_key_outside_section(void **state) {
  (void)state;
  expect_error("state_dir = x\n[server]\n", "t.conf:1:", "outside any section");
}

static void err_bad_number(void **state) {
  (void)state;
  expect_error("[rtmp]\nidle_timeout = soon\n", "t.conf:2:", "bad number");
  expect_error("[rtmp]\nidle_timeout = 5s\n", "t.conf:2:", "bad number");
  expect_error("[rtmp]\nidle_timeout = nan\n", "t.conf:2:", "bad number");
}

static void err_fraction_for_integer(void **state) {
  (void)state;
  expect_error("[hls]\nwindow_segments = 4.5\n", "t.conf:2:", "bad number");
}

static void err_out_of_range(void **state) {
  (void)state;
  expect_error("[hls]\n\nwindow_segments = 2\n", "t.conf:3:", "out of range");
  expect_error("[chat]\ntick_ms = 1001\n", "t.conf:2:", "out of range");
  expect_error("[rtmp]\nplayer_queue_bytes = 2g\n", "t.conf:2:", "out of range");
  expect_error("[server]\nshutdown_timeout = 0\n", "t.conf:2:", "out of range");
}

static void err_bad_bool(void **state) {
  (void)state;
  expect_error("[transcoder]\nsource_passthrough = maybe\n", "t.conf:2:", "want yes or no");
}

static void err_bad_log_level(void **state) {
  (void)state;
  expect_error("[server]\nlog_level = loud\n", "t.conf:2:", "log_level");
}

static void err_addr_without_port(void **state) {
  (void)state;
  expect_error("[server]\nhttp_listen = 127.0.0.1\n", "t.conf:2:", "bad address");
  expect_error("[server]\nhttp_listen = 127.0.0.1:\n", "t.conf:2:", "bad address");
}

static void err_addr_port_zero(void **state) {
  (void)state;
  expect_error("[server]\nrtmp_listen = 127.0.0.1:0\n", "t.conf:2:", "bad address");
}

static void err_addr_port_too_big(void **state) {
  (void)state;
  expect_error("[server]\nrtmp_listen = 127.0.0.1:65536\n", "t.conf:2:", "bad address");
}

static void err_addr_hostname(void **state) {
  (void)state;
  expect_error("[server]\nhttp_listen = localhost:8080\n", "t.conf:2:", "bad address");
}

static void err_addr_bad_ipv6(void **state) {
  (void)state;
  expect_error("[server]\nhttp_listen = [::g]:8080\n", "t.conf:2:", "bad address");
  expect_error("[server]\nhttp_listen = [::1:8080\n", "t.conf:2:", "bad address");
  expect_error("[server]\nhttp_listen = [::1]8080\n", "t.conf:2:", "bad address");
  expect_error("[server]\nhttp_listen = ::1:8080\n", "t.conf:2:", "bad address");
}

static void addr_ipv6_accepted(void **state) {
  (void)state;
  expect_ok("[server]\nhttp_listen = [::1]:8081\n");
  assert_string_equal(cfg.server.http_listen.host, "::1");
  assert_int_equal(cfg.server.http_listen.port, 8081);
}

static void err_duplicate_channel(void **state) {
  (void)state;
  expect_error("[channel a]\nkey = k1\n[channel a]\nkey = k2\n", "t.conf:3:", "duplicate channel \"a\"");
}

static void err_duplicate_key_in_section(void **state) {
  (void)state;
  expect_error("[channel a]\nkey = k1\ntitle = x\ntitle = y\n", "t.conf:4:", "duplicate key \"title\"");
}

static void same_key_in_two_channels_sections_is_fine(void **state) {
  (void)state;
  expect_ok("[channel a]\nkey = k1\ntitle = x\n[channel b]\nkey = k2\ntitle = x\n");
  assert_int_equal(cfg.channel_count, 2);
}

static void err_key_and_key_file(void **state) {
  (void)state;
  char path[256];
  write_temp("secret-1\n", path, sizeof path);
  char text[512];
  snprintf(text, sizeof text, "[channel a]\nkey = k1\nkey_file = %s\n", path);
  expect_error(text, "t.conf:3:", "NAME and NAME_file");
  snprintf(text, sizeof text, "[channel a]\nkey_file = %s\nkey = k1\n", path);
  expect_error(text, "t.conf:3:", "duplicate key \"key\"");
  unlink(path);
}

static void err_stream_key_shared_across_channels(void **state) {
  (void)state;
  expect_error("[channel a]\nkey = k1\n[channel b]\nkey = k1\n", "t.conf:3:", "same stream key as [channel a]");
  expect_error("[channel a]\nkey = k1\nbackup_key = k2\n[channel b]\nkey = k2\n", "t.conf:4:", "same stream key");
}

static void err_backup_key_equals_key(void **state) {
  (void)state;
  expect_error("[channel a]\nkey = k1\nbackup_key = k1\n", "t.conf:1:", "backup_key must differ from key");
}

static void err_channel_without_key(void **state) {
  (void)state;
  expect_error("[server]\n[channel a]\ntitle = x\n", "t.conf:2:", "needs a key");
}

static void err_secret_file_missing(void **state) {
  (void)state;
  expect_error("[channel a]\nkey_file = /nonexistent/galarelay/key\n",
               "t.conf:2:", "cannot read secret file \"/nonexistent/galarelay/key\"");
}

static void err_secret_file_empty(void **state) {
  (void)state;
  char path[256], text[512];
  write_temp("\n", path, sizeof path);
  snprintf(text, sizeof text, "[chat]\nauth_secret_file = %s\n", path);
  expect_error(text, "t.conf:2:", "is empty");
  unlink(path);
}

static void err_syntax_line_without_equals(void **state) {
  (void)state;
  expect_error("[server]\nstate_dir = x\nthis line has no equals sign\n", "t.conf:3:", "syntax error");
}

static void err_unclosed_header(void **state) {
  (void)state;
  expect_error("[server\nstate_dir = x\n", "t.conf:1:", "syntax error");
}

static void err_channel_bad_name(void **state) {
  (void)state;
  expect_error("[channel Gala]\nkey = k1\n", "t.conf:1:", "needs a name");
  expect_error("[channel a/b]\nkey = k1\n", "t.conf:1:", "needs a name");
  expect_error("[channel]\nkey = k1\n", "t.conf:1:", "needs a name");
  expect_error("[channel a b]\nkey = k1\n", "t.conf:1:", "needs a name");
  expect_error("[channel aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\nkey = k1\n", "t.conf:1:", "needs a name"); /* 32 */
}

static void err_single_section_with_name(void **state) {
  (void)state;
  expect_error("[server main]\n", "t.conf:1:", "[server] takes no name");
}

static void err_duplicate_server_section(void **state) {
  (void)state;
  expect_error("[server]\nstate_dir = a\n[chat]\n[server]\nweb_root = b\n", "t.conf:4:", "duplicate section [server]");
}

static void err_too_many_push(void **state) {
  (void)state;
  char text[2048] = "[channel a]\nkey = k1\n";
  for (int i = 0; i < CONFIG_MAX_PUSH + 1; i++) {
    size_t used = strlen(text);
    snprintf(text + used, sizeof text - used, "push = rtmp://198.51.100.%d/live/x\n", i + 1);
  }
  char where[32];
  snprintf(where, sizeof where, "t.conf:%d:", 2 + CONFIG_MAX_PUSH + 1);
  expect_error(text, where, "too many push targets");
}

static void err_bad_push_url(void **state) {
  (void)state;
  expect_error("[channel a]\nkey = k1\npush = http://example.com/live\n", "t.conf:3:", "rtmp:// URL");
  /* the message shows the URL without its stream key */
  expect_error("[channel a]\nkey = k1\npush = rtmps://a.example.com/live2/sEcReT-kEy\n",
               "t.conf:3:", "(got \"rtmps://a.example.com/live2/***\")");
  assert_null(strstr(errs.text, "sEcReT"));
}

static void redact_url(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"rtmp://live.example.com/app/STREAM-KEY", "rtmp://live.example.com/app/***"},
      {"rtmp://198.51.100.7:1936/live/sub/k?x=1", "rtmp://198.51.100.7:1936/live/sub/***"},
      {"rtmp://[::1]:2000/live/k#frag", "rtmp://[::1]:2000/live/***"},
      {"rtmp://user:pass@host/app/k", "rtmp://host/app/***"},
      {"rtmp://host/app/key?token=a/b", "rtmp://host/app/***"},
      {"rtmp://host/app/", "rtmp://host/app/"},
      {"rtmp://host", "rtmp://host"},
      {"rtmp://host?k=secret", "rtmp://host***"},
      {"not a url: secret", "***"},
      {"key?x=rtmp://h/a/b", "***"},
      {"", "***"},
  };
  char out[128];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    config_redact_url(cases[i][0], out, sizeof out);
    assert_string_equal(out, cases[i][1]);
  }
}

static void err_rung_odd_height(void **state) {
  (void)state;
  expect_error("[rung small]\nheight = 361\nvideo_bitrate = 500\n", "t.conf:1:", "height must be an even number");
}

static void err_rung_unknown_preset(void **state) {
  (void)state;
  expect_error("[rung a]\nheight = 360\nvideo_bitrate = 500\n\n[rung b]\nheight = 240\nvideo_bitrate = 300\n"
               "preset = warpspeed\n",
               "t.conf:5:", "unknown x264 preset \"warpspeed\"");
}

static void err_rung_bad_profile(void **state) {
  (void)state;
  expect_error("[rung a]\nheight = 360\nvideo_bitrate = 500\nprofile = high10\n", "t.conf:1:", "profile must be");
}

static void err_rung_needs_bitrate(void **state) {
  (void)state;
  expect_error("[rung a]\nheight = 360\n", "t.conf:1:", "video_bitrate is required");
}

static void err_rung_max_rate_below_bitrate(void **state) {
  (void)state;
  expect_error("[rung a]\nheight = 360\nvideo_bitrate = 500\nmax_rate = 400\n", "t.conf:1:", "max_rate");
}

static void err_segment_shorter_than_two_parts(void **state) {
  (void)state;
  expect_error("[hls]\npart_duration = 1\nsegment_duration = 1.5\n", "t.conf:3:", "twice part_duration");
  expect_error("[hls]\npart_duration = 1.5\n", "t.conf:2:", "twice part_duration");
}

static void err_queue_hard_below_soft(void **state) {
  (void)state;
  expect_error("[chat]\nqueue_soft_bytes = 1m\nqueue_hard_bytes = 512k\n", "t.conf:3:", "queue_hard_bytes");
}

static void err_redis_url_scheme(void **state) {
  (void)state;
  expect_error("[redis]\n\nurl = http://127.0.0.1:6379\n", "t.conf:3:", "redis://");
}

/* Without a secret every node would take forged events from whoever can
 * reach Redis: refused at the url's line; secret_file is its file form. */
static void err_redis_url_needs_secret(void **state) {
  (void)state;
  expect_error("[redis]\n\nurl = redis://:pw@127.0.0.1:6379\n", "t.conf:3:", "secret");
  assert_null(strstr(errs.text, "pw@")); /* the password is not repeated */
  char path[256], text[512];
  write_temp("from-a-file\n", path, sizeof path);
  snprintf(text, sizeof text, "[redis]\nurl = redis://127.0.0.1:6379\nsecret_file = %s\n", path);
  expect_ok(text);
  assert_string_equal(cfg.redis.secret, "from-a-file");
  unlink(path);
}

/* --check judges the url with the parser the bus uses: what passes here
 * starts, what the bus would refuse is a FILE:LINE error here. */
static void err_bad_redis_url(void **state) {
  (void)state;
  static const char *bad[] = {"redis://host:abc", "redis://:@host:6379", "redis://host:0", "redis://host:70000",
                              "redis://:pw@",     "redis://h:6379/x",    "http://h:6379"};
  char text[256];
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(text, sizeof text, "[redis]\nsecret = s\nurl = %s\n", bad[i]);
    expect_error(text, "t.conf:3:", "url must be redis://");
  }
  expect_ok("[redis]\nsecret = s\nurl = redis://u%40x:p%3Aw@10.0.0.1:6380/\n");
  struct config_redis_endpoint ep;
  assert_int_equal(config_redis_url_parse(cfg.redis.url, &ep), 0);
  assert_string_equal(ep.host, "10.0.0.1");
  assert_int_equal(ep.port, 6380);
  assert_string_equal(ep.user, "u@x");
  assert_string_equal(ep.password, "p:w");
  assert_int_equal(config_redis_url_parse("redis://localhost", &ep), 0);
  assert_int_equal(config_redis_url_parse("http://localhost:6379", &ep), -EINVAL);
  assert_int_equal(ep.port, 6379);
}

static void err_line_too_long(void **state) {
  (void)state;
  /* inih's line buffer is 200 bytes: a longer value must not be cut silently */
  char text[1024] = "[channel a]\nkey = k1\ntitle = ";
  size_t used = strlen(text);
  memset(text + used, 'x', 300);
  memcpy(text + used + 300, "\n", 2);
  expect_error(text, "t.conf:3:", "line is too long");
}

static void err_too_many_tokens(void **state) {
  (void)state;
  /* more tokens than fit on one line: from a file, one per line */
  char path[256], body[1024] = "", text[512];
  for (int i = 0; i < CONFIG_MAX_TOKENS + 1; i++) {
    size_t used = strlen(body);
    snprintf(body + used, sizeof body - used, "token-%d\n", i);
  }
  write_temp(body, path, sizeof path);
  snprintf(text, sizeof text, "[chat]\nmoderator_tokens_file = %s\n", path);
  expect_error(text, "t.conf:2:", "too many tokens");
  unlink(path);
}

static void errors_are_collected(void **state) {
  (void)state;
  assert_int_equal(load("[server]\nhttp_listen = nowhere\n[rtmp]\nidle_timeout = x\n[bogus]\n"), -EINVAL);
  assert_int_equal(errs.count, 3);
  assert_non_null(strstr(errs.text, "t.conf:2: "));
  assert_non_null(strstr(errs.text, "t.conf:4: "));
  assert_non_null(strstr(errs.text, "t.conf:5: "));
}

static void keys_of_unknown_section_are_not_reported(void **state) {
  (void)state;
  assert_int_equal(load("[bogus]\na = 1\nb = 2\n"), -EINVAL);
  assert_int_equal(errs.count, 1);
}

/* ---- parser details (regressions) -------------------------------------- */

static void utf8_bom_is_skipped(void **state) {
  (void)state;
  expect_ok("\xEF\xBB\xBF[server]\nstate_dir = /bom\n");
  assert_string_equal(cfg.server.state_dir, "/bom");
}

static void indented_header_is_a_header(void **state) {
  (void)state;
  expect_ok("[channel a]\nkey = k1\n  [channel b]\nkey = k2\ntitle = B\n");
  assert_int_equal(cfg.channel_count, 2);
  assert_string_equal(cfg.channels[0].key, "k1");
  assert_string_equal(cfg.channels[1].key, "k2");
  assert_string_equal(cfg.channels[1].title, "B");
}

static void crlf_line_endings(void **state) {
  (void)state;
  expect_ok("[server]\r\nstate_dir = /crlf\r\n");
  assert_string_equal(cfg.server.state_dir, "/crlf");
}

static void no_final_newline(void **state) {
  (void)state;
  expect_ok("[server]\nstate_dir = /end");
  assert_string_equal(cfg.server.state_dir, "/end");
}

/* ---- secrets, lists, replacing sections -------------------------------- */

static void secrets_from_files(void **state) {
  (void)state;
  char key[256], backup[256], auth[256], tokens[256], text[2048];
  write_temp("file-key\n", key, sizeof key);
  write_temp("file-backup  \r\n", backup, sizeof backup);
  write_temp("hs256-secret", auth, sizeof auth);
  write_temp("mod-one\nmod-two, mod-three\n", tokens, sizeof tokens);
  snprintf(text, sizeof text,
           "[channel a]\nkey_file = %s\nbackup_key_file = %s\n"
           "[chat]\nauth_secret_file = %s\nmoderator_tokens_file = %s\n",
           key, backup, auth, tokens);
  expect_ok(text);
  assert_string_equal(cfg.channels[0].key, "file-key");
  assert_string_equal(cfg.channels[0].backup_key, "file-backup");
  assert_string_equal(cfg.chat.auth_secret, "hs256-secret");
  assert_int_equal(cfg.chat.moderator_tokens.count, 3);
  assert_string_equal(cfg.chat.moderator_tokens.token[0], "mod-one");
  assert_string_equal(cfg.chat.moderator_tokens.token[1], "mod-two");
  assert_string_equal(cfg.chat.moderator_tokens.token[2], "mod-three");
  unlink(key);
  unlink(backup);
  unlink(auth);
  unlink(tokens);
}

/* [channel NAME] moderator_tokens: that channel's own list, beside the
 * global one; the demo token there is refused beyond loopback too. */
static void channel_moderator_tokens(void **state) {
  (void)state;
  expect_ok("[channel a]\nkey = k1\nmoderator_tokens = ch-one, ch-two\n[channel b]\nkey = k2\n");
  assert_int_equal(cfg.channels[0].moderator_tokens.count, 2);
  assert_string_equal(cfg.channels[0].moderator_tokens.token[1], "ch-two");
  assert_int_equal(cfg.channels[1].moderator_tokens.count, 0);
  assert_int_equal(cfg.chat.moderator_tokens.count, 1); /* the global default stays */
  expect_error("[server]\nhttp_listen = 0.0.0.0:8080\n[channel a]\nkey = k1\n"
               "moderator_tokens = demo-moderator\n[chat]\nmoderator_tokens = m\n",
               "t.conf:5:", "[channel a] has the demo moderator token");
}

static void moderator_tokens_are_split_and_trimmed(void **state) {
  (void)state;
  expect_ok("[chat]\nmoderator_tokens = a1 , b2,,c3 \n");
  assert_int_equal(cfg.chat.moderator_tokens.count, 3);
  assert_string_equal(cfg.chat.moderator_tokens.token[0], "a1");
  assert_string_equal(cfg.chat.moderator_tokens.token[1], "b2");
  assert_string_equal(cfg.chat.moderator_tokens.token[2], "c3");
}

static void empty_auth_secret_means_anonymous(void **state) {
  (void)state;
  expect_ok("[chat]\nauth_secret =\n[redis]\nurl =\n");
  assert_string_equal(cfg.chat.auth_secret, "");
  assert_string_equal(cfg.redis.url, "");
}

static void push_list_accumulates(void **state) {
  (void)state;
  expect_ok("[channel a]\nkey = k1\npush = rtmp://198.51.100.1/live/x\npush = rtmp://198.51.100.2/app/y\n"
            "[channel b]\nkey = k2\npush = rtmp://198.51.100.3/live/z\n");
  assert_int_equal(cfg.channels[0].push_count, 2);
  assert_string_equal(cfg.channels[0].push[0], "rtmp://198.51.100.1/live/x");
  assert_string_equal(cfg.channels[0].push[1], "rtmp://198.51.100.2/app/y");
  assert_int_equal(cfg.channels[1].push_count, 1);
  assert_string_equal(cfg.channels[1].push[0], "rtmp://198.51.100.3/live/z");
}

static void file_channels_replace_demo_channel(void **state) {
  (void)state;
  expect_ok("[channel news]\nkey = k-news\ntitle = News\n[channel sport]\nkey = k-sport\nfailover_after = 5\n"
            "prefer_primary = no\n");
  assert_int_equal(cfg.channel_count, 2);
  assert_null(config_find_channel(&cfg, "gala"));
  const struct config_channel *news = config_find_channel(&cfg, "news");
  const struct config_channel *sport = config_find_channel(&cfg, "sport");
  assert_non_null(news);
  assert_non_null(sport);
  assert_string_equal(news->key, "k-news");
  assert_string_equal(news->backup_key, "");
  assert_string_equal(news->title, "News");
  assert_int_equal(news->line, 1);
  assert_true(news->failover_after == 2.0); /* per-channel defaults */
  assert_true(news->prefer_primary);
  assert_true(sport->failover_after == 5.0);
  assert_false(sport->prefer_primary);
  assert_int_equal(sport->line, 4);
}

static void no_channel_section_keeps_demo_channel(void **state) {
  (void)state;
  expect_ok("[server]\nstate_dir = /srv\n");
  assert_int_equal(cfg.channel_count, 1);
  const struct config_channel *gala = config_find_channel(&cfg, "gala");
  assert_non_null(gala);
  assert_string_equal(gala->key, "demo-key");
}

static void rung_sections_replace_ladder(void **state) {
  (void)state;
  expect_ok("[rung hd]\nheight = 1080\nvideo_bitrate = 5000\nmax_rate = 6000\npreset = fast\nprofile = main\n"
            "priority = 50\n[rung low]\nheight = 240\nvideo_bitrate = 300\n");
  assert_int_equal(cfg.transcoder.rung_count, 2);
  const struct config_rung *hd = &cfg.transcoder.rungs[0], *low = &cfg.transcoder.rungs[1];
  assert_string_equal(hd->name, "hd");
  assert_int_equal(hd->height, 1080);
  assert_int_equal(hd->video_bitrate, 5000);
  assert_int_equal(hd->max_rate, 6000);
  assert_string_equal(hd->preset, "fast");
  assert_string_equal(hd->profile, "main");
  assert_int_equal(hd->priority, 50);
  assert_string_equal(low->name, "low");
  assert_int_equal(low->height, 240);
  assert_string_equal(low->preset, "veryfast");
  assert_string_equal(low->profile, "high");
}

static void err_duplicate_rung(void **state) {
  (void)state;
  expect_error("[rung a]\nheight = 360\nvideo_bitrate = 500\n[rung a]\n", "t.conf:4:", "duplicate rung");
}

/* ---- demo secrets and listeners ---------------------------------------- */

static void demo_refused_when_http_listens_everywhere(void **state) {
  (void)state;
  expect_error("[server]\nhttp_listen = 0.0.0.0:8080\n", "t.conf:2:", "demo stream key");
  assert_non_null(strstr(errs.text, "demo moderator token"));
}

static void demo_refused_when_rtmp_listens_everywhere(void **state) {
  (void)state;
  expect_error("[server]\nhttp_listen = 127.0.0.1:8080\nrtmp_listen = 0.0.0.0:1935\n", "t.conf:3:", "demo stream key");
}

static void demo_refused_on_ipv6_any(void **state) {
  (void)state;
  expect_error("[server]\nhttp_listen = [::]:8080\n", "t.conf:2:", "demo");
}

static void demo_key_in_file_channel_refused(void **state) {
  (void)state;
  expect_error("[server]\nrtmp_listen = 0.0.0.0:1935\n[channel a]\nkey = demo-key\n[chat]\nmoderator_tokens = m\n",
               "t.conf:3:", "demo stream key");
}

static void demo_moderator_refused_with_own_keys(void **state) {
  (void)state;
  expect_error("[server]\nhttp_listen = 0.0.0.0:8080\n[channel a]\nkey = s3cret\n",
               "t.conf:2:", "demo moderator token");
  assert_null(strstr(errs.text, "demo stream key"));
}

static void demo_accepted_on_loopback(void **state) {
  (void)state;
  expect_ok("[server]\nhttp_listen = 127.0.0.1:8080\nrtmp_listen = 127.0.0.1:1935\n");
  expect_ok("[server]\nhttp_listen = [::1]:8080\nrtmp_listen = [::1]:1935\n");
  expect_ok("[server]\nhttp_listen = 127.0.0.2:8080\n");
}

static void own_secrets_accepted_everywhere(void **state) {
  (void)state;
  expect_ok("[server]\nhttp_listen = 0.0.0.0:8080\nrtmp_listen = [::]:1935\n"
            "[channel gala]\nkey = s3cret\nbackup_key = s3cret-2\n[chat]\nmoderator_tokens = m0d\n");
}

static void validate_refuses_demo_on_built_config(void **state) {
  (void)state;
  config_defaults(&cfg);
  snprintf(cfg.server.rtmp_listen.host, sizeof cfg.server.rtmp_listen.host, "0.0.0.0");
  memset(&errs, 0, sizeof errs);
  assert_int_equal(config_validate(&cfg, &errs), -EINVAL);
  assert_non_null(strstr(errs.text, "(defaults): "));
}

/* ---- helpers ------------------------------------------------------------ */

static void addr_format(void **state) {
  (void)state;
  char out[80];
  struct config_addr a4 = {.host = "127.0.0.1", .port = 8080};
  config_addr_format(&a4, out, sizeof out);
  assert_string_equal(out, "127.0.0.1:8080");
  struct config_addr a6 = {.host = "::1", .port = 1935};
  config_addr_format(&a6, out, sizeof out);
  assert_string_equal(out, "[::1]:1935");
  char small[6];
  config_addr_format(&a4, small, sizeof small);
  assert_string_equal(small, "127.0");
}

static void addr_is_loopback(void **state) {
  (void)state;
  struct config_addr a = {.port = 1};
  static const char *const yes[] = {"127.0.0.1", "127.1.2.3", "::1"};
  static const char *const no[] = {"0.0.0.0", "::", "192.0.2.1", "128.0.0.1", "::2"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    snprintf(a.host, sizeof a.host, "%s", yes[i]);
    assert_true(config_addr_is_loopback(&a));
  }
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
    snprintf(a.host, sizeof a.host, "%s", no[i]);
    assert_false(config_addr_is_loopback(&a));
  }
}

static void key_at_walks_the_table(void **state) {
  (void)state;
  static const char *const known[] = {"server", "rtmp", "hls", "transcoder", "chat", "redis", "channel", "rung"};
  const char *section = NULL;
  assert_null(config_key_at(-1, &section));
  assert_string_equal(config_key_at(0, &section), "http_listen");
  assert_string_equal(section, "server");
  int n = 0;
  bool saw_push = false, saw_height = false, saw_url = false;
  for (const char *name; (name = config_key_at(n, &section)); n++) {
    bool ok = false;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
      ok |= strcmp(section, known[k]) == 0;
    assert_true(ok);
    assert_true(name[0] != '\0');
    saw_push |= strcmp(section, "channel") == 0 && strcmp(name, "push") == 0;
    saw_height |= strcmp(section, "rung") == 0 && strcmp(name, "height") == 0;
    saw_url |= strcmp(section, "redis") == 0 && strcmp(name, "url") == 0;
  }
  assert_true(n > 50);
  assert_true(saw_push && saw_height && saw_url);
  assert_null(config_key_at(n, NULL));
  assert_non_null(config_key_at(0, NULL)); /* section may be NULL */
}

static void find_channel(void **state) {
  (void)state;
  expect_ok("[channel a]\nkey = k1\n[channel b]\nkey = k2\n");
  assert_ptr_equal(config_find_channel(&cfg, "b"), &cfg.channels[1]);
  assert_null(config_find_channel(&cfg, "c"));
}

static void load_missing_file(void **state) {
  (void)state;
  assert_int_equal(config_load(&cfg, "/nonexistent/galarelay.conf", &errs), -ENOENT);
  assert_non_null(strstr(errs.text, "/nonexistent/galarelay.conf: cannot open"));
}

static void load_file_with_nul(void **state) {
  (void)state;
  char path[256];
  write_temp("[server]\n", path, sizeof path);
  FILE *f = fopen(path, "ab");
  assert_non_null(f);
  fwrite("x\0y\n", 1, 4, f);
  fclose(f);
  assert_int_equal(config_load(&cfg, path, &errs), -EINVAL);
  assert_non_null(strstr(errs.text, "NUL"));
  unlink(path);
}

static void load_file_names_path_in_errors(void **state) {
  (void)state;
  char path[256], where[300];
  write_temp("[server]\nbogus = 1\n", path, sizeof path);
  assert_int_equal(config_load(&cfg, path, &errs), -EINVAL);
  snprintf(where, sizeof where, "%s:2: ", path);
  assert_non_null(strstr(errs.text, where));
  unlink(path);
}

/* ---- the shipped config and docs --------------------------------------- */

#define SHIPPED GALARELAY_SOURCE_DIR "/config/galarelay.conf"

static void shipped_config_behaves_like_defaults(void **state) {
  (void)state;
  static struct config want;
  if (config_load(&cfg, SHIPPED, &errs) != 0)
    fail_msg("%s", errs.text);
  config_defaults(&want);
  /* where things were set differs; what was set must not */
  memset(cfg.path, 0, sizeof cfg.path);
  memset(&cfg.lines, 0, sizeof cfg.lines);
  cfg.chat.moderator_tokens.line = 0;
  for (int i = 0; i < cfg.channel_count; i++)
    cfg.channels[i].line = cfg.channels[i].moderator_tokens.line = 0;
  assert_int_equal(cfg.channel_count, 1);
  assert_string_equal(cfg.channels[0].title, "留浙云春晚");
  assert_string_equal(cfg.server.web_root, want.server.web_root);
  assert_int_equal(memcmp(&cfg, &want, sizeof want), 0);
}

/* Does `name = ` start a line of text, commented out (";name =") or not? */
static bool documented(const char *text, const char *name) {
  size_t n = strlen(name);
  for (const char *p = text; (p = strstr(p, name)); p += n) {
    bool line_start = p == text || p[-1] == '\n' || (p[-1] == ';' && (p - 1 == text || p[-2] == '\n'));
    const char *q = p + n;
    while (*q == ' ')
      q++;
    if (line_start && *q == '=')
      return true;
  }
  return false;
}

static void shipped_config_documents_every_key(void **state) {
  (void)state;
  char *text = read_whole(SHIPPED);
  const char *section, *name;
  for (int i = 0; (name = config_key_at(i, &section)); i++) {
    if (!documented(text, name))
      fail_msg("config/galarelay.conf does not document [%s] %s", section, name);
    char header[64];
    snprintf(header, sizeof header, "[%s", section);
    if (!strstr(text, header))
      fail_msg("config/galarelay.conf has no %s section", header);
  }
  static const char *const files[] = {"key_file", "backup_key_file", "moderator_tokens_file", "auth_secret_file",
                                      "secret_file"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    if (!documented(text, files[i]))
      fail_msg("config/galarelay.conf does not document %s", files[i]);
  free(text);
}

static void docs_reference_every_key(void **state) {
  (void)state;
  char *text = read_whole(GALARELAY_SOURCE_DIR "/docs/config.md");
  const char *section, *name;
  for (int i = 0; (name = config_key_at(i, &section)); i++) {
    char cell[80];
    snprintf(cell, sizeof cell, "| `%s`", name);
    if (!strstr(text, cell))
      fail_msg("docs/config.md has no row for [%s] %s", section, name);
  }
  free(text);
}

/* ---- the table's defaults and docs ------------------------------------ */

static void table_defaults_all_parse(void **state) {
  (void)state;
  struct config_errors e;
  if (config_check_defaults(&e) != 0)
    fail_msg("%s", e.text);
  const char *section, *name;
  for (int i = 0; (name = config_key_at(i, &section)); i++) {
    const char *doc = config_key_doc(i);
    if (!doc || !doc[0] || strchr(doc, '\n'))
      fail_msg("[%s] %s has no one-line doc in the table", section, name);
  }
}

/* s with its backticks left out, into out. */
static void without_backticks(const char *s, size_t n, char *out, size_t size) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 1 < size; i++)
    if (s[i] != '`')
      out[o++] = s[i];
  out[o] = '\0';
}

/* The cells of docs/config.md's row for key name under "## [section",
 * trimmed and without backticks: 0 = type, 1 = default, 2 = range, 3 =
 * what it does. */
static bool docs_row(const char *text, const char *section, const char *name, char cells[4][1024]) {
  char heading[64], cell[80];
  snprintf(heading, sizeof heading, "\n## [%s", section);
  const char *p = strstr(text, heading);
  if (!p)
    return false;
  const char *end = strstr(p + 1, "\n## ");
  snprintf(cell, sizeof cell, "\n| `%s` |", name);
  const char *row = strstr(p, cell);
  if (!row || (end && row > end))
    return false;
  row += strlen(cell);
  for (int c = 0; c < 4; c++) {
    const char *bar = row;
    while (*bar && *bar != '\n' && !(*bar == '|' && bar[-1] != '\\'))
      bar++;
    if (*bar != '|')
      return false;
    const char *a = row, *b = bar;
    while (a < b && *a == ' ')
      a++;
    while (b > a && b[-1] == ' ')
      b--;
    without_backticks(a, (size_t)(b - a), cells[c], sizeof cells[c]);
    row = bar + 1;
  }
  return true;
}

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static void docs_show_each_default_and_doc(void **state) {
  (void)state;
  char *text = read_whole(GALARELAY_SOURCE_DIR "/docs/config.md");
  static char cells[4][1024];
  const char *section, *name;
  for (int i = 0; (name = config_key_at(i, &section)); i++) {
    if (!docs_row(text, section, name, cells))
      fail_msg("docs/config.md has no row for [%s] %s under its section", section, name);
    const char *def = config_key_default(i);
    if (def && !starts_with(cells[1], def[0] ? def : "empty"))
      fail_msg("docs/config.md: [%s] %s default is \"%s\", the table says \"%s\"", section, name, cells[1],
               def[0] ? def : "empty");
    if (!starts_with(cells[3], config_key_doc(i)))
      fail_msg("docs/config.md: [%s] %s reads \"%s\", the table's doc line is \"%s\"", section, name, cells[3],
               config_key_doc(i));
  }
  free(text);
}

/* The shipped file shows each default: a line "KEY = DEFAULT" (commented
 * out or not); an empty default either so ("KEY =") or said in the comment
 * above the key ("default empty"). */
static void shipped_config_shows_each_default(void **state) {
  (void)state;
  char *text = read_whole(SHIPPED);
  const char *section, *name;
  for (int i = 0; (name = config_key_at(i, &section)); i++) {
    const char *def = config_key_default(i);
    if (!def)
      continue;
    char want[256];
    snprintf(want, sizeof want, "%s = %s\n", name, def);
    if (!def[0])
      snprintf(want, sizeof want, "%s =\n", name);
    bool shown = false;
    for (const char *p = text; !shown && (p = strstr(p, want)); p++)
      shown = p == text || p[-1] == '\n' || (p[-1] == ';' && (p - 1 == text || p[-2] == '\n'));
    if (!shown && !def[0]) {
      /* the comment paragraph above the key's first line */
      char key[96];
      snprintf(key, sizeof key, "\n;%s =", name);
      const char *at = strstr(text, key + 1) ? strstr(text, key) : NULL;
      if (!at) {
        snprintf(key, sizeof key, "\n%s =", name);
        at = strstr(text, key);
      }
      const char *start = at;
      while (start && start > text && !(start[-1] == '\n' && start[0] == '\n'))
        start--;
      char para[2048] = "";
      if (at) {
        size_t n = (size_t)(at - start) < sizeof para - 1 ? (size_t)(at - start) : sizeof para - 1;
        memcpy(para, start, n);
        para[n] = '\0';
      }
      for (char *q = para; *q; q++) /* "default\n; empty" reads as one phrase */
        if (*q == '\n' || *q == ';')
          *q = ' ';
      shown = strcasestr(para, "empty") != NULL;
    }
    if (!shown)
      fail_msg("config/galarelay.conf does not show the default of [%s] %s (want \"%s = %s\")", section, name, name,
               def);
  }
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_match_spec),
      cmocka_unit_test(table_defaults_all_parse),
      cmocka_unit_test(docs_show_each_default_and_doc),
      cmocka_unit_test(shipped_config_shows_each_default),
      cmocka_unit_test(defaults_ladder_has_three_rungs),
      cmocka_unit_test(defaults_validate),
      cmocka_unit_test(empty_file_keeps_defaults),
      cmocka_unit_test(comments_and_blank_lines),
      cmocka_unit_test(inline_semicolon_without_space_is_kept),
      cmocka_unit_test(values_of_every_type),
      cmocka_unit_test(size_suffixes),
      cmocka_unit_test(err_bad_size_suffix),
      cmocka_unit_test(err_unknown_section),
      cmocka_unit_test(err_unknown_empty_section),
      cmocka_unit_test(err_unknown_key),
      cmocka_unit_test(err_file_variant_of_non_secret),
      cmocka_unit_test(err_key_outside_section),
      cmocka_unit_test(err_bad_number),
      cmocka_unit_test(err_fraction_for_integer),
      cmocka_unit_test(err_out_of_range),
      cmocka_unit_test(err_bad_bool),
      cmocka_unit_test(err_bad_log_level),
      cmocka_unit_test(err_addr_without_port),
      cmocka_unit_test(err_addr_port_zero),
      cmocka_unit_test(err_addr_port_too_big),
      cmocka_unit_test(err_addr_hostname),
      cmocka_unit_test(err_addr_bad_ipv6),
      cmocka_unit_test(addr_ipv6_accepted),
      cmocka_unit_test(err_duplicate_channel),
      cmocka_unit_test(err_duplicate_key_in_section),
      cmocka_unit_test(same_key_in_two_channels_sections_is_fine),
      cmocka_unit_test(err_key_and_key_file),
      cmocka_unit_test(err_stream_key_shared_across_channels),
      cmocka_unit_test(err_backup_key_equals_key),
      cmocka_unit_test(err_channel_without_key),
      cmocka_unit_test(err_secret_file_missing),
      cmocka_unit_test(err_secret_file_empty),
      cmocka_unit_test(err_syntax_line_without_equals),
      cmocka_unit_test(err_unclosed_header),
      cmocka_unit_test(err_channel_bad_name),
      cmocka_unit_test(err_single_section_with_name),
      cmocka_unit_test(err_duplicate_server_section),
      cmocka_unit_test(err_too_many_push),
      cmocka_unit_test(err_bad_push_url),
      cmocka_unit_test(redact_url),
      cmocka_unit_test(err_rung_odd_height),
      cmocka_unit_test(err_rung_unknown_preset),
      cmocka_unit_test(err_rung_bad_profile),
      cmocka_unit_test(err_rung_needs_bitrate),
      cmocka_unit_test(err_rung_max_rate_below_bitrate),
      cmocka_unit_test(err_segment_shorter_than_two_parts),
      cmocka_unit_test(err_queue_hard_below_soft),
      cmocka_unit_test(err_redis_url_scheme),
      cmocka_unit_test(err_line_too_long),
      cmocka_unit_test(err_too_many_tokens),
      cmocka_unit_test(errors_are_collected),
      cmocka_unit_test(keys_of_unknown_section_are_not_reported),
      cmocka_unit_test(utf8_bom_is_skipped),
      cmocka_unit_test(indented_header_is_a_header),
      cmocka_unit_test(crlf_line_endings),
      cmocka_unit_test(no_final_newline),
      cmocka_unit_test(secrets_from_files),
      cmocka_unit_test(moderator_tokens_are_split_and_trimmed),
      cmocka_unit_test(channel_moderator_tokens),
      cmocka_unit_test(err_redis_url_needs_secret),
      cmocka_unit_test(err_bad_redis_url),
      cmocka_unit_test(empty_auth_secret_means_anonymous),
      cmocka_unit_test(push_list_accumulates),
      cmocka_unit_test(file_channels_replace_demo_channel),
      cmocka_unit_test(no_channel_section_keeps_demo_channel),
      cmocka_unit_test(rung_sections_replace_ladder),
      cmocka_unit_test(err_duplicate_rung),
      cmocka_unit_test(demo_refused_when_http_listens_everywhere),
      cmocka_unit_test(demo_refused_when_rtmp_listens_everywhere),
      cmocka_unit_test(demo_refused_on_ipv6_any),
      cmocka_unit_test(demo_key_in_file_channel_refused),
      cmocka_unit_test(demo_moderator_refused_with_own_keys),
      cmocka_unit_test(demo_accepted_on_loopback),
      cmocka_unit_test(own_secrets_accepted_everywhere),
      cmocka_unit_test(validate_refuses_demo_on_built_config),
      cmocka_unit_test(addr_format),
      cmocka_unit_test(addr_is_loopback),
      cmocka_unit_test(key_at_walks_the_table),
      cmocka_unit_test(find_channel),
      cmocka_unit_test(load_missing_file),
      cmocka_unit_test(load_file_with_nul),
      cmocka_unit_test(load_file_names_path_in_errors),
      cmocka_unit_test(shipped_config_behaves_like_defaults),
      cmocka_unit_test(shipped_config_documents_every_key),
      cmocka_unit_test(docs_reference_every_key),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
