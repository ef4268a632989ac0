# core/ tests: the logger, and http.c's Origin rule on its own function.
galarelay_unit_test(test_log SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_log.c LIBS galarelay_core)

galarelay_unit_test(test_http_origin
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_http_origin.c
  LIBS galarelay_core)

galarelay_unit_test(test_netaddr SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_netaddr.c LIBS galarelay_core)
