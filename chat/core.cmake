# chat/core.cmake: the chat module's core, without sockets, storage or
# threads of its own: the client protocol, the banned-word filter, JWT,
# rate limits and the rooms. It depends on nothing else of chat/: the
# store (store.cmake) and the transport (chat.cmake) stand on it.
add_library(galarelay_chat_core STATIC
  ${CMAKE_CURRENT_LIST_DIR}/protocol.c
  ${CMAKE_CURRENT_LIST_DIR}/filter.c
  ${CMAKE_CURRENT_LIST_DIR}/jwt.c
  ${CMAKE_CURRENT_LIST_DIR}/ratelimit.c
  ${CMAKE_CURRENT_LIST_DIR}/room.c)
target_include_directories(galarelay_chat_core PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(galarelay_chat_core PUBLIC
  galarelay_core galarelay_config
  PkgConfig::UV PkgConfig::JANSSON PkgConfig::UTF8PROC PkgConfig::OPENCC PkgConfig::CRYPTO m)

foreach(t protocol filter jwt ratelimit room)
  galarelay_unit_test(test_chat_${t}
    SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_chat_${t}.c
    LIBS galarelay_chat_core)
endforeach()

galarelay_fuzz_target(fuzz_chat_protocol
  SOURCES ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_chat_protocol.c
          ${CMAKE_CURRENT_LIST_DIR}/protocol.c
  LIBS PkgConfig::JANSSON
  CORPUS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/fuzz_chat_protocol)
