# relay/web.cmake: the tests of the HTTP side's pure parts. webroot.c is
# tested against a fake relay/http (the test records what is answered);
# http.c's Origin rule is tested on its own function.
galarelay_unit_test(test_webroot
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_webroot.c ${CMAKE_CURRENT_LIST_DIR}/webroot.c
  LIBS galarelay_config galarelay_core)

galarelay_unit_test(test_http_origin
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_http_origin.c ${CMAKE_CURRENT_LIST_DIR}/http.c
  LIBS galarelay_config galarelay_core PkgConfig::LWS)

# The Origin rule end to end: the real daemon and node's `ws` client.
find_program(GALARELAY_NODE node)
if(GALARELAY_NODE)
  galarelay_script_test(chat_origin
    COMMAND ${CMAKE_SOURCE_DIR}/tests/integration/chat_run.sh ${CMAKE_SOURCE_DIR}/tests/integration/chat_origin.mjs
    LABELS integration chat
    TIMEOUT 120)
endif()
