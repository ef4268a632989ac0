# Fuzz targets of parsers that span modules or are extracted from a
# handler so that they can be fuzzed alone (cmake/testing.cmake).
set(fuzz_dir ${CMAKE_SOURCE_DIR}/tests/fuzz)

# X-Forwarded-For (core/http_xff.c) and the /hls/ path and query
# (transcoder/hls/hls_url.c): what every HTTP request brings.
galarelay_fuzz_target(fuzz_http_parse
  SOURCES ${fuzz_dir}/fuzz_http_parse.c ${CMAKE_SOURCE_DIR}/core/http_xff.c
          ${CMAKE_SOURCE_DIR}/transcoder/hls/hls_url.c
  CORPUS ${fuzz_dir}/corpus/fuzz_http_parse)

# The viewers' JWTs (chat/jwt.c).
galarelay_fuzz_target(fuzz_chat_jwt
  SOURCES ${fuzz_dir}/fuzz_chat_jwt.c ${CMAKE_SOURCE_DIR}/chat/jwt.c
  LIBS PkgConfig::JANSSON PkgConfig::CRYPTO
  CORPUS ${fuzz_dir}/corpus/fuzz_chat_jwt)

# The banned-word filter: normalisation and the automaton (chat/filter.c).
galarelay_fuzz_target(fuzz_chat_filter
  SOURCES ${fuzz_dir}/fuzz_chat_filter.c ${CMAKE_SOURCE_DIR}/chat/filter.c
          ${CMAKE_SOURCE_DIR}/chat/protocol.c
  LIBS galarelay_core PkgConfig::UV PkgConfig::JANSSON PkgConfig::UTF8PROC PkgConfig::OPENCC
  CORPUS ${fuzz_dir}/corpus/fuzz_chat_filter)

# Events from Redis: the envelope (chat/bus.c, included by the target) and
# the event applied to a room (chat/room.c).
galarelay_fuzz_target(fuzz_chat_bus
  SOURCES ${fuzz_dir}/fuzz_chat_bus.c ${CMAKE_SOURCE_DIR}/chat/bus_envelope.c
          ${CMAKE_SOURCE_DIR}/chat/room.c ${CMAKE_SOURCE_DIR}/chat/filter.c
          ${CMAKE_SOURCE_DIR}/chat/ratelimit.c ${CMAKE_SOURCE_DIR}/chat/protocol.c
  LIBS galarelay_core galarelay_config PkgConfig::UV PkgConfig::CRYPTO PkgConfig::JANSSON
       PkgConfig::UTF8PROC PkgConfig::OPENCC m
  CORPUS ${fuzz_dir}/corpus/fuzz_chat_bus)
