# tests/pickle.cmake — the restricted unpickler and the pickle writer (io/pickle.c, io/pickle_write.c):
# test_pickle checks NumPy's own pickles (1.24 and 2.x, protocols 2–5; fixtures from tests/data/gen_pickle.py),
# the hostile streams, truncations and mutations, the writer's round trip and its byte identity with NumPy, and
# debcm-mini rewritten byte for byte when ../shared is there. test_pickle_numpy has NumPy itself np.load what
# the writer + npy_write_object produce and compare values and element types (skipped without a NumPy).
debcm_c_test(test_pickle test_pickle.c)
if(EXISTS ${DEBCM_SHARED_DIR}/data/debcm-mini)
  target_compile_definitions(test_pickle PRIVATE DEBCM_SHARED_DIR="${DEBCM_SHARED_DIR}")
endif()

debcm_c_test(test_pickle_numpy test_pickle_numpy.c)
target_compile_definitions(test_pickle_numpy PRIVATE
  DEBCM_NUMPY_PYTHON="${DEBCM_NUMPY_PYTHON}"
  DEBCM_PICKLE_CHECK_SCRIPT="${CMAKE_CURRENT_SOURCE_DIR}/pickle_numpy_check.py"
  DEBCM_PICKLE_WORK_DIR="${CMAKE_CURRENT_BINARY_DIR}/pickle-numpy")
set_tests_properties(test_pickle_numpy PROPERTIES TIMEOUT 120)
