# tests/cuda.cmake — tests of the CUDA side, labelled `cuda`. Without a GPU they exit 77 and CTest reports them
# as skipped (never passed); on a GPU machine `ctest -L cuda` runs just these.
if(NOT DEBCM_HAVE_CUDA)
  return()
endif()
add_executable(test_cuda_smoke test_cuda_smoke.c)
target_link_libraries(test_cuda_smoke PRIVATE debcm_cuda)
add_test(NAME test_cuda_smoke COMMAND test_cuda_smoke)
set_tests_properties(test_cuda_smoke PROPERTIES SKIP_RETURN_CODE 77 LABELS cuda)

# Every op of the CUDA table against the CPU table (awkward sizes, sentinels around every device tensor, the +=
# contract, NULL d-outputs, determinism, Philox draws, gather_rows), the evaluation ops, one teacher and one
# student training step plus both evaluation protocols on both tables, and two epochs of each phase through
# engine/train.c (resident data, teacher cache on and off) against the CPU.
debcm_c_test(test_cuda_parity test_cuda_parity.c)
target_link_libraries(test_cuda_parity PRIVATE debcm_cuda debcm_core)
set_tests_properties(test_cuda_parity PROPERTIES LABELS cuda TIMEOUT 900)
# The same program's self-test, no GPU needed: the CPU table behind a fake "GPU" table that checks every pointer
# handed to it is device memory (from its alloc, whole extent) or host memory where the op wants host memory, so
# the test and models/ are checked to pass device pointers exactly where the CUDA table will get them. Label
# `harness`, not `cuda` (ctest -L takes a regex): `ctest -L cuda` stays GPU-only.
add_test(NAME test_cuda_parity_fake_gpu COMMAND test_cuda_parity --fake-gpu --quick)
set_tests_properties(test_cuda_parity_fake_gpu PROPERTIES LABELS harness)
