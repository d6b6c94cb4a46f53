"""The book's machinery: configuration, table of contents, setup cells and Colab copies."""

from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from jupytext.compare import compare_notebooks

from built_site import toc_files

ROOT = Path(__file__).parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY = CONFIG["repository"]["url"]
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))

# The first code cell of every chapter; the URL comes from _config.yml, its one home.
SETUP_CELL = f"""\
# Colab: install optcore from the book's repository. Locally, `make` has installed it already.
# (The book's tests set OPTCORE_SOURCE to install from a local checkout instead.)
import os
import sys

OPTCORE_SOURCE = os.environ.get("OPTCORE_SOURCE", "git+{REPOSITORY}")
if "google.colab" in sys.modules or "OPTCORE_SOURCE" in os.environ:
    %pip install --quiet {{OPTCORE_SOURCE}}"""


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_there_are_chapters():
    assert len(CHAPTERS) >= 1


def test_repository_url_is_the_books():
    assert REPOSITORY == "https://github.com/descent-book/descent"
    assert f'Homepage = "{REPOSITORY}"' in (ROOT / "pyproject.toml").read_text()


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    listed = toc_files()
    for path in CHAPTERS:
        assert f"chapters/{path.stem}" in listed, f"{path.name} is missing from _toc.yml"
    for entry in listed:
        assert (ROOT / f"{entry}.md").exists(), f"_toc.yml lists {entry}, which does not exist"


def test_config_keeps_generated_and_hidden_files_out_of_the_build():
    patterns = CONFIG["exclude_patterns"]
    for needed in [".*", "_build", "**/*.ipynb"]:
        assert needed in patterns
    assert CONFIG["execute"]["raise_on_error"] is True
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_shared_setup_cell(path):
    first = code_cells(jupytext.read(path))[0]
    assert first.source == SETUP_CELL


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_colab_copy_matches_its_chapter_and_has_no_outputs(path):
    paired = path.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: run `make pair`"
    copy = nbformat.read(paired, as_version=4)
    assert all(not cell.get("outputs") for cell in code_cells(copy)), "outputs in the copy"
    assert all(cell.get("execution_count") is None for cell in code_cells(copy))
    # Raises with a diff when the copy is stale: run `make pair`.
    compare_notebooks(copy, jupytext.read(path), fmt="md:myst")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_with_gpu_cells_ask_colab_for_a_gpu(path):
    notebook = jupytext.read(path)
    has_gpu_cells = any("gpu" in cell.metadata.get("tags", []) for cell in code_cells(notebook))
    asks_for_gpu = notebook.metadata.get("accelerator") == "GPU"
    assert has_gpu_cells == asks_for_gpu, (
        "a chapter with `gpu` cells must set `accelerator: GPU` in its front matter, and only then")
