"""Hand every chapter (a jupytext MyST-markdown notebook) to nbval as if it were an .ipynb.

Run as ``pytest --nbval-lax --nbval-current-env -n 2 --dist loadfile chapters``. Chapters are
checked by their own ``assert`` cells, not by comparing outputs, hence ``--nbval-lax``.
Also reports each chapter's running time against the book's budget of 60 s per chapter.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

import jupytext
import nbval.plugin
import pytest

ROOT = Path(__file__).parent
CHAPTER_BUDGET_S = 60.0

# The paired .ipynb files are copies of the .md chapters for Colab: never test them twice.
# The fixture notebooks are run on purpose by tests/test_nbval_harness.py only.
collect_ignore_glob = ["chapters/*.ipynb", "tests/fixtures/*", "_build/*", ".venv/*"]


def is_notebook_markdown(path: Path) -> bool:
    """A MyST-markdown file is a notebook when its front matter declares a kernel."""
    if path.suffix != ".md":
        return False
    head = path.read_text(encoding="utf-8")[:1000]
    return head.startswith("---") and "kernelspec:" in head


def _read_markdown_notebook(path, as_version=4):
    return jupytext.read(path)


class MarkdownNotebook(nbval.plugin.IPyNbFile):
    """nbval's notebook collector, reading the notebook with jupytext instead of nbformat."""

    def collect(self):
        with mock.patch.object(nbval.plugin.nbformat, "read", _read_markdown_notebook):
            return list(super().collect())


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if (opt.nbval or opt.nbval_lax) and is_notebook_markdown(file_path):
        return MarkdownNotebook.from_parent(parent, path=file_path)
    return None


# --- the time budget -------------------------------------------------------------------
# nbval runs one item per cell; the controller (also under xdist) sees every report, so it
# sums the cells' durations per notebook and fails the session if one exceeds the budget.

_notebook_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".md") and "::Cell" in report.nodeid:
        _notebook_seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    terminalreporter.section("chapter running times (budget %.0f s each)" % CHAPTER_BUDGET_S)
    for path, seconds in sorted(_notebook_seconds.items()):
        flag = "  OVER BUDGET" if seconds > CHAPTER_BUDGET_S else ""
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}{flag}")


def pytest_sessionfinish(session, exitstatus):
    over = {p: s for p, s in _notebook_seconds.items() if s > CHAPTER_BUDGET_S}
    if over and exitstatus == pytest.ExitCode.OK and not hasattr(session.config, "workerinput"):
        names = ", ".join(f"{p} ({s:.0f} s)" for p, s in over.items())
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"FAILED: chapters over the {CHAPTER_BUDGET_S:.0f} s budget: {names}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
