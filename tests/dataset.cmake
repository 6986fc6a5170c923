# tests/dataset.cmake — the dataset loader and the `debcm inspect` command: defects named by file/row/field,
# the synth → inspect round trip, and the published sample dataset in ../shared when it is there.
debcm_c_test(test_dataset test_dataset.c)

add_test(NAME cli_inspect COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli_inspect.sh $<TARGET_FILE:debcm>)

# An extra test on ../shared/data/debcm-mini (written by NumPy itself); skipped when ../shared is absent.
add_test(NAME shared_mini_inspect
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/shared_mini_inspect.sh $<TARGET_FILE:debcm> ${DEBCM_SHARED_DIR}/data/debcm-mini)
set_tests_properties(shared_mini_inspect PROPERTIES SKIP_RETURN_CODE 77)
