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

# The fan-out never starves the posters: 4000 viewers × 200 comments/s for
# 5 s, every comment delivered to every viewer and every one acked, the
# acks' p99 within 250 ms (the aim is 100 ms on a quiet machine; the margin
# is for a shared CI machine). Before the fan-out was paced, a loop turn
# wrote to every member at once and the acks at 4000-5000 viewers came
# seconds late or not at all. And an idle viewer costs at most 8 KiB of
# daemon RSS (10.7 while each connection kept a reassembly buffer); not in
# the ASan pass, where shadow memory and redzones make it about 27 KiB.
if(GALARELAY_SANITIZE)
  set(chat_acks_rss_bound "")
else()
  set(chat_acks_rss_bound RSS_PER_VIEWER_MAX_KB=8)
endif()
galarelay_script_test(bench_chat_acks
  COMMAND env SMOKE=1 SERVERS=galarelay VIEWERS=4000 POSTERS=5 RATE=200 DURATION=5
          ACK_P99_MAX_MS=250 ${chat_acks_rss_bound} CHAT_LOAD=$<TARGET_FILE:chat_load>
          bash ${CMAKE_CURRENT_LIST_DIR}/chat_bench.sh ${CMAKE_BINARY_DIR}
  LABELS bench-smoke
  TIMEOUT 120)
set_tests_properties(bench_chat_acks PROPERTIES RESOURCE_LOCK media)
