# tests/resume.cmake — runs that survive (engine/resume.c, engine/run_config.c, apps/run_job.c): test_resume runs
# the library checks (config round trip and refusals, the resume checkpoint's round trip, every byte flip and
# truncation refused) and the command-line ones (kill -9 at random moments then --resume equals an uninterrupted
# run; SIGTERM/SIGINT/SIGHUP; a non-finite loss; damaged checkpoints; a failed checkpoint write; refusals; bad data)
# on `debcm synth --scale tiny` datasets in its work directory. DEBCM_TEST_SEED repeats a run's kill times.
# resume_faults (shell) needs user namespaces (unshare -rm): a read-only run directory and a full tmpfs; skipped
# where they are not allowed.
add_executable(test_resume test_resume.c)
target_link_libraries(test_resume PRIVATE debcm_core PkgConfig::JANSSON)
target_include_directories(test_resume PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  target_compile_options(test_resume PRIVATE -Wno-format-truncation)
endif()
add_test(NAME test_resume COMMAND test_resume $<TARGET_FILE:debcm> ${CMAKE_CURRENT_BINARY_DIR}/resume-work)
set_tests_properties(test_resume PROPERTIES TIMEOUT 900)
