# The daemon's foundation, tested black-box (tests/integration/test_daemon.py).
galarelay_script_test(it_daemon
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/integration/test_daemon.py
  TIMEOUT 120)
