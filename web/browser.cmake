# web/browser.cmake: the browser tests of the pages (tests/browser/): headless
# Chromium from Debian driven by playwright-core, first against a stand-in
# server, then against the real daemon with an ffmpeg publisher. Screenshots
# land in ${CMAKE_BINARY_DIR}/browser-out.
galarelay_script_test(browser_pages
  COMMAND sh ${CMAKE_SOURCE_DIR}/tests/browser/run.sh
  LABELS browser
  TIMEOUT 300)
set_tests_properties(browser_pages PROPERTIES RESOURCE_LOCK media)
