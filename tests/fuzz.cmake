# tests/fuzz.cmake — libFuzzer targets for every parser (clang only, DEBCM_FUZZ=ON). Each target also runs in the
# suite for a short bounded time (DEBCM_FUZZ_SECONDS, default 20) from its committed seed corpus; the long run
# is documented in README. The engine itself is then built with -fsanitize=fuzzer-no-link for coverage.
if(NOT DEBCM_FUZZ)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "DEBCM_FUZZ needs clang: configure with -DCMAKE_C_COMPILER=clang")
endif()
set(DEBCM_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzzer runs inside the test suite")
foreach(target npy npz pickle safetensors config checkpoint)
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${target}.c)
  if(EXISTS ${src})
    add_executable(fuzz_${target} ${src})
    target_link_libraries(fuzz_${target} PRIVATE debcm_core)
    target_compile_options(fuzz_${target} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer)
    set(corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus-${target})
    add_test(NAME fuzz_${target}
             COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
                     sh -c "mkdir -p '${corpus}' && exec '$<TARGET_FILE:fuzz_${target}>' -max_total_time=${DEBCM_FUZZ_SECONDS} -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 '${corpus}' '${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${target}'")
    set_tests_properties(fuzz_${target} PROPERTIES LABELS fuzz TIMEOUT 600)
  endif()
endforeach()
