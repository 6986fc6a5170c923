# tests/cuda.cmake — tests of the CUDA side, labelled `cuda`. Without a GPU they exit 77 and CTest reports them
# as skipped (never passed); on a GPU machine `ctest -L cuda` runs just these.
if(NOT DEBCM_HAVE_CUDA)
  return()
endif()
add_executable(test_cuda_smoke test_cuda_smoke.c)
target_link_libraries(test_cuda_smoke PRIVATE debcm_cuda)
add_test(NAME test_cuda_smoke COMMAND test_cuda_smoke)
set_tests_properties(test_cuda_smoke PROPERTIES SKIP_RETURN_CODE 77 LABELS cuda)
