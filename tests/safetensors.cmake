# tests/safetensors.cmake — the safetensors reader and writer (io/safetensors.c). test_safetensors: round trips of
# every dtype and shape, the fixtures written by the reference Python library (tests/data/safetensors, from
# tests/data/gen_safetensors.py) read and rewritten byte for byte, one malformed file per rule, truncation at every
# length, safetensors_expect's messages, atomic writes that fail (missing directory, file size limit) leaving the
# previous checkpoint intact, and the fuzz corpus replayed. test_safetensors_python: the reference library itself
# (safetensors + numpy, and torch when present) reads what our writer writes and finds the bytes it would have
# written; skipped (exit 77) without a Python that imports safetensors — point DEBCM_SAFETENSORS_PYTHON at one,
# e.g. a throwaway venv: python3 -m venv /tmp/stv && /tmp/stv/bin/pip install safetensors numpy ml_dtypes.
set(DEBCM_SAFETENSORS_PYTHON "" CACHE STRING "A Python that imports safetensors and numpy (empty: look for one)")
debcm_find_python(_st_python "import safetensors, numpy" ${DEBCM_SAFETENSORS_PYTHON} ${DEBCM_NUMPY_PYTHON} python3)
if(_st_python)
  message(STATUS "debcm: ✓ Python safetensors for tests (${_st_python})")
else()
  message(STATUS "debcm: ✗ Python safetensors for tests (test_safetensors_python will be skipped)")
endif()

debcm_c_test(test_safetensors test_safetensors.c)
add_test(NAME test_safetensors_python
         COMMAND test_safetensors ${DEBCM_TEST_DATA} --python "${_st_python}"
                 ${CMAKE_CURRENT_SOURCE_DIR}/data/gen_safetensors.py ${CMAKE_CURRENT_BINARY_DIR}/safetensors-python)
set_tests_properties(test_safetensors_python PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
unset(_st_python)
