# core/ tests: the logger, the metrics writer, http.c's Origin rule on its
# own function, the client key of an address, the loop<->worker queue.
galarelay_unit_test(test_log SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_log.c LIBS galarelay_core)

galarelay_unit_test(test_http_origin
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_http_origin.c
  LIBS galarelay_core)

galarelay_unit_test(test_netaddr SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_netaddr.c LIBS galarelay_core)

# The loop<->worker queue: bound, drop policies, wake-up, purge, shutdown.
galarelay_unit_test(test_workq SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_workq.c LIBS galarelay_core)
galarelay_unit_test(test_metrics SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_metrics.c LIBS galarelay_core)
