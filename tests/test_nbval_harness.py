"""The nbval harness (root conftest.py) runs markdown notebooks in a clean environment, as
Colab runs a chapter, and fails for each way a chapter can break there.

The fixture notebooks are run once, together, with ``make test``'s options (two xdist workers,
``--dist loadfile``), and with ``PYTHONPATH`` and the website build's variable set in pytest's
environment, which the notebooks' kernel must not see.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from optcore.widgets import STATIC_SITE_ENV

ROOT = Path(__file__).parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
NOTEBOOKS = ["passing_cells", "raising_cell", "writes_a_file", "imports_optcore_without_setup",
             "imports_optcore_from_a_folder"]
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours the kernel's tracebacks
SUMMARY_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED) (\S+?\.md)::(.+?)(?: - (.*))?$")


class Run(NamedTuple):
    text: str  # pytest's output, uncoloured
    outcomes: dict[str, dict[str, str]]  # {notebook: {item: "PASSED" or "FAILED"}}


def run_notebooks(names: list[str], **variables: str) -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT), STATIC_SITE_ENV: "1", **variables}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "--nbval-lax", "-rA",
         "--color=no", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
         "-c", str(ROOT / "pyproject.toml"),
         *[f"tests/fixtures/{name}.md" for name in names]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    text = ANSI_COLOUR.sub("", result.stdout + result.stderr)
    outcomes: dict[str, dict[str, str]] = {name: {} for name in names}
    for line in text.splitlines():
        if match := SUMMARY_LINE.match(line):
            outcomes[Path(match[2]).stem][match[3]] = match[1]
    return Run(text, outcomes)


@pytest.fixture(scope="module")
def run() -> Run:
    return run_notebooks(NOTEBOOKS)


def test_harness_runs_every_cell_of_a_markdown_notebook_and_installs_optcore(run):
    assert run.outcomes["passing_cells"] == {
        "Clean start": "PASSED", "Cell 0": "PASSED", "Cell 1": "PASSED", "Clean finish": "PASSED"
    }, run.text


def test_harness_fails_on_a_raising_cell(run):
    assert run.outcomes["raising_cell"] == {
        "Clean start": "PASSED", "Cell 0": "PASSED", "Cell 1": "FAILED", "Clean finish": "PASSED"
    }, run.text
    assert "the harness must report this failure" in run.text


def test_harness_fails_a_notebook_that_writes_into_its_working_folder(run):
    assert run.outcomes["writes_a_file"]["Cell 0"] == "PASSED", run.text
    assert run.outcomes["writes_a_file"]["Clean finish"] == "FAILED", run.text
    assert "writes_a_file.md wrote files into its working folder: ['results.csv']" in run.text


def test_harness_fails_a_notebook_that_imports_optcore_without_installing_it(run):
    assert run.outcomes["imports_optcore_without_setup"]["Clean start"] == "PASSED", run.text
    assert run.outcomes["imports_optcore_without_setup"]["Cell 0"] == "FAILED", run.text
    assert "ModuleNotFoundError: No module named 'optcore'" in run.text


def test_harness_fails_a_notebook_that_imports_optcore_from_elsewhere(run):
    assert run.outcomes["imports_optcore_from_a_folder"]["Cell 0"] == "PASSED", run.text
    assert run.outcomes["imports_optcore_from_a_folder"]["Clean finish"] == "FAILED", run.text
    assert "optcore was imported from" in run.text


def test_harness_reports_each_notebooks_running_time(run):
    section = run.text.split("chapter running times (budget 60 s each)")[-1]
    for name in NOTEBOOKS:
        assert re.search(rf"^ +\d+\.\d s  tests/fixtures/{name}\.md$", section, flags=re.M), (
            run.text)


# `make test-gpu` (DESCENT_CHECK_GPU_CELLS=1): without a GPU, the check is tested both ways it
# can be here. Forced to the CPU, a gpu cell that uses optcore.device() passes and is counted;
# asked for CUDA, a gpu cell that never touches CUDA fails, although its own asserts pass.

@pytest.fixture(scope="module")
def gpu_check_on_the_cpu() -> Run:
    return run_notebooks(["gpu_cell_on_its_device"],
                         DESCENT_CHECK_GPU_CELLS="1", OPTCORE_DEVICE="cpu")


@pytest.fixture(scope="module")
def gpu_check_wanting_cuda() -> Run:
    return run_notebooks(["gpu_cell_on_the_cpu"], DESCENT_CHECK_GPU_CELLS="1", OPTCORE_DEVICE="cuda")


def test_gpu_check_passes_a_gpu_cell_on_the_device_it_was_given(gpu_check_on_the_cpu):
    run = gpu_check_on_the_cpu
    assert run.outcomes["gpu_cell_on_its_device"]["Cell 1"] == "PASSED", run.text
    assert "gpu cells on optcore.device() = cpu" in run.text
    assert "1 gpu cells ran on that device" in run.text


def test_gpu_check_fails_a_gpu_cell_that_left_its_tensors_on_the_cpu(gpu_check_wanting_cuda):
    run = gpu_check_wanting_cuda
    assert run.outcomes["gpu_cell_on_the_cpu"]["Cell 0"] == "FAILED", run.text
    assert run.outcomes["gpu_cell_on_the_cpu"]["Cell 1"] == "PASSED", run.text
    assert "this gpu cell allocated no CUDA memory, but optcore.device() is cuda" in run.text
    assert "0 gpu cells ran on that device" in run.text
