# Fuzz targets of parsers that span modules or are extracted from a
# handler so that they can be fuzzed alone (cmake/testing.cmake).
set(fuzz_dir ${CMAKE_SOURCE_DIR}/tests/fuzz)

# X-Forwarded-For (relay/http_xff.c) and the /hls/ path and query
# (transcoder/hls_url.c): what every HTTP request brings.
galarelay_fuzz_target(fuzz_http_parse
  SOURCES ${fuzz_dir}/fuzz_http_parse.c ${CMAKE_SOURCE_DIR}/relay/http_xff.c
          ${CMAKE_SOURCE_DIR}/transcoder/hls_url.c
  CORPUS ${fuzz_dir}/corpus/fuzz_http_parse)
