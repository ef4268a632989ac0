# transcoder/transcoder.cmake: the ladder, the per-channel pipeline threads
# (decode once, scale, x264 per rung, audio shared) and the loop-side
# transcoder that attaches a pipeline to each channel. Feeds the packager of
# hls/ (galarelay_hls).
find_package(Threads REQUIRED)

add_library(galarelay_transcoder STATIC
  ${CMAKE_CURRENT_LIST_DIR}/ladder.c
  ${CMAKE_CURRENT_LIST_DIR}/pipeline.c
  ${CMAKE_CURRENT_LIST_DIR}/pipeline_decode.c
  ${CMAKE_CURRENT_LIST_DIR}/pipeline_rung.c
  ${CMAKE_CURRENT_LIST_DIR}/pipeline_timeline.c
  ${CMAKE_CURRENT_LIST_DIR}/transcoder.c)
target_include_directories(galarelay_transcoder PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(galarelay_transcoder PUBLIC
  galarelay_core galarelay_config galarelay_hls galarelay_slate
  PkgConfig::FFMPEG PkgConfig::UV PkgConfig::JANSSON Threads::Threads m)

galarelay_unit_test(test_ladder
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_ladder.c ${CMAKE_CURRENT_LIST_DIR}/ladder.c
  LIBS galarelay_config m)

# Feeds clips made by the ffmpeg CLI at test time through the pipeline into
# a recording writer (ultrafast, small sizes: seconds on 2 cores).
galarelay_unit_test(test_pipeline
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_pipeline.c
  LIBS galarelay_transcoder)
# ffmpeg, encoders and a paced feed: one media test at a time.
set_tests_properties(test_pipeline PROPERTIES RESOURCE_LOCK media)

# bench/ladder_bench.sh runs it against the ffmpeg CLI; never run by ctest.
add_executable(ladder_bench ${CMAKE_SOURCE_DIR}/bench/ladder_bench.c)
target_link_libraries(ladder_bench PRIVATE galarelay_transcoder)
