# cmake/install_check.cmake: the ctest `install_layout` (label install), run
# with `cmake -P`. It checks that the install rules put each part where the
# running system looks for it, the way a Debian package lays it out:
#
#   /usr/bin/galarelay                      relay/daemon.cmake
#   /etc/galarelay/galarelay.conf           CMakeLists.txt (a conffile)
#   /usr/share/galarelay/web/               web/vendor.cmake (the daemon's
#                                           default web root, config/CMakeLists.txt)
#   /usr/lib/systemd/system/galarelay.service   CMakeLists.txt
#   /usr/share/doc/galarelay/README.md      CMakeLists.txt (the unit's Documentation=)
#
# 1. `cmake --install BUILD --prefix /usr` into a scratch DESTDIR: every
#    file above is there, nothing lands anywhere else, the unit's ExecStart
#    names the installed binary and config, the binary reports VERSION and
#    accepts the installed config (--check).
# 2. `cpack -G DEB` (dpkg-shlibdeps needs `file`): the .deb has VERSION,
#    library dependencies, the same files, and the config as a conffile.
#
# Variables: BUILD_DIR, SOURCE_DIR, VERSION, CPACK (the cpack program),
# WITH_HLSJS (GALARELAY_VENDOR_HLSJS).
cmake_minimum_required(VERSION 3.18)

foreach(v BUILD_DIR SOURCE_DIR VERSION CPACK)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "install_check: -D${v}=... is required")
  endif()
endforeach()

set(work "${BUILD_DIR}/install-check")
set(root "${work}/root")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")

function(run what)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY "${work}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_check: ${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

# --- 1. cmake --install into a DESTDIR --------------------------------------
run("cmake --install" ${CMAKE_COMMAND} -E env "DESTDIR=${root}"
    ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix /usr)

set(expected
  usr/bin/galarelay
  etc/galarelay/galarelay.conf
  usr/share/galarelay/web/index.html
  usr/share/galarelay/web/watch.html
  usr/share/galarelay/web/moderate.html
  usr/lib/systemd/system/galarelay.service
  usr/share/doc/galarelay/README.md)
if(WITH_HLSJS)
  list(APPEND expected usr/share/galarelay/web/vendor/hls.min.js
                       usr/share/galarelay/web/vendor/hls.js.LICENSE.txt)
endif()
foreach(f ${expected})
  if(NOT EXISTS "${root}/${f}" OR IS_DIRECTORY "${root}/${f}")
    message(FATAL_ERROR "install_check: /${f} was not installed")
  endif()
endforeach()

# Every installed file lies under one of the package's own places.
file(GLOB_RECURSE installed LIST_DIRECTORIES false RELATIVE "${root}" "${root}/*")
foreach(f ${installed})
  if(NOT f MATCHES "^(usr/bin/galarelay|etc/galarelay/|usr/share/galarelay/web/|usr/lib/systemd/system/galarelay\\.service|usr/share/doc/galarelay/)")
    message(FATAL_ERROR "install_check: unexpected file installed: /${f}")
  endif()
endforeach()

file(READ "${root}/etc/galarelay/galarelay.conf" conf_installed)
file(READ "${SOURCE_DIR}/config/galarelay.conf" conf_source)
if(NOT conf_installed STREQUAL conf_source)
  message(FATAL_ERROR "install_check: /etc/galarelay/galarelay.conf differs from config/galarelay.conf")
endif()

# The unit starts the installed binary with the installed config.
file(STRINGS "${root}/usr/lib/systemd/system/galarelay.service" exec REGEX "^ExecStart=")
if(NOT exec MATCHES "^ExecStart=([^ ]+) -c ([^ ]+)$")
  message(FATAL_ERROR "install_check: unexpected ExecStart line: ${exec}")
endif()
set(unit_bin "${CMAKE_MATCH_1}")
set(unit_conf "${CMAKE_MATCH_2}")
foreach(f "${unit_bin}" "${unit_conf}")
  if(NOT EXISTS "${root}${f}")
    message(FATAL_ERROR "install_check: the unit's ExecStart names ${f}, which the install did not create")
  endif()
endforeach()

run("galarelay --version" "${root}/usr/bin/galarelay" --version)
if(NOT out STREQUAL "galarelay ${VERSION}\n")
  message(FATAL_ERROR "install_check: --version says '${out}', the project is ${VERSION}")
endif()
run("galarelay --check" "${root}${unit_bin}" --check -c "${root}${unit_conf}")

# --- 2. the .deb -------------------------------------------------------------
find_program(DPKG_DEB dpkg-deb)
if(NOT DPKG_DEB)
  message(FATAL_ERROR "install_check: dpkg-deb is missing, so the .deb cannot be checked (scripts/bootstrap.sh installs it)")
endif()
run("cpack -G DEB" "${CPACK}" --config "${BUILD_DIR}/CPackConfig.cmake" -G DEB -B "${work}/deb")
file(GLOB debs "${work}/deb/*.deb")
list(LENGTH debs n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "install_check: cpack made ${n} .deb files: ${debs}")
endif()

run("dpkg-deb -f" ${DPKG_DEB} -f "${debs}" Version)
string(STRIP "${out}" deb_version)
if(NOT deb_version STREQUAL VERSION)
  message(FATAL_ERROR "install_check: the .deb's Version is '${deb_version}', the project is ${VERSION}")
endif()
run("dpkg-deb -f" ${DPKG_DEB} -f "${debs}" Depends)
if(NOT out MATCHES "libc6" OR NOT out MATCHES "libuv1")
  message(FATAL_ERROR "install_check: the .deb's Depends lacks the shared libraries: '${out}'")
endif()

run("dpkg-deb -c" ${DPKG_DEB} -c "${debs}")
foreach(f ${expected})
  string(REPLACE "." "\\." re "${f}")
  if(NOT out MATCHES " \\./${re}\n")
    message(FATAL_ERROR "install_check: the .deb lacks /${f}:\n${out}")
  endif()
endforeach()

file(MAKE_DIRECTORY "${work}/control")
run("dpkg-deb -e" ${DPKG_DEB} -e "${debs}" "${work}/control")
file(STRINGS "${work}/control/conffiles" conffiles)
if(NOT "/etc/galarelay/galarelay.conf" IN_LIST conffiles)
  message(FATAL_ERROR "install_check: /etc/galarelay/galarelay.conf is not a conffile: ${conffiles}")
endif()

file(REMOVE_RECURSE "${work}")
message(STATUS "install_check: galarelay ${VERSION}: install layout and .deb as expected")
