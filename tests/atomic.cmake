# tests/atomic.cmake — io/atomic_file.c, the one writer of every file debcm produces: commit, abort, failures
# (disk full, missing directory, long paths) and signals in a C test (test_atomic_file), and `debcm synth` killed
# by SIGTERM, SIGINT and SIGHUP in the middle of a write (atomic_signals: status 128+signo, no *.tmp.* left).
debcm_c_test(test_atomic_file test_atomic_file.c)
set_tests_properties(test_atomic_file PROPERTIES TIMEOUT 120)

add_test(NAME atomic_signals
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/atomic_signals.sh $<TARGET_FILE:debcm>
                 ${CMAKE_CURRENT_BINARY_DIR}/atomic-work/signals)
set_tests_properties(atomic_signals PROPERTIES TIMEOUT 180)
