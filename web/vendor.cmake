# web/vendor.cmake: lays out the daemon's web root in the build tree,
# ${CMAKE_BINARY_DIR}/web-root, which is where the daemon looks when it runs
# from the build tree.
#
# - The player, hls.js, comes from npm at the exact version pinned in
#   web/package.json and web/package-lock.json (both committed): `npm ci` runs
#   in a build-dir copy of those two files, and dist/hls.min.js is copied to
#   web-root/vendor/ with its licence (Apache-2.0). Nothing is fetched by the
#   pages at run time.
# - Every other file under web/ (pages, css, js) is copied one by one, each
#   re-copied when it changes; a file added or removed is picked up by the
#   CONFIGURE_DEPENDS glob on the next build.

option(GALARELAY_VENDOR_HLSJS "Fetch the pinned hls.js with npm into the web root" ON)

set(GALARELAY_WEB_ROOT "${CMAKE_BINARY_DIR}/web-root")
set(web_src "${CMAKE_CURRENT_SOURCE_DIR}")
set(web_outputs)

# Static files: pages, styles, scripts, images.
file(GLOB_RECURSE web_static CONFIGURE_DEPENDS RELATIVE "${web_src}"
  "${web_src}/*.html" "${web_src}/*.css" "${web_src}/*.js" "${web_src}/*.svg"
  "${web_src}/*.png" "${web_src}/*.ico")
list(FILTER web_static EXCLUDE REGEX "^(node_modules|vendor)/")
foreach(f ${web_static})
  add_custom_command(
    OUTPUT "${GALARELAY_WEB_ROOT}/${f}"
    COMMAND ${CMAKE_COMMAND} -E copy_if_different "${web_src}/${f}" "${GALARELAY_WEB_ROOT}/${f}"
    DEPENDS "${web_src}/${f}"
    COMMENT "web-root: ${f}"
    VERBATIM)
  list(APPEND web_outputs "${GALARELAY_WEB_ROOT}/${f}")
endforeach()

# The player.
if(GALARELAY_VENDOR_HLSJS)
  find_program(GALARELAY_NPM npm)
  if(NOT GALARELAY_NPM)
    message(FATAL_ERROR "galarelay: npm is needed to vendor hls.js into the web root "
      "(apt-get install npm), or configure with -DGALARELAY_VENDOR_HLSJS=OFF")
  endif()
  set(npm_dir "${CMAKE_BINARY_DIR}/web-npm")
  set(hlsjs "${GALARELAY_WEB_ROOT}/vendor/hls.min.js")
  add_custom_command(
    OUTPUT "${hlsjs}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${npm_dir}" "${GALARELAY_WEB_ROOT}/vendor"
    COMMAND ${CMAKE_COMMAND} -E copy_if_different
            "${web_src}/package.json" "${web_src}/package-lock.json" "${npm_dir}/"
    COMMAND ${CMAKE_COMMAND} -E chdir "${npm_dir}"
            ${GALARELAY_NPM} ci --no-audit --no-fund --loglevel=error
    COMMAND ${CMAKE_COMMAND} -E copy
            "${npm_dir}/node_modules/hls.js/LICENSE" "${GALARELAY_WEB_ROOT}/vendor/hls.js.LICENSE.txt"
    COMMAND ${CMAKE_COMMAND} -E copy
            "${npm_dir}/node_modules/hls.js/dist/hls.min.js" "${hlsjs}"
    DEPENDS "${web_src}/package.json" "${web_src}/package-lock.json"
    COMMENT "web-root: hls.js from npm (pinned in web/package-lock.json)"
    VERBATIM)
  list(APPEND web_outputs "${hlsjs}")
endif()

add_custom_target(galarelay_web ALL DEPENDS ${web_outputs})

install(DIRECTORY "${GALARELAY_WEB_ROOT}/" DESTINATION ${CMAKE_INSTALL_DATADIR}/galarelay/web)
