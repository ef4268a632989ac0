# relay/web.cmake: the tests of the HTTP side's pure parts. webroot.c is
# tested against a fake relay/http (the test records what is answered);
# http.c's Origin rule is tested on its own function.
galarelay_unit_test(test_webroot
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_webroot.c ${CMAKE_CURRENT_LIST_DIR}/webroot.c
  LIBS galarelay_config galarelay_core)
