# Helpers every folder uses to declare its tests, so that a module's tests
# are registered beside the module.
#
#   galarelay_unit_test(NAME SOURCES a.c ... LIBS lib ...)
#       a cmocka executable, run by ctest with label "unit".
#   galarelay_fuzz_target(NAME SOURCES fuzz.c parser.c ... LIBS ... [CORPUS dir])
#       a libFuzzer executable built with clang (ASan + UBSan, any UBSan
#       report fatal); ctest runs its committed corpus, then fuzzes for
#       GALARELAY_FUZZ_SECONDS (label "fuzz") from a random seed that it
#       prints ("Seed: N"); GALARELAY_FUZZ_SEED=N in the environment
#       replays that seed (docs/HACKING.md). The parser's own sources are
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

# Seconds each fuzz target fuzzes in the suite: CI runs it on two cores,
# ten targets at most.
set(GALARELAY_FUZZ_SECONDS 20 CACHE STRING "Seconds of fuzzing per fuzz target in ctest")

function(galarelay_fuzz_target name)
  cmake_parse_arguments(T "" "CORPUS" "SOURCES;LIBS" ${ARGN})
  if(NOT GALARELAY_FUZZ)
    return()
  endif()
  add_executable(${name} ${T_SOURCES})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR})
  # UBSan recovers by default: it would print its report and fuzzing would
  # go on to a passing test. Every UBSan finding aborts, so libFuzzer
  # reports a crash and saves the input.
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
  target_link_libraries(${name} PRIVATE ${T_LIBS})
  # libFuzzer writes new inputs into the first corpus folder: give it a
  # scratch folder so the run never dirties the source tree. Emptied at
  # each run: the same seed then replays the same run.
  set(work ${CMAKE_CURRENT_BINARY_DIR}/${name}-corpus)
  set(corpus_args)
  if(T_CORPUS)
    set(corpus_args ${work} ${T_CORPUS})
  endif()
  # -seed=0 is libFuzzer's "pick one at random"; it prints the one it took.
  add_test(NAME ${name}
           COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
                   UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
                   sh -c "rm -rf '${work}' && mkdir -p '${work}' && exec \"$0\" -seed=\"\${GALARELAY_FUZZ_SEED:-0}\" \"$@\""
                   $<TARGET_FILE:${name}> -max_total_time=${GALARELAY_FUZZ_SECONDS} -max_len=65536
                   -rss_limit_mb=2048 -print_final_stats=1 ${corpus_args})
  # The corpus runs first: room for it, and for a slow machine, past the
  # fuzzing time.
  math(EXPR timeout "${GALARELAY_FUZZ_SECONDS} + 240")
  set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT ${timeout})
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
