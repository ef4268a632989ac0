# Helpers every folder uses to declare its tests, so that a module's tests
# are registered beside the module.
#
#   galarelay_unit_test(NAME SOURCES a.c ... LIBS lib ...)
#       a cmocka executable, run by ctest with label "unit".
#   galarelay_fuzz_target(NAME SOURCES fuzz.c parser.c ... LIBS ... [CORPUS dir] [RUNS n])
#       a libFuzzer executable built with clang; ctest runs it for a fixed
#       number of iterations (label "fuzz"). The parser's own sources are
#       listed so they get coverage instrumentation.
#   galarelay_script_test(NAME COMMAND ... [LABELS l] [TIMEOUT s])
#       an integration/browser test driven by a script.
#
# A test that runs the real daemon with encoders, ffmpeg, nginx or chromium,
# or that asserts on pace and timing, takes the shared resource "media":
#   set_tests_properties(NAME PROPERTIES RESOURCE_LOCK media)
# so that at `ctest -j2` no two of them overlap, while unit, fuzz and chat
# tests still run beside them. (`ctest -N --show-only=json-v1` lists each
# test's properties, RESOURCE_LOCK included.)

function(galarelay_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120)
endfunction()

function(galarelay_fuzz_target name)
  cmake_parse_arguments(T "" "CORPUS;RUNS" "SOURCES;LIBS" ${ARGN})
  if(NOT GALARELAY_FUZZ)
    return()
  endif()
  if(NOT T_RUNS)
    set(T_RUNS 20000)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE ${T_LIBS})
  set(corpus_args)
  if(T_CORPUS)
    # libFuzzer writes new inputs into the first corpus folder: give it a
    # scratch copy so the run never dirties the source tree.
    set(work ${CMAKE_CURRENT_BINARY_DIR}/${name}-corpus)
    set(corpus_args ${work} ${T_CORPUS})
  endif()
  add_test(NAME ${name}
           COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
                   sh -c "mkdir -p '${CMAKE_CURRENT_BINARY_DIR}/${name}-corpus' && exec \"$0\" \"$@\""
                   $<TARGET_FILE:${name}> -runs=${T_RUNS} -seed=1 -max_len=65536 -rss_limit_mb=2048 ${corpus_args})
  set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT 300)
endfunction()

function(galarelay_script_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "COMMAND;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  if(NOT T_LABELS)
    set(T_LABELS integration)
  endif()
  add_test(NAME ${name} COMMAND ${T_COMMAND})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "GALARELAY_BIN=$<TARGET_FILE:galarelay>;GALARELAY_SOURCE_DIR=${CMAKE_SOURCE_DIR};GALARELAY_BUILD_DIR=${CMAKE_BINARY_DIR}")
endfunction()
