# tests/train.cmake — the training job (engine/train.c, models/checkpoint.c, apps/cmd_run.c): test_train runs the
# library checks (shuffle, checkpoint round trip and refusals) and the command-line checks (run, determinism,
# evaluate, refusals, usage errors, unwritable --out, every variant, trained beats untrained) on `debcm synth
# --scale tiny` datasets written into its work directory.
add_executable(test_train test_train.c)
target_link_libraries(test_train PRIVATE debcm_core PkgConfig::JANSSON)
target_include_directories(test_train PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  # the test builds its paths in PATH_MAX buffers from a short work directory; gcc cannot know they fit
  target_compile_options(test_train PRIVATE -Wno-format-truncation)
endif()
add_test(NAME test_train COMMAND test_train $<TARGET_FILE:debcm> ${CMAKE_CURRENT_BINARY_DIR}/train-work)
set_tests_properties(test_train PROPERTIES TIMEOUT 600)
