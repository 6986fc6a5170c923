# tests/torch.cmake — bench/torch_ref (our PyTorch reference of SPEC.md, written from the spec) against the published
# code's numbers: bench/torch_ref/test_fixtures.py builds the networks from each fixture's initial parameters, replays
# the recorded draws and checks losses, gradients, BN statistics, Adam steps and both evaluation protocols. It needs a
# Python with torch and NumPy (Debian: apt-get install python3-torch); without one the tests report skipped (77).
debcm_find_python(DEBCM_TORCH_PYTHON "import torch, numpy" /usr/bin/python3 python3)
if(DEBCM_TORCH_PYTHON)
  message(STATUS "debcm: ✓ PyTorch for tests (${DEBCM_TORCH_PYTHON})")
  set(_debcm_torch_cmd ${DEBCM_TORCH_PYTHON})
else()
  message(STATUS "debcm: ✗ PyTorch for tests (test_torch_ref_* will be skipped)")
  # still run the script with some Python: it exits 77 itself when `import torch` fails
  find_program(_debcm_any_python NAMES python3 NO_CACHE)
  if(_debcm_any_python)
    set(_debcm_torch_cmd ${_debcm_any_python})
  else()
    set(_debcm_torch_cmd sh -c "echo 'no python3: skipped'; exit 77" --)
  endif()
  unset(_debcm_any_python)
endif()

set(_debcm_torch_script ${PROJECT_SOURCE_DIR}/bench/torch_ref/test_fixtures.py)
add_test(NAME test_torch_ref_fixtures COMMAND ${_debcm_torch_cmd} ${_debcm_torch_script} ${DEBCM_TEST_DATA}/fixtures/tiny)
# The published sizes, read in place from ../shared (skipped when that folder is absent).
add_test(NAME test_torch_ref_fixtures_paper_dims
         COMMAND ${_debcm_torch_cmd} ${_debcm_torch_script} ${DEBCM_SHARED_DIR}/fixtures/paper_dims)
set_tests_properties(test_torch_ref_fixtures test_torch_ref_fixtures_paper_dims PROPERTIES
                     SKIP_RETURN_CODE 77 LABELS torch TIMEOUT 300 ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
unset(_debcm_torch_cmd)
unset(_debcm_torch_script)
