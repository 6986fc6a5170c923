# tests/synth.cmake — the tests of `debcm synth` (io/synth.c, apps/cmd_synth.c): the tiny dataset loads in NumPy
# itself with the types and invariants the published code relies on and shows the planted structure
# (synth_numpy_check, skipped without a NumPy); the same seed gives byte-identical files for any thread count and
# another seed differs (synth_determinism); bad usage and unwritable outputs fail with one line (synth_usage); a
# failed run leaves its output as it found it, too-large configs and too-long paths are refused up front
# (test_synth, synth_failures).
set(_synth_work ${CMAKE_CURRENT_BINARY_DIR}/synth-work)

if(DEBCM_NUMPY_PYTHON)
  add_test(NAME synth_numpy_check
           COMMAND ${DEBCM_NUMPY_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/synth_numpy_check.py
                   $<TARGET_FILE:debcm> ${_synth_work}/numpy)
else()
  add_test(NAME synth_numpy_check COMMAND sh -c "echo 'skipped: no Python with NumPy found'; exit 77")
endif()
set_tests_properties(synth_numpy_check PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)

add_test(NAME synth_determinism
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/synth_determinism.sh $<TARGET_FILE:debcm> ${_synth_work}/determinism)
set_tests_properties(synth_determinism PROPERTIES TIMEOUT 120)

add_test(NAME synth_usage
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/synth_usage.sh $<TARGET_FILE:debcm> ${_synth_work}/usage)
set_tests_properties(synth_usage PROPERTIES TIMEOUT 60)

# test_synth: through the library (a failing last step, memory, long paths); synth_failures: through the command
# line, with a full disk (a file size limit; a small tmpfs when one can be mounted) and a read-only target
debcm_c_test(test_synth test_synth.c)
set_tests_properties(test_synth PROPERTIES TIMEOUT 120)
add_test(NAME synth_failures
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/synth_failures.sh $<TARGET_FILE:debcm> ${_synth_work}/failures)
set_tests_properties(synth_failures PROPERTIES TIMEOUT 180)
