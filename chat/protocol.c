/* protocol: parse and validate client frames, build server messages.
 *
 * One table row per field a message type takes ({name, kind, required,
 * destination, bound}); parse_fields walks the rows for the message's type
 * (and for mod messages, the action's rows), so adding a field is adding a
 * row. Fields a message does not name are ignored, so clients may grow. */
#include "chat/protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- UTF-8 */

bool chat_utf8_valid(const void *data, size_t len) {
  const unsigned char *s = data;
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (len - i <= n)
      return false;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

size_t chat_utf8_length(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80)
      n++;
  return n;
}

/* ---- Field tables */

enum field_kind {
  F_STR,         /* const char * */
  F_STR_OR_NULL, /* const char *, NULL for JSON null or absent */
  F_INT,         /* int64_t, with bounds */
  F_BOOL,        /* bool */
  F_WORDS,       /* json_t * array of bounded strings */
};

struct field_spec {
  const char *name;
  enum field_kind kind;
  bool required;
  size_t offset;    /* into struct chat_msg */
  int64_t min, max; /* F_STR: max bytes; F_INT: bounds */
};

#define OFF(f) offsetof(struct chat_msg, f)
// clang-format off
#define END {NULL, 0, false, 0, 0, 0}
// clang-format on

static const struct field_spec hello_fields[] = {
    {"name", F_STR, false, OFF(name), 0, 256},
    {"token", F_STR, false, OFF(token), 0, CHAT_TOKEN_MAX},
    {"compress", F_STR, false, OFF(compress), 0, CHAT_COMPRESS_MAX},
    END,
};
static const struct field_spec comment_fields[] = {
    /* the code point limit is the room's (config); this only bounds bytes */
    {"text", F_STR, true, OFF(text), 0, 65536},
    END,
};
static const struct field_spec id_fields[] = {
    {"id", F_STR, true, OFF(id), 1, CHAT_ID_MAX},
    END,
};
static const struct field_spec pin_fields[] = {
    {"id", F_STR_OR_NULL, false, OFF(id), 1, CHAT_ID_MAX},
    END,
};
static const struct field_spec user_fields[] = {
    {"user", F_STR, true, OFF(user), 1, CHAT_ID_MAX},
    END,
};
static const struct field_spec timeout_fields[] = {
    {"user", F_STR, true, OFF(user), 1, CHAT_ID_MAX},
    {"seconds", F_INT, true, OFF(seconds), 1, 14 * 24 * 3600},
    END,
};
static const struct field_spec slow_fields[] = {
    {"seconds", F_INT, true, OFF(seconds), 0, 24 * 3600},
    END,
};
static const struct field_spec hold_fields[] = {
    {"on", F_BOOL, true, OFF(on), 0, 0},
    END,
};
static const struct field_spec words_fields[] = {
    {"words", F_WORDS, true, OFF(words), 1, CHAT_WORD_MAX},
    END,
};
static const struct field_spec no_fields[] = {END};

static const struct {
  const char *name;
  enum chat_mod_action action;
  const struct field_spec *fields;
} mod_actions[] = {
    {"delete", CHAT_MOD_DELETE, id_fields},
    {"timeout", CHAT_MOD_TIMEOUT, timeout_fields},
    {"ban", CHAT_MOD_BAN, user_fields},
    {"unban", CHAT_MOD_UNBAN, user_fields},
    {"slow", CHAT_MOD_SLOW, slow_fields},
    {"hold", CHAT_MOD_HOLD, hold_fields},
    {"approve", CHAT_MOD_APPROVE, id_fields},
    {"reject", CHAT_MOD_REJECT, id_fields},
    {"words_add", CHAT_MOD_WORDS_ADD, words_fields},
    {"words_remove", CHAT_MOD_WORDS_REMOVE, words_fields},
    {"clear", CHAT_MOD_CLEAR, no_fields},
    {"pin", CHAT_MOD_PIN, pin_fields},
};
#define MOD_ACTION_COUNT (sizeof(mod_actions) / sizeof(mod_actions[0]))

const char *chat_mod_action_name(enum chat_mod_action a) {
  for (size_t i = 0; i < MOD_ACTION_COUNT; i++)
    if (mod_actions[i].action == a)
      return mod_actions[i].name;
  return "?";
}

static int fail(struct chat_parse_error *err, const char *fmt, const char *arg) {
  snprintf(err->message, sizeof(err->message), fmt, arg);
  return -1;
}

