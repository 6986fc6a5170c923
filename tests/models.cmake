# tests/models.cmake — the teacher and student networks of models/ against the published code's numbers
# (tests/data/fixtures/tiny: one step, three steps, both evaluation protocols) and Philox-mode determinism.
debcm_c_test(test_models test_models.c)
target_link_libraries(test_models PRIVATE PkgConfig::JANSSON)
# The same checks at the published sizes (B 64, D_v 2048, D_m 256, L 128, k 40), read in place from
# ../shared/fixtures/paper_dims (too big to copy into tests/data): reports skipped (77) when that folder is absent,
# so the default suite never needs ../shared.
add_test(NAME test_models_paper_dims COMMAND test_models --paper-dims ${DEBCM_SHARED_DIR}/fixtures/paper_dims)
set_tests_properties(test_models_paper_dims PROPERTIES SKIP_RETURN_CODE 77)
# The whole teacher and student losses (every matching and distillation variant) against a float64 reference
# written in the test: the loss and every gradient entry by central finite differences (tiny dims, no data files).
debcm_c_test(test_loss_fd test_loss_fd.c)
