# tests/ops.cmake — the CPU ops of engine/ops.h with their backwards (engine/ops_cpu.c, engine/math.h):
# finite-difference gradient checks against float64 references, forward checks, determinism across thread
# counts, evaluation metrics on hand-computed cases, and the published code's numbers on the tiny teacher fixture
# (copied into tests/data/fixtures/tiny).
debcm_c_test(test_ops test_ops.c)