static int check_string(const json_t *v, int64_t min, int64_t max) {
  size_t n = json_string_length(v);
  /* jansson rejects \u0000 unless JSON_ALLOW_NUL, so strings are C strings */
  return (int64_t)n >= min && (int64_t)n <= max ? 0 : -1;
}

static int parse_fields(json_t *root, const struct field_spec *spec, struct chat_msg *out,
                        struct chat_parse_error *err) {
  for (; spec->name; spec++) {
    json_t *v = json_object_get(root, spec->name);
    void *dst = (char *)out + spec->offset;
    if (!v || (json_is_null(v) && spec->kind != F_STR_OR_NULL)) {
      if (spec->required)
        return fail(err, "missing field %s", spec->name);
      continue;
    }
    switch (spec->kind) {
    case F_STR:
    case F_STR_OR_NULL:
      if (json_is_null(v)) {
        *(const char **)dst = NULL;
        break;
      }
      if (!json_is_string(v) || check_string(v, spec->min, spec->max))
        return fail(err, "field %s must be a string of bounded length", spec->name);
      *(const char **)dst = json_string_value(v);
      break;
    case F_INT: {
      if (!json_is_integer(v))
        return fail(err, "field %s must be an integer", spec->name);
      json_int_t n = json_integer_value(v);
      if (n < spec->min || n > spec->max)
        return fail(err, "field %s is out of range", spec->name);
      *(int64_t *)dst = n;
      break;
    }
    case F_BOOL:
      if (!json_is_boolean(v))
        return fail(err, "field %s must be true or false", spec->name);
      *(bool *)dst = json_is_true(v);
      break;
    case F_WORDS: {
      size_t n = json_array_size(v);
      if (!json_is_array(v) || n == 0 || n > CHAT_WORDS_MAX)
        return fail(err, "field %s must be a non-empty list of words", spec->name);
      for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(v, i)) || check_string(json_array_get(v, i), spec->min, spec->max))
          return fail(err, "field %s must hold short strings", spec->name);
      *(json_t **)dst = v;
      break;
    }
    }
  }
  return 0;
}

enum chat_parse_result chat_protocol_parse(const void *data, size_t len, struct chat_msg *out,
                                           struct chat_parse_error *err) {
  memset(out, 0, sizeof(*out));
  err->message[0] = '\0';
  err->nonce[0] = '\0';
  if (!chat_utf8_valid(data, len)) {
    snprintf(err->message, sizeof(err->message), "invalid UTF-8");
    return CHAT_PARSE_BAD_UTF8;
  }
  json_error_t jerr;
  json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    snprintf(err->message, sizeof(err->message), "bad JSON: %.80s", jerr.text);
    return CHAT_PARSE_BAD_REQUEST;
  }
  if (!json_is_object(root)) {
    json_decref(root);
    snprintf(err->message, sizeof(err->message), "a message is a JSON object");
    return CHAT_PARSE_BAD_REQUEST;
  }
  out->root = root;
  json_t *nonce = json_object_get(root, "nonce");
  if (nonce && !json_is_null(nonce)) {
    if (!json_is_string(nonce) || json_string_length(nonce) == 0 || json_string_length(nonce) > CHAT_NONCE_MAX) {
      snprintf(err->message, sizeof(err->message), "nonce must be a string of 1..%d bytes", CHAT_NONCE_MAX);
      goto bad;
    }
    out->nonce = json_string_value(nonce);
    snprintf(err->nonce, sizeof(err->nonce), "%s", out->nonce);
  }
  const char *type = json_string_value(json_object_get(root, "type"));
  const struct field_spec *spec = NULL;
  if (!type) {
    fail(err, "missing field %s", "type");
    goto bad;
  }
  if (!strcmp(type, "hello")) {
    out->type = CHAT_MSG_HELLO;
    spec = hello_fields;
  } else if (!strcmp(type, "comment")) {
    out->type = CHAT_MSG_COMMENT;
    spec = comment_fields;
  } else if (!strcmp(type, "mod")) {
    out->type = CHAT_MSG_MOD;
    const char *action = json_string_value(json_object_get(root, "action"));
    if (!action) {
      fail(err, "missing field %s", "action");
      goto bad;
    }
    for (size_t i = 0; i < MOD_ACTION_COUNT && !spec; i++) {
      if (!strcmp(action, mod_actions[i].name)) {
        out->action = mod_actions[i].action;
        spec = mod_actions[i].fields;
      }
    }
    if (!spec) {
      fail(err, "unknown action %.40s", action);
      goto bad;
    }
  } else {
    fail(err, "unknown type %.40s", type);
    goto bad;
  }
  if (parse_fields(root, spec, out, err))
    goto bad;
  return CHAT_PARSE_OK;
