# tests/run_cli.cmake — the training commands' command line as a user meets it (apps/cmd_run.c, apps/run_job.c):
# test_run_cli checks --config under the command line, --print-config against config.json, the published scripts'
# flag names, --name, metrics.jsonl parsed back (train windows and epoch lines), the progress lines off and on a
# terminal (a pseudo-terminal) and --quiet, on a `debcm synth --scale tiny` dataset in its work directory.
add_executable(test_run_cli test_run_cli.c)
target_link_libraries(test_run_cli PRIVATE debcm_core PkgConfig::JANSSON util)
target_include_directories(test_run_cli PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  target_compile_options(test_run_cli PRIVATE -Wno-format-truncation)
endif()
add_test(NAME test_run_cli COMMAND test_run_cli $<TARGET_FILE:debcm> ${CMAKE_CURRENT_BINARY_DIR}/run-cli-work)
set_tests_properties(test_run_cli PROPERTIES TIMEOUT 300)
