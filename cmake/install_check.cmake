# cmake/install_check.cmake: the ctest `install_layout` (label install), run
# with `cmake -P`. It checks that the install rules put each part where the
# running system looks for it, the way a Debian package lays it out:
#
#   /usr/bin/galarelay                      daemon/CMakeLists.txt
#   /etc/galarelay/galarelay.conf           CMakeLists.txt (a conffile)
#   /usr/share/galarelay/web/               web/vendor.cmake (the daemon's
#                                           default web root, config/CMakeLists.txt)
#   /usr/lib/systemd/system/galarelay.service   CMakeLists.txt
#   /usr/share/doc/galarelay/README.md      CMakeLists.txt (the unit's Documentation=),
#   /usr/share/doc/galarelay/...            with the docs/, config/ and systemd/ files
#                                           its relative links point at, Debian's
#                                           copyright and changelog.gz
#   /usr/share/man/man1/galarelay.1.gz      CMakeLists.txt (cmake/debian/galarelay.1)
#
# 1. `cmake --install BUILD --prefix /usr` into a scratch DESTDIR: every
#    file above is there, nothing lands anywhere else, the unit's ExecStart
#    names the installed binary and config, the binary reports VERSION and
#    accepts the installed config (--check); the README's relative links
#    resolve in the installed docs; cmake/debian/changelog's newest entry
#    is VERSION.
# 2. `cpack -G DEB` (dpkg-shlibdeps needs `file`): the .deb has VERSION,
#    library dependencies plus the libwebsockets plugin it loads at run
#    time, the Recommends, the same files, the config as a conffile and the
#    maintainer scripts (executable).
# Installing the .deb on a fresh Debian 12 root is deb_install's
# (tests/deb_install.py).
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
  usr/share/doc/galarelay/README.md
  usr/share/doc/galarelay/docs/config.md
  usr/share/doc/galarelay/docs/runbook.md
  usr/share/doc/galarelay/docs/nginx-edge.conf
  usr/share/doc/galarelay/config/galarelay.conf
  usr/share/doc/galarelay/systemd/galarelay.service
  usr/share/doc/galarelay/copyright
  usr/share/doc/galarelay/changelog.gz
  usr/share/man/man1/galarelay.1.gz)
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
  if(NOT f MATCHES "^(usr/bin/galarelay|etc/galarelay/|usr/share/galarelay/web/|usr/lib/systemd/system/galarelay\\.service|usr/share/doc/galarelay/|usr/share/man/man1/galarelay\\.1\\.gz$)")
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

# The README's relative links (screenshots, docs, config, unit) resolve.
file(READ "${root}/usr/share/doc/galarelay/README.md" readme)
# (A "]" in a list element would stop CMake splitting the list: mark the
# links' "](" first.)
string(REPLACE "](" "@link(" readme "${readme}")
string(REGEX MATCHALL "@link\\([^)#:]+\\)" links "${readme}")
if(NOT links)
  message(FATAL_ERROR "install_check: found no relative links in the installed README")
endif()
foreach(link ${links})
  string(REGEX REPLACE "^@link\\((.*)\\)$" "\\1" target "${link}")
  if(NOT EXISTS "${root}/usr/share/doc/galarelay/${target}")
    message(FATAL_ERROR "install_check: the installed README links to ${target}, which is not installed")
  endif()
endforeach()

# Debian's changelog names the version being packaged.
file(STRINGS "${SOURCE_DIR}/cmake/debian/changelog" newest LIMIT_COUNT 1)
if(NOT newest MATCHES "^galarelay \\(${VERSION}\\) ")
  message(FATAL_ERROR "install_check: cmake/debian/changelog's newest entry is '${newest}': "
    "add one for ${VERSION}")
endif()

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
# lws loads its libuv loop as a plugin, which dpkg-shlibdeps cannot see.
if(NOT out MATCHES "libwebsockets-evlib-uv")
  message(FATAL_ERROR "install_check: the .deb's Depends lacks libwebsockets-evlib-uv: '${out}'")
endif()
run("dpkg-deb -f" ${DPKG_DEB} -f "${debs}" Recommends)
if(NOT out MATCHES "fonts-noto-cjk")
  message(FATAL_ERROR "install_check: the .deb does not recommend fonts-noto-cjk: '${out}'")
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
foreach(script postinst prerm postrm)
  if(NOT EXISTS "${work}/control/${script}")
    message(FATAL_ERROR "install_check: the .deb has no ${script}")
  endif()
  file(STRINGS "${work}/control/${script}" shebang LIMIT_COUNT 1)
  execute_process(COMMAND test -x "${work}/control/${script}" RESULT_VARIABLE not_x)
  if(NOT shebang STREQUAL "#!/bin/sh" OR not_x)
    message(FATAL_ERROR "install_check: the .deb's ${script} is not an executable /bin/sh script")
  endif()
endforeach()

file(REMOVE_RECURSE "${work}")
message(STATUS "install_check: galarelay ${VERSION}: install layout and .deb as expected")