bad:
  json_decref(root);
  out->root = NULL;
  return CHAT_PARSE_BAD_REQUEST;
}

void chat_msg_free(struct chat_msg *msg) {
  json_decref(msg->root);
  memset(msg, 0, sizeof(*msg));
}

/* ---- Server messages */

json_t *chat_user_json(const char *id, const char *name, const char *role) {
  return json_pack("{s:s, s:s, s:s}", "id", id ? id : "", "name", name ? name : "", "role", role ? role : "viewer");
}

/* The viewers' form of a comment: a copy whose user keeps only what the
 * page shows. */
static json_t *lean_comment(const json_t *c) {
  json_t *out = json_copy((json_t *)c); /* shallow: the text is shared */
  const json_t *user = json_object_get(c, "user");
  if (!out || !json_is_object(user))
    return out;
  const char *role = json_string_value(json_object_get(user, "role"));
  json_t *lean = json_pack("{s:O?}", "name", json_object_get(user, "name"));
  if (lean && role && strcmp(role, "viewer") != 0)
    json_object_set_new(lean, "role", json_string(role));
  if (!lean || json_object_set_new(out, "user", lean)) {
    json_decref(out);
    return NULL;
  }
  return out;
}

json_t *chat_event_for_viewers(json_t *ev) {
  const char *type = json_string_value(json_object_get(ev, "type"));
  if (type && !strcmp(type, "comment"))
    return lean_comment(ev);
  const json_t *pinned = json_object_get(ev, "pinned");
  if (type && !strcmp(type, "state") && json_is_object(pinned)) {
    json_t *out = json_copy(ev), *lean = lean_comment(pinned);
    if (!out || !lean || json_object_set_new(out, "pinned", lean)) {
      json_decref(out);
      return NULL;
    }
    return out;
  }
  return json_incref(ev);
}

json_t *chat_comment_event(const char *id, json_t *user, const char *text, int64_t ts_ms) {
  return json_pack("{s:s, s:s, s:o, s:s, s:I}", "type", "comment", "id", id, "user", user, "text", text, "ts",
                   (json_int_t)ts_ms);
}

json_t *chat_state_json(int slow_seconds, bool hold, const json_t *pinned) {
  json_t *p = pinned ? json_deep_copy(pinned) : json_null();
  return json_pack("{s:s, s:i, s:b, s:o}", "type", "state", "slow", slow_seconds, "hold", hold, "pinned", p);
}

json_t *chat_ack_json(const char *nonce, const char *id) {
  json_t *o = json_pack("{s:s}", "type", "ack");
  if (!o)
    return NULL;
  if (nonce && *nonce)
    json_object_set_new(o, "nonce", json_string(nonce));
  if (id)
    json_object_set_new(o, "id", json_string(id));
  return o;
}

json_t *chat_error_json(const char *nonce, const char *code, const char *message, int64_t retry_after_ms) {
  json_t *o = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message ? message : code);
  if (!o)
    return NULL;
  if (nonce && *nonce)
    json_object_set_new(o, "nonce", json_string(nonce));
  if (retry_after_ms >= 0)
    json_object_set_new(o, "retry_after_ms", json_integer(retry_after_ms));
  return o;
}

unsigned char *chat_json_frame(const json_t *msg, size_t headroom, size_t *len) {
  size_t n = json_dumpb(msg, NULL, 0, JSON_COMPACT);
  if (n == 0)
    return NULL;
  unsigned char *p = malloc(headroom + n + 1);
  if (!p)
    return NULL;
  if (json_dumpb(msg, (char *)p + headroom, n, JSON_COMPACT) != n) {
    free(p);
    return NULL;
  }
  p[headroom + n] = '\0';
  *len = n;
  return p;
}

unsigned char *chat_deflate_frame(const unsigned char *payload, size_t len, size_t headroom, size_t *out_len) {
  z_stream z = {0};
  /* -15: raw DEFLATE, no zlib header or checksum (RFC 1951 as it is) */
  if (deflateInit2(&z, CHAT_DEFLATE_LEVEL, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return NULL;
  size_t cap = deflateBound(&z, (uLong)len);
  unsigned char *p = malloc(headroom + cap);
  if (p) {
    z.next_in = (Bytef *)payload;
    z.avail_in = (uInt)len;
    z.next_out = p + headroom;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) == Z_STREAM_END) {
      *out_len = cap - z.avail_out;
    } else {
      free(p);
      p = NULL;
    }
  }
  deflateEnd(&z);
  return p;
}
