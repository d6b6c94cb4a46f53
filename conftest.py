"""Run every chapter under nbval the way Colab runs it, in a clean environment.

``make test`` runs ``pytest -n 2 --dist loadfile --nbval-lax tests chapters``. Each chapter (a
jupytext MyST-markdown notebook) is read with jupytext and handed to nbval as if it were an
.ipynb; nbval executes it cell by cell, one test item per cell. Chapters are checked by their
own ``assert`` cells, not by comparing outputs, hence ``--nbval-lax``. ``--dist loadfile`` keeps
a chapter's items on one worker, in order.

The kernel is not the project's ``.venv`` but a fresh virtual environment made for that
chapter, as in Colab: it sees the book's pinned packages (``.venv``'s site-packages, added by a
``.pth`` line; Python does not read the ``.pth`` files inside a folder added that way, so the
editable optcore of ``.venv`` stays invisible) but not optcore, and it starts in an empty
temporary folder. ``OPTCORE_SOURCE`` points at a copy of this checkout's package files, so the
chapter's setup cell ``%pip install``-s optcore from it, offline, as it installs from GitHub in
Colab. Two items around the chapter's cells check what a single run in ``.venv`` could not:

- ``Clean start``: before the first cell, the kernel runs in the clean environment and cannot
  import optcore (a chapter without a working setup cell then fails at its ``import optcore``);
- ``Clean finish``: after the last cell, optcore, if imported, came from the clean environment
  (not from the checkout or the editable install), and the working folder is still empty.

So one execution proves both that the chapter's asserts pass and that its Colab copy runs where
optcore is not installed: the copy (``chapters/NN_slug.ipynb``) has the same cells as the
``.md``, which ``tests/test_book.py`` checks with jupytext's ``compare_notebooks``. The website
build (``make book``) executes each chapter once more, in ``.venv``: twice in all per
``make test``. ``--nbval-current-env`` and ``--nbval-kernel-name`` do not apply to the chapters.

Also reports each chapter's running time against the book's budget of 60 s per chapter, and,
for ``make test-gpu``, checks that every cell tagged ``gpu`` ran on the device it was given.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sysconfig
import tempfile
import venv
from collections import defaultdict
from pathlib import Path
from unittest import mock

import jupytext
import nbval.plugin
import pytest
from nbval.kernel import RunningKernel

# Imported here, not when the first chapter starts, so that torch's import (optcore imports it)
# is not charged to that chapter's time budget.
from optcore.device import device as optcore_device
from optcore.widgets import STATIC_SITE_ENV

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


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if (opt.nbval or opt.nbval_lax) and is_notebook_markdown(file_path):
        return MarkdownNotebook.from_parent(parent, path=file_path)
    return None


# --- the clean environment ---------------------------------------------------------------

KERNEL_NAME = "descent-clean"
# What a developer's shell or the website build may set and Colab does not (pytest's own
# PYTEST_* variables are removed too).
STRIPPED_VARIABLES = {"PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH", STATIC_SITE_ENV}
_scratch_key = pytest.StashKey[Path]()


def scratch_folder(config) -> Path:
    """This process's temporary folder (one per xdist worker), removed when pytest ends."""
    if _scratch_key not in config.stash:
        folder = Path(tempfile.mkdtemp(prefix="descent-chapters-"))
        config.stash[_scratch_key] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    return config.stash[_scratch_key]


