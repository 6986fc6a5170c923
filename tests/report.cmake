# tests/report.cmake — the run report (apps/run_report*.c, apps/cmd_report.c): test_report builds run directories
# by hand (both kinds of metrics.jsonl lines, report.json with and without its optional parts, none) and checks
# metrics.csv against metrics.jsonl value for value, report.md against the inputs' numbers, the plots (PNG header,
# SVG curves; skipped, and said so, without gnuplot on PATH), a failing and a missing gnuplot, the one-line errors
# of bad inputs, and `debcm synth` → `debcm run --epochs 2` → `debcm report` end to end, in its work directory.
add_executable(test_report test_report.c)
target_link_libraries(test_report PRIVATE debcm_report debcm_core PkgConfig::JANSSON)
target_include_directories(test_report PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  # the test builds its paths in PATH_MAX buffers from a short work directory; gcc cannot know they fit
  target_compile_options(test_report PRIVATE -Wno-format-truncation)
endif()
add_test(NAME test_report COMMAND test_report $<TARGET_FILE:debcm> ${CMAKE_CURRENT_BINARY_DIR}/report-work)
set_tests_properties(test_report PROPERTIES TIMEOUT 300)
