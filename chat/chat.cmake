# chat/chat.cmake: the chat service's transport: the websocket protocol
# (chat.c), the requests, tickets and the archive records of events. It
# stands on the core (core.cmake: protocol, filter, JWT, rate limits,
# rooms) and the store (store.cmake: archive, bus).
add_library(galarelay_chat STATIC
  ${CMAKE_CURRENT_LIST_DIR}/fanout.c
  ${CMAKE_CURRENT_LIST_DIR}/chat.c
  ${CMAKE_CURRENT_LIST_DIR}/chat_requests.c
  ${CMAKE_CURRENT_LIST_DIR}/chat_archive.c
  ${CMAKE_CURRENT_LIST_DIR}/ticket.c)
target_include_directories(galarelay_chat PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(galarelay_chat PUBLIC
  galarelay_chat_core galarelay_chat_store galarelay_core galarelay_config
  PkgConfig::LWS PkgConfig::UV PkgConfig::JANSSON PkgConfig::CRYPTO)

foreach(t requests service fanout)
  galarelay_unit_test(test_chat_${t}
    SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_chat_${t}.c
    LIBS galarelay_chat)
endforeach()

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