class CleanEnvironment:
    """A fresh venv that has the book's packages but not optcore, its kernel, an empty working
    folder, and a copy of optcore's package files for the setup cell to install."""

    def __init__(self, folder: Path):
        self.prefix = folder / "venv"
        self.workdir = folder / "work"
        self.source = folder / "optcore-source"
        self.jupyter = folder / "jupyter"

        venv.create(self.prefix, with_pip=False, symlinks=os.name != "nt")
        paths = {"base": str(self.prefix), "platbase": str(self.prefix)}
        purelib = Path(sysconfig.get_path("purelib", "venv", vars=paths))
        (purelib / "book_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        self.python = Path(sysconfig.get_path("scripts", "venv", vars=paths)) / "python"

        # What `pip install git+<repository>` would see: the package and its build files.
        self.source.mkdir()
        for name in ["pyproject.toml", "README.md"]:
            shutil.copy(ROOT / name, self.source / name)
        shutil.copytree(ROOT / "optcore", self.source / "optcore",
                        ignore=shutil.ignore_patterns("__pycache__"))

        kernel = self.jupyter / "kernels" / KERNEL_NAME
        kernel.mkdir(parents=True)
        (kernel / "kernel.json").write_text(json.dumps({
            "argv": [str(self.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (clean, without optcore)", "language": "python"}))
        self.workdir.mkdir()

    def kernel_environment(self) -> dict[str, str]:
        """The environment the kernel starts with: ours, less what Colab would not have."""
        env = {key: value for key, value in os.environ.items()
               if key not in STRIPPED_VARIABLES and not key.startswith("PYTEST_")}
        env.update(
            OPTCORE_SOURCE=str(self.source),
            JUPYTER_DATA_DIR=str(self.jupyter),  # where nbval finds the kernel above
            PIP_NO_INDEX="1",
            PIP_NO_BUILD_ISOLATION="0",  # = --no-build-isolation: build with .venv's setuptools
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PATH=f"{self.python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        return env


class MarkdownNotebook(nbval.plugin.IPyNbFile):
    """nbval's notebook collector, reading the chapter with jupytext and running it in a
    :class:`CleanEnvironment`, between the ``Clean start`` and ``Clean finish`` checks."""

    clean: CleanEnvironment | None = None

    def collect(self):
        # nbval 0.11 has no supported way to read a notebook that is not .ipynb JSON:
        # IPyNbFile.collect() itself calls `nbformat.read(str(self.fspath), as_version=4)` and
        # goes on to build the cell items in the same method; there is no reading method to
        # override and no option. The alternatives are worse: jupytext has no pytest plugin
        # (its `jupytext --check 'pytest --nbval {}' chapter.md` starts one pytest per notebook,
        # which defeats xdist and the session-wide budget below), and collecting a converted
        # temporary .ipynb would report every cell at that temporary path instead of at
        # chapters/NN_slug.md. So nbformat.read (nbval.plugin.nbformat is the nbformat module)
        # is replaced by jupytext.read while nbval's own collect() runs, and only then; the
        # harness tests (tests/test_nbval_harness.py) fail if that stops working.
        with mock.patch.object(nbval.plugin.nbformat, "read", _read_markdown_notebook):
            cells = list(super().collect())
        return [CleanStart.from_parent(self, name="Clean start"), *cells,
                CleanFinish.from_parent(self, name="Clean finish")]

    def setup(self):
        # Replaces nbval's setup, which starts the kernel in the chapter's folder with the
        # environment of pytest; nbval has no option for either. RunningKernel takes no
        # environment, but jupyter_client copies os.environ when it launches the kernel (and
        # finds the kernel through JUPYTER_DATA_DIR), so os.environ is swapped for that call.
        folder = tempfile.mkdtemp(prefix=f"{self.path.stem}-", dir=scratch_folder(self.config))
        self.clean = CleanEnvironment(Path(folder))
        with mock.patch.dict(os.environ, self.clean.kernel_environment(), clear=True):
            self.kernel = RunningKernel(
                KERNEL_NAME, cwd=str(self.clean.workdir),
                startup_timeout=self.config.option.nbval_kernel_startup_timeout)
        self.setup_sanitize_files()

    def evaluate(self, expression: str):
        """The value of a Python literal ``expression`` in the running kernel, leaving the
        chapter's namespace alone (a user expression of an empty, silent execution)."""
        if self.kernel is None or not self.kernel.is_alive():
            fail("the chapter's kernel is not running")
        reply = self.kernel.kc.execute_interactive(
            "", silent=True, store_history=False, user_expressions={"value": expression},
            timeout=60)
        result = reply["content"]["user_expressions"]["value"]
        if result["status"] != "ok":
            fail(f"{expression} failed in the kernel: {result}")
        return ast.literal_eval(result["data"]["text/plain"])


def _read_markdown_notebook(path, as_version=4):
    return jupytext.read(path)


class CleanEnvironmentCheck(pytest.Item):
    parent: MarkdownNotebook

    def reportinfo(self):
        return self.path, None, self.nodeid


class CleanStart(CleanEnvironmentCheck):
    """Before the first cell: the kernel is the clean venv's Python and optcore is not there."""

    def runtest(self):
        clean = self.parent.clean
        prefix = self.parent.evaluate("__import__('sys').prefix")
        if Path(prefix).resolve() != clean.prefix.resolve():
            fail(f"the kernel runs in {prefix}, not in the clean environment {clean.prefix}")
        found = self.parent.evaluate(
            "[str(s) for s in [__import__('importlib.util').util.find_spec('optcore')] if s]")
        if found:
            fail(f"optcore is importable before the setup cell installs it: {found[0]}")


class CleanFinish(CleanEnvironmentCheck):
    """After the last cell: optcore came from the clean venv; no file in the working folder."""

    def runtest(self):
        clean = self.parent.clean
        left = sorted(str(p.relative_to(clean.workdir)) for p in clean.workdir.iterdir())
        if left:
            fail(f"{self.path.name} wrote files into its working folder: {left}; "
                 "a chapter writes only into a tempfile.TemporaryDirectory()")
        where = self.parent.evaluate(
            "getattr(__import__('sys').modules.get('optcore'), '__file__', None)")
        if where and not Path(where).resolve().is_relative_to(clean.prefix.resolve()):
            fail(f"optcore was imported from {where}, not from the clean environment "
                 f"{clean.prefix} where the setup cell installs it")


def fail(message: str):
    pytest.fail(message, pytrace=False)  # the message says it all; no traceback of this file


# --- GPU cells ---------------------------------------------------------------------------
# A chapter's cell tagged `gpu` takes its device from optcore.device(), which reads
# OPTCORE_DEVICE. `make test-gpu` sets that (cuda unless told otherwise) and GPU_CHECK_ENV; then
# each gpu cell must have allocated CUDA memory when the device is CUDA, and none when it is the
# CPU. A cell that builds its tensors on the CPU by mistake passes everywhere else: this is the
# one run that notices. The count is torch's number of allocation requests, which grows even when
# the caching allocator serves a request from memory it already holds.

GPU_CHECK_ENV = "DESCENT_CHECK_GPU_CELLS"
CUDA_ALLOCATIONS = ("__import__('torch').cuda.memory_stats().get('allocation.all.allocated', 0) "
                    "if __import__('torch').cuda.is_initialized() else 0")
_gpu_cells_checked: list[str] = []


def checking_gpu_cells() -> bool:
    return os.environ.get(GPU_CHECK_ENV) == "1"


def is_gpu_cell(item) -> bool:
    return (isinstance(item, nbval.plugin.IPyNbCell)
            and "gpu" in item.cell.get("metadata", {}).get("tags", []))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    if not (checking_gpu_cells() and is_gpu_cell(item)):
        return (yield)
    before = item.parent.evaluate(CUDA_ALLOCATIONS)
    result = yield  # a failing cell raises here, and is reported as it is
    allocated = item.parent.evaluate(CUDA_ALLOCATIONS) - before
    wanted = optcore_device()  # what the cell's optcore.device() returned: same environment
    if wanted.type == "cuda" and allocated == 0:
        fail(f"this gpu cell allocated no CUDA memory, but optcore.device() is {wanted}: "
             "its tensors and model must live on optcore.device()")
    if wanted.type != "cuda" and allocated > 0:
        fail(f"this gpu cell allocated CUDA memory {allocated} times, but optcore.device() is "
             f"{wanted}: it must use optcore.device(), not a device of its own")
    item.user_properties.append(("gpu_cell_device", str(wanted)))
    return result


# --- the time budget -------------------------------------------------------------------
# nbval runs one item per cell; the controller (also under xdist) sees every report, so it
# sums the items' durations (setup, call, teardown: the clean environment, the kernel's start
# and the setup cell's install included) per notebook and fails the session if one exceeds
# the budget.

_notebook_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path, _, item = report.nodeid.partition("::")
    if path.endswith(".md") and item:
        _notebook_seconds[path] += report.duration
    if report.when == "call" and report.passed and dict(report.user_properties).get(
            "gpu_cell_device") is not None:
        _gpu_cells_checked.append(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    if checking_gpu_cells():
        terminalreporter.section(f"gpu cells on optcore.device() = {optcore_device()}")
        terminalreporter.write_line(f"{len(_gpu_cells_checked)} gpu cells ran on that device")
    if not _notebook_seconds:
        return
    terminalreporter.section("chapter running times (budget %.0f s each)" % CHAPTER_BUDGET_S)
    for path, seconds in sorted(_notebook_seconds.items()):
        flag = "  OVER BUDGET" if seconds > CHAPTER_BUDGET_S else ""
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}{flag}")


def pytest_sessionfinish(session, exitstatus):
    if (checking_gpu_cells() and not _gpu_cells_checked and exitstatus == pytest.ExitCode.OK
            and not hasattr(session.config, "workerinput")):
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"FAILED: {GPU_CHECK_ENV}=1, but no passing gpu cell was collected", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    over = {p: s for p, s in _notebook_seconds.items() if s > CHAPTER_BUDGET_S}
    if over and exitstatus == pytest.ExitCode.OK and not hasattr(session.config, "workerinput"):
        names = ", ".join(f"{p} ({s:.0f} s)" for p, s in over.items())
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"FAILED: chapters over the {CHAPTER_BUDGET_S:.0f} s budget: {names}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
