# The shape of the house (docs/HACKING.md, "Layers"): no include points up a
# layer or into another folder's internal header, and no two files include
# each other round a circle. Reads the sources only; seconds.
add_test(NAME check_layers COMMAND ${CMAKE_SOURCE_DIR}/scripts/check-layers.sh)
set_tests_properties(check_layers PROPERTIES LABELS unit TIMEOUT 60)
