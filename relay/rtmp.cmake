# RTMP: the protocol pieces (AMF0, handshake, chunk stream, FLV, session
# state machine, the door's admission policy: socket-free, unit-tested and
# fuzzed alone) in
# galarelay_rtmp_proto; the server on the loop, channels and restream in
# galarelay_rtmp.
add_library(galarelay_rtmp_proto STATIC
  ${CMAKE_CURRENT_LIST_DIR}/amf.c
  ${CMAKE_CURRENT_LIST_DIR}/rtmp_handshake.c
  ${CMAKE_CURRENT_LIST_DIR}/rtmp_chunk.c
  ${CMAKE_CURRENT_LIST_DIR}/flv.c
  ${CMAKE_CURRENT_LIST_DIR}/rtmp_session.c
  ${CMAKE_CURRENT_LIST_DIR}/rtmp_door.c)
target_include_directories(galarelay_rtmp_proto PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(galarelay_rtmp_proto PUBLIC galarelay_core PkgConfig::FFMPEG PkgConfig::CRYPTO)

set(rtmp_tests ${CMAKE_SOURCE_DIR}/tests/unit)
galarelay_unit_test(test_amf SOURCES ${rtmp_tests}/test_amf.c LIBS galarelay_rtmp_proto)
galarelay_unit_test(test_rtmp_handshake SOURCES ${rtmp_tests}/test_rtmp_handshake.c LIBS galarelay_rtmp_proto)
galarelay_unit_test(test_rtmp_chunk SOURCES ${rtmp_tests}/test_rtmp_chunk.c LIBS galarelay_rtmp_proto)
galarelay_unit_test(test_flv SOURCES ${rtmp_tests}/test_flv.c LIBS galarelay_rtmp_proto)
galarelay_unit_test(test_rtmp_session SOURCES ${rtmp_tests}/test_rtmp_session.c ${rtmp_tests}/rtmp_test_client.c
  LIBS galarelay_rtmp_proto)
galarelay_unit_test(test_rtmp_door SOURCES ${rtmp_tests}/test_rtmp_door.c LIBS galarelay_rtmp_proto)

# Fuzz targets list the parser sources themselves so they get coverage
# instrumentation; seeds are small captures of real sessions.
set(rtmp_fuzz ${CMAKE_SOURCE_DIR}/tests/fuzz)
set(rtmp_src ${CMAKE_CURRENT_LIST_DIR})
galarelay_fuzz_target(fuzz_rtmp_chunk
  SOURCES ${rtmp_fuzz}/fuzz_rtmp_chunk.c ${rtmp_src}/rtmp_chunk.c ${CMAKE_SOURCE_DIR}/core/buf.c
  LIBS PkgConfig::FFMPEG CORPUS ${rtmp_fuzz}/corpus/fuzz_rtmp_chunk)
galarelay_fuzz_target(fuzz_amf
  SOURCES ${rtmp_fuzz}/fuzz_amf.c ${rtmp_src}/amf.c ${CMAKE_SOURCE_DIR}/core/buf.c
  CORPUS ${rtmp_fuzz}/corpus/fuzz_amf)
galarelay_fuzz_target(fuzz_flv
  SOURCES ${rtmp_fuzz}/fuzz_flv.c ${rtmp_src}/flv.c
  LIBS PkgConfig::FFMPEG CORPUS ${rtmp_fuzz}/corpus/fuzz_flv)
galarelay_fuzz_target(fuzz_rtmp_session
  SOURCES ${rtmp_fuzz}/fuzz_rtmp_session.c ${rtmp_src}/rtmp_session.c ${rtmp_src}/rtmp_chunk.c
          ${rtmp_src}/rtmp_handshake.c ${rtmp_src}/amf.c ${CMAKE_SOURCE_DIR}/core/buf.c
  LIBS PkgConfig::FFMPEG PkgConfig::CRYPTO CORPUS ${rtmp_fuzz}/corpus/fuzz_rtmp_session)

# The server on the loop, channels (the fan-out point) and restream.
add_library(galarelay_rtmp STATIC
  ${CMAKE_CURRENT_LIST_DIR}/rtmp_server.c
  ${CMAKE_CURRENT_LIST_DIR}/rtmp_push.c
  ${CMAKE_CURRENT_LIST_DIR}/restream.c
  ${CMAKE_CURRENT_LIST_DIR}/channel.c)
target_include_directories(galarelay_rtmp PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(galarelay_rtmp PUBLIC galarelay_rtmp_proto galarelay_core galarelay_config
  PkgConfig::UV PkgConfig::FFMPEG PkgConfig::CRYPTO PkgConfig::JANSSON)
galarelay_unit_test(test_channel SOURCES ${rtmp_tests}/test_channel.c LIBS galarelay_rtmp)
galarelay_unit_test(test_rtmp_push SOURCES ${rtmp_tests}/test_rtmp_push.c LIBS galarelay_rtmp)
galarelay_unit_test(test_restream SOURCES ${rtmp_tests}/test_restream.c LIBS galarelay_rtmp)
galarelay_unit_test(test_rtmp_server SOURCES ${rtmp_tests}/test_rtmp_server.c ${rtmp_tests}/rtmp_test_client.c
  LIBS galarelay_rtmp)

# Integration: the real daemon with ffmpeg, ffprobe, GStreamer and a small
# scripted client (tests/integration/test_rtmp_lib.py).
galarelay_script_test(it_rtmp_ingest
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_rtmp_ingest.py
  TIMEOUT 240)
galarelay_script_test(it_rtmp_slow_player
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_rtmp_slow_player.py
  TIMEOUT 120)
galarelay_script_test(it_rtmp_push
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_rtmp_push.py
  TIMEOUT 180)
galarelay_script_test(it_rtmp_play
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_rtmp_play.py
  TIMEOUT 120)
galarelay_script_test(it_rtmp_abuse
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_rtmp_abuse.py
  TIMEOUT 120)
galarelay_script_test(it_rtmp_door
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_rtmp_door.py
  TIMEOUT 180)
# They measure pace, timeouts and memory: not beside other heavy tests
# (RESOURCE_LOCK media, cmake/testing.cmake), nor beside anything at all.
set_tests_properties(it_rtmp_ingest it_rtmp_slow_player it_rtmp_push it_rtmp_play it_rtmp_abuse it_rtmp_door PROPERTIES
  RUN_SERIAL TRUE RESOURCE_LOCK media)
