# tests/recommend.cmake — the full-ranking metrics, genre exposure, `debcm recommend` and `debcm export`
# (models/eval_full.c, apps/cmd_recommend.c, apps/cmd_export.c): test_recommend trains a short run on a `debcm
# synth --scale tiny` dataset written into its work directory, then checks the library's numbers against a
# recomputation from the exported embeddings, the command lines against each other, and their refusals.
add_executable(test_recommend test_recommend.c)
target_link_libraries(test_recommend PRIVATE debcm_core PkgConfig::JANSSON)
target_include_directories(test_recommend PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  # the test builds its paths in PATH_MAX buffers from a short work directory; gcc cannot know they fit
  target_compile_options(test_recommend PRIVATE -Wno-format-truncation)
endif()
add_test(NAME test_recommend COMMAND test_recommend $<TARGET_FILE:debcm> ${CMAKE_CURRENT_BINARY_DIR}/recommend-work)
set_tests_properties(test_recommend PROPERTIES TIMEOUT 600)
