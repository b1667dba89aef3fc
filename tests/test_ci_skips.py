"""The root conftest's rule: under CI a skip fails the run, except a `gpu` test without CUDA."""

from pathlib import Path

import pytest
import torch

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
VIOLIN_CONFTEST = (Path(__file__).parent / "violin" / "conftest.py").read_text()

TESTS = """
import pytest

def test_needs_data():
    pytest.skip("sample not found at /nowhere")

@pytest.mark.gpu
def test_on_cuda():
    pass

@pytest.mark.xfail(reason="known")
def test_known_bug():
    assert False

def test_runs():
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    gpu: needs a CUDA device\n")
    pytester.makepyfile(test_sample=TESTS)
    return pytester


@pytest.mark.parametrize("value", [None, "", "0", "false"])
def test_outside_ci_a_skip_is_a_skip(project, monkeypatch, value):
    """Unset, or set to a value that says no."""
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    result = project.runpytest("-p", "no:cacheprovider")
    gpu_skips = 0 if torch.cuda.is_available() else 1
    result.assert_outcomes(passed=1 + (1 - gpu_skips), skipped=1 + gpu_skips, xfailed=1)


def test_in_ci_a_skip_fails_with_its_reason(project, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = project.runpytest("-p", "no:cacheprovider", "-rf")
    gpu_skips = 0 if torch.cuda.is_available() else 1
    result.assert_outcomes(failed=1, passed=1 + (1 - gpu_skips), skipped=gpu_skips, xfailed=1)
    result.stdout.fnmatch_lines(
        ["FAILED test_sample.py::test_needs_data - skipped in CI, where it must run: sample not found at /nowhere"]
    )


def test_in_ci_a_module_skipped_at_import_fails(pytester: pytest.Pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_missing='import pytest\n\npytest.importorskip("no_such_package_here")\n')
    monkeypatch.delenv("CI", raising=False)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=1)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*skipped in CI, where it must run: could not import 'no_such_package_here'*"])


def test_in_ci_a_missing_violin_sample_fails_and_names_the_folder(pytester: pytest.Pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    violin = pytester.mkdir("violin")
    (violin / "conftest.py").write_text(VIOLIN_CONFTEST)
    (violin / "test_sample.py").write_text("def test_reads_the_sample(sample_dir):\n    pass\n")
    monkeypatch.setenv("BATON_SHARED_DATA", str(pytester.path / "nowhere"))
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-p", "no:cacheprovider", "--import-mode=importlib")
    result.assert_outcomes(errors=1)
    missing = pytester.path / "nowhere" / "bach-violin-sample"
    result.stdout.fnmatch_lines([f"*skipped in CI, where it must run: Bach Violin Dataset sample not found at {missing} *"])
