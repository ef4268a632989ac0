# config/ tests: the parser's unit tests (which also check that the shipped
# galarelay.conf and docs/config.md document every key) and its fuzz target.
galarelay_unit_test(test_config
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_config.c
  LIBS galarelay_config)
target_compile_definitions(test_config PRIVATE GALARELAY_SOURCE_DIR="${CMAKE_SOURCE_DIR}")

galarelay_fuzz_target(fuzz_config
  SOURCES ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_config.c ${CMAKE_SOURCE_DIR}/config/config.c
          ${CMAKE_SOURCE_DIR}/core/log.c
  LIBS PkgConfig::INIH m
  CORPUS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/fuzz_config)
