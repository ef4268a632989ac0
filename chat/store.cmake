# chat/store.cmake: the chat module's durable and shared parts: the SQLite
# archive (its own thread, group commit) and the fan-out bus (local, or
# Redis pub/sub through hiredis on the loop). The archive thread is
# libuv's (uv_thread_t), so no Threads package is needed.
add_library(galarelay_chat_store STATIC
  ${CMAKE_CURRENT_LIST_DIR}/archive.c
  ${CMAKE_CURRENT_LIST_DIR}/bus.c
  ${CMAKE_CURRENT_LIST_DIR}/bus_envelope.c
  ${CMAKE_CURRENT_LIST_DIR}/redis_uv.c)
target_include_directories(galarelay_chat_store PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(galarelay_chat_store PUBLIC
  galarelay_core galarelay_config
  PkgConfig::UV PkgConfig::SQLITE PkgConfig::HIREDIS PkgConfig::JANSSON PkgConfig::CRYPTO)

# m: config.c uses floor() and galarelay_config does not link libm (yet).
galarelay_unit_test(test_chat_archive
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_chat_archive.c
  LIBS galarelay_chat_store m)
galarelay_unit_test(test_chat_bus
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_chat_bus.c
  LIBS galarelay_chat_store m)
# The Redis test starts its own redis-server on a free loopback port (and
# fails, naming it, when /usr/bin/redis-server is not installed).
galarelay_unit_test(test_chat_bus_redis
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_chat_bus_redis.c
  LIBS galarelay_chat_store m)
set_tests_properties(test_chat_bus_redis PROPERTIES LABELS "unit;redis")

# Built, not run by ctest: bench/chat_archive.c prints acks/s and ack latency.
add_executable(chat_archive_bench ${CMAKE_SOURCE_DIR}/bench/chat_archive.c)
target_link_libraries(chat_archive_bench PRIVATE galarelay_chat_store m)
