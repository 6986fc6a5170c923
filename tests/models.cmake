# tests/models.cmake — the teacher and student networks of models/ against the published code's numbers
# (tests/data/fixtures/tiny: one step, three steps, both evaluation protocols) and Philox-mode determinism.
debcm_c_test(test_models test_models.c)
target_link_libraries(test_models PRIVATE PkgConfig::JANSSON)
