# relay/core.cmake: the tests of the core library (log.c, buf.c).
galarelay_unit_test(test_log SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_log.c LIBS galarelay_core)

# A client's name with a newline in it cannot forge a log line of the
# daemon (tests/integration/test_log_forgery.py).
galarelay_script_test(it_log_forgery
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_log_forgery.py
  TIMEOUT 60)

# A reload cannot bring the demo secrets to a daemon listening beyond
# loopback (tests/integration/test_reload_demo_secrets.py).
galarelay_script_test(it_reload_demo_secrets
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_reload_demo_secrets.py
  TIMEOUT 60)
