# chat/chat.cmake: the live comment path: protocol, filter, JWT, rate
# limits, rooms and the websocket service (chat.c). The archive and the bus
# are galarelay_chat_store (store.cmake).
add_library(galarelay_chat STATIC
  ${CMAKE_CURRENT_LIST_DIR}/protocol.c
  ${CMAKE_CURRENT_LIST_DIR}/filter.c
  ${CMAKE_CURRENT_LIST_DIR}/jwt.c
  ${CMAKE_CURRENT_LIST_DIR}/ratelimit.c
  ${CMAKE_CURRENT_LIST_DIR}/room.c
  ${CMAKE_CURRENT_LIST_DIR}/fanout.c
  ${CMAKE_CURRENT_LIST_DIR}/chat.c
  ${CMAKE_CURRENT_LIST_DIR}/chat_requests.c
  ${CMAKE_CURRENT_LIST_DIR}/chat_remote.c)
target_include_directories(galarelay_chat PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(galarelay_chat PUBLIC
  galarelay_chat_store galarelay_core galarelay_config
  PkgConfig::LWS PkgConfig::UV PkgConfig::JANSSON PkgConfig::UTF8PROC PkgConfig::OPENCC
  PkgConfig::CRYPTO m)

foreach(t protocol filter jwt ratelimit room fanout)
  galarelay_unit_test(test_chat_${t}
    SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_chat_${t}.c
    LIBS galarelay_chat)
endforeach()

galarelay_fuzz_target(fuzz_chat_protocol
  SOURCES ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_chat_protocol.c
          ${CMAKE_CURRENT_LIST_DIR}/protocol.c
  LIBS PkgConfig::JANSSON
  CORPUS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/fuzz_chat_protocol)

# Integration: the real daemon and node's `ws` client (tests/package.json;
# `npm ci --prefix tests` installs it into tests/node_modules). Registered
# whether node is installed or not: chat_run.sh fails, naming it, when not.
foreach(t protocol moderation filter words_file limits slow redis restart)
  galarelay_script_test(chat_${t}
    COMMAND ${CMAKE_SOURCE_DIR}/tests/integration/chat_run.sh
            ${CMAKE_SOURCE_DIR}/tests/integration/chat_${t}.mjs
    LABELS integration chat
    TIMEOUT 120)
endforeach()
