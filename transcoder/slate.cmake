# transcoder/slate.cmake: the standby stream a channel carries while no feed
# is live (a still picture per rendition size and silent AAC, encoded once
# and replayed at real-time pace). The card is drawn with libavfilter
# (libavfilter-dev, scripts/bootstrap.sh). galarelay_transcoder links it.
find_package(Threads REQUIRED)
pkg_check_modules(AVFILTER REQUIRED IMPORTED_TARGET libavfilter)

add_library(galarelay_slate STATIC
  ${CMAKE_CURRENT_LIST_DIR}/slate.c
  ${CMAKE_CURRENT_LIST_DIR}/slate_picture.c)
target_include_directories(galarelay_slate PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(galarelay_slate PUBLIC
  galarelay_core galarelay_hls PkgConfig::AVFILTER PkgConfig::FFMPEG Threads::Threads)

# Decodes what the slate makes at each rung size, checks the silence, the
# timestamps, the segment clock and the real-time pace of the player.
galarelay_unit_test(test_slate
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_slate.c
  LIBS galarelay_transcoder)
# Encoders and a real-time pace: one media test at a time.
set_tests_properties(test_slate PROPERTIES RESOURCE_LOCK media)

# The daemon: slate before any publisher, replaced by a feed, back when it
# stops, replaced again (ffmpeg publishes, ffprobe reads).
galarelay_script_test(it_slate
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_slate.py
  TIMEOUT 240)
set_tests_properties(it_slate PROPERTIES RESOURCE_LOCK media)
