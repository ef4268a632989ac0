# The galarelay executable: main, HTTP, API and static files, linked with
# every module's library. Included from the top level after all folders, so
# every library target exists here.
add_executable(galarelay
  ${CMAKE_SOURCE_DIR}/relay/main.c
  ${CMAKE_SOURCE_DIR}/relay/http.c
  ${CMAKE_SOURCE_DIR}/relay/api.c
  ${CMAKE_SOURCE_DIR}/relay/webroot.c
  ${CMAKE_SOURCE_DIR}/relay/subsystems.c)
target_compile_definitions(galarelay PRIVATE GALARELAY_VERSION="${PROJECT_VERSION}")
target_include_directories(galarelay PRIVATE ${CMAKE_SOURCE_DIR})
set(galarelay_parts)
foreach(lib galarelay_rtmp galarelay_transcoder galarelay_hls galarelay_chat galarelay_chat_store)
  if(TARGET ${lib})
    list(APPEND galarelay_parts ${lib})
  endif()
endforeach()
target_link_libraries(galarelay PRIVATE ${galarelay_parts} galarelay_config galarelay_core
  PkgConfig::LWS PkgConfig::UV PkgConfig::JANSSON PkgConfig::SYSTEMD)
install(TARGETS galarelay RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
