"""The nbval harness (root conftest.py) must run markdown chapters and must be able to fail."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def run_nbval(notebook: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p",
         "no:xdist", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
         "-c", str(ROOT / "pyproject.toml"), str(notebook.relative_to(ROOT))],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def test_harness_runs_every_cell_of_a_markdown_notebook():
    result = run_nbval(FIXTURES / "passing_cells.md")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_harness_fails_on_a_raising_cell():
    result = run_nbval(FIXTURES / "raising_cell.md")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout
    assert "the harness must report this failure" in result.stdout
