# daemon/web.cmake: the tests of the HTTP side's pure parts. webroot.c is
# tested against a fake core/http (the test records what is answered).
galarelay_unit_test(test_webroot
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_webroot.c ${CMAKE_CURRENT_LIST_DIR}/webroot.c
  LIBS galarelay_config galarelay_core)

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

# The Origin rule end to end: the real daemon and node's `ws` client.
find_program(GALARELAY_NODE node)
if(GALARELAY_NODE)
  galarelay_script_test(chat_origin
    COMMAND ${CMAKE_SOURCE_DIR}/tests/integration/chat_run.sh ${CMAKE_SOURCE_DIR}/tests/integration/chat_origin.mjs
    LABELS integration chat
    TIMEOUT 120)
endif()
