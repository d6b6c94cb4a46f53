"""Each chapter's Colab copy (.ipynb), run the way Colab runs it: optcore is not installed.

For every paired notebook the test makes a fresh virtual environment that sees the book's
pinned packages (the project's ``.venv`` site-packages, added by a ``.pth`` line; Python does
not read the ``.pth`` files inside a folder added that way, so ``.venv``'s editable optcore
stays invisible) but not optcore. It then executes the notebook there, from an empty
temporary folder, with ``OPTCORE_SOURCE`` pointing at a copy of this checkout's package
files: the setup cell's ``%pip install`` installs optcore from it, as it installs from GitHub
in Colab. A chapter that leans on the repository's files, on the editable install or on
anything else only a developer's machine has fails here. pip runs offline (no index, no build
isolation), so the test needs no network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

from built_site import ROOT, chapter_files

# Executed by the clean environment's Python; the extra last cell proves where optcore came from.
RUNNER = """
import sys
import nbformat
from nbclient import NotebookClient

notebook = nbformat.read(sys.argv[1], as_version=4)
notebook.cells.append(nbformat.v4.new_code_cell(
    "import sys, optcore\\n"
    "assert optcore.__file__.startswith(sys.prefix), optcore.__file__"))
NotebookClient(notebook, timeout=300, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
"""


@pytest.fixture(scope="module")
def optcore_source(tmp_path_factory) -> Path:
    """What `pip install git+<repository>` would see: the package and its build files."""
    source = tmp_path_factory.mktemp("optcore-source")
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "optcore", source / "optcore",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return source


def clean_environment(folder: Path) -> Path:
    """A venv whose Python sees the book's packages but not optcore; returns its python."""
    venv.create(folder, with_pip=False)
    python = folder / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], capture_output=True, text=True, check=True)
    (Path(purelib.stdout.strip()) / "book_packages.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    # The kernel that runs the notebook is this environment's Python, whatever else is installed.
    kernel = folder / "jupyter" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (clean)", "language": "python"}))
    return python


@pytest.mark.parametrize("doc", chapter_files())
def test_colab_copy_runs_where_optcore_is_not_installed(doc, optcore_source, tmp_path):
    python = clean_environment(tmp_path / "venv")
    workdir = tmp_path / "work"
    workdir.mkdir()
    before = subprocess.run([python, "-c", "import optcore"], cwd=workdir, capture_output=True)
    assert before.returncode != 0, "optcore is importable before the setup cell installs it"
    env = {key: value for key, value in os.environ.items()
           if key not in {"PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH", "DESCENT_STATIC_SITE"}}
    env.update(OPTCORE_SOURCE=str(optcore_source),
               JUPYTER_DATA_DIR=str(tmp_path / "venv" / "jupyter"), PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}")
    result = subprocess.run([python, "-c", RUNNER, str(ROOT / f"{doc}.ipynb"), str(workdir)],
                            cwd=workdir, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{doc}.ipynb failed in a clean environment:\n" + (
        result.stdout + result.stderr)[-4000:]
    assert not any(workdir.iterdir()), f"{doc} left files in its working folder"
