# chat_load: the websocket load generator of bench/chat_bench.sh,
# run by hand (bench/chat_bench.sh), never by the default ctest except the
# one smoke test below: the whole bench at a tiny size (50 viewers, 2
# posters, 3 s) against galarelay and the Node server, label bench-smoke.
add_executable(chat_load ${CMAKE_CURRENT_LIST_DIR}/chat_load.c)
target_link_libraries(chat_load PRIVATE PkgConfig::UV PkgConfig::CRYPTO PkgConfig::ZLIB)

galarelay_script_test(bench_chat_smoke
  COMMAND env SMOKE=1 CHAT_LOAD=$<TARGET_FILE:chat_load>
          bash ${CMAKE_CURRENT_LIST_DIR}/chat_bench.sh ${CMAKE_BINARY_DIR}
  LABELS bench-smoke
  TIMEOUT 60)
# With SMOKE=1 chat_bench.sh fails (never skips) when node or the bench's npm
# packages are missing, and when a comment was not delivered to every viewer.
# It compares CPU time against the Node server: one media test at a time.
set_tests_properties(bench_chat_smoke PROPERTIES RESOURCE_LOCK media)
