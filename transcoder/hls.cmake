# transcoder/hls.cmake: the LL-HLS packager (worker threads), the in-memory
# store and playlists (loop thread), and the HTTP route (hls_http.c). The
# route calls http_respond() from relay/http.c, which only the daemon links;
# a static library pulls hls_http.o in only when hls_server_start() is used,
# so tests of the store and packager link without relay/http.c, and
# test_hls_http brings its own fake of it.
find_package(Threads REQUIRED)
add_library(galarelay_hls STATIC
  ${CMAKE_CURRENT_LIST_DIR}/hls_blob.c
  ${CMAKE_CURRENT_LIST_DIR}/hls_packager.c
  ${CMAKE_CURRENT_LIST_DIR}/hls_window.c
  ${CMAKE_CURRENT_LIST_DIR}/hls_store.c
  ${CMAKE_CURRENT_LIST_DIR}/hls_playlist.c
  ${CMAKE_CURRENT_LIST_DIR}/hls_http.c
  ${CMAKE_CURRENT_LIST_DIR}/hls_url.c
  ${CMAKE_CURRENT_LIST_DIR}/hls_viewers.c)
target_include_directories(galarelay_hls PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(galarelay_hls PUBLIC galarelay_core galarelay_config PkgConfig::FFMPEG
  PkgConfig::UV PkgConfig::LWS Threads::Threads m)

galarelay_unit_test(test_hls_packager
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_hls_packager.c
  LIBS galarelay_hls)
# Runs the ffmpeg CLI (libx265): one media test at a time.
set_tests_properties(test_hls_packager PROPERTIES RESOURCE_LOCK media)
galarelay_unit_test(test_hls_playlist
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_hls_playlist.c
  LIBS galarelay_hls)
galarelay_unit_test(test_hls_http
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_hls_http.c ${CMAKE_CURRENT_LIST_DIR}/hls_http.c
  LIBS galarelay_hls)
target_compile_definitions(test_hls_http PRIVATE HLS_PARKED_MAX=8) # the bound, reachable in a test
galarelay_unit_test(test_hls_viewers
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_hls_viewers.c
  LIBS galarelay_hls)

# LL-HLS from the real daemon (ffmpeg publishes; tests/integration/hls_check.py checks).
galarelay_script_test(it_hls
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_hls_live.py
  TIMEOUT 240)
set_tests_properties(it_hls PROPERTIES RESOURCE_LOCK media)

# bench/hls_serve: packagers + store + relay/http.c on lws, fed by a test
# pattern encoded in real time; an end-to-end target for hls_check.py.
add_executable(hls_serve ${CMAKE_SOURCE_DIR}/bench/hls_serve.c ${CMAKE_SOURCE_DIR}/relay/http.c)
target_include_directories(hls_serve PRIVATE ${CMAKE_SOURCE_DIR})
target_link_libraries(hls_serve PRIVATE galarelay_hls galarelay_config galarelay_core PkgConfig::LWS
  PkgConfig::UV PkgConfig::FFMPEG Threads::Threads)
