# Show-night drills: the real daemon with real peers (ffmpeg,
# ffprobe, nginx), each failure a broadcaster or an operator meets on the
# night. docs/runbook.md says what each one proves.
galarelay_script_test(it_edge_nginx
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_edge_nginx.py
  LABELS integration
  TIMEOUT 180)
galarelay_script_test(it_drill_restart
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_drill_restart.py
  LABELS integration
  TIMEOUT 180)
galarelay_script_test(it_drill_overload
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_drill_overload.py
  LABELS integration
  TIMEOUT 120)
galarelay_script_test(it_drill_publisher
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_drill_publisher.py
  LABELS integration
  TIMEOUT 180)
galarelay_script_test(it_drill_memory
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_drill_memory.py
  LABELS integration
  TIMEOUT 60)
galarelay_script_test(it_drill_failover
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_drill_failover.py
  LABELS integration
  TIMEOUT 180)
# Encoders, ffmpeg and timing: one media test at a time (cmake/testing.cmake).
set_tests_properties(it_edge_nginx it_drill_restart it_drill_overload it_drill_publisher
  it_drill_memory it_drill_failover PROPERTIES RESOURCE_LOCK media)
# SIGHUP mid-show (docs/protocol.md: reload without dropping publishers or viewers).
galarelay_script_test(it_drill_reload
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_drill_reload.py
  LABELS integration
  TIMEOUT 120)
set_tests_properties(it_drill_reload PROPERTIES RESOURCE_LOCK media)
