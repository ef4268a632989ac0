# relay/core.cmake: the tests of the core library (log.c, buf.c) and of
# what main.c does with them.
galarelay_unit_test(test_log SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_log.c LIBS galarelay_core)

# The daemon, black-box (tests/integration/test_NAME.py):
#   log_forgery: a client's name with a newline in it cannot forge a log
#     line of the daemon;
#   reload_demo_secrets: a reload cannot bring the demo secrets to a daemon
#     listening beyond loopback.
foreach(t log_forgery reload_demo_secrets)
  galarelay_script_test(it_${t}
    COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_${t}.py
    TIMEOUT 60)
endforeach()
