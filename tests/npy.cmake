# tests/npy.cmake — the .npy/.npz reader and writer (io/npy.c, io/npz.c): fixture, malformed-input and round-trip
# tests, and the check that NumPy itself loads what our writer wrote (skipped, exit 77, without NumPy).
# Fixtures: tests/data/gen_npy.py (run it with /usr/bin/python3 to regenerate tests/data/npy, npz, manifest.txt).
debcm_c_test(test_npy test_npy.c)
debcm_c_test(test_npz test_npz.c)

add_executable(npy_write_sample npy_write_sample.c)
target_link_libraries(npy_write_sample PRIVATE debcm_core)
if(DEBCM_NUMPY_PYTHON)
  add_test(NAME npy_numpy_roundtrip
           COMMAND ${DEBCM_NUMPY_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/npy_numpy_check.py
                   $<TARGET_FILE:npy_write_sample> ${CMAKE_CURRENT_BINARY_DIR}/npy_numpy_out)
else()
  add_test(NAME npy_numpy_roundtrip COMMAND sh -c "echo 'no Python with NumPy: skipped'; exit 77")
endif()
set_tests_properties(npy_numpy_roundtrip PROPERTIES SKIP_RETURN_CODE 77)
