"""The book's machinery: configuration, table of contents, setup cells and Colab copies."""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from jupytext.compare import compare_notebooks

from built_site import bibliography_keys, toc_files

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


def chapter_number(path: Path) -> int:
    return int(path.name[:2])


def chapter_labels() -> dict[str, int]:
    """Each chapter's label, `(ch-...)=` at its top, and its number."""
    labels = {}
    for path in CHAPTERS:
        match = re.search(r"^\((ch-[\w-]+)\)=$", path.read_text(), flags=re.M)
        assert match, f"{path.name} has no (ch-...)= label"
        labels[match.group(1)] = chapter_number(path)
    return labels


@pytest.mark.parametrize("path", CHAPTERS[1:], ids=lambda p: p.stem)
def test_first_paragraph_names_the_earlier_chapter_whose_problem_it_solves(path):
    text = path.read_text()
    after_title = text[re.search(r"^# .+$", text, flags=re.M).end():].lstrip("\n")
    first_paragraph = after_title.split("\n\n")[0]
    labels = chapter_labels()
    earlier = [label for label in re.findall(r"\{ref\}`(ch-[\w-]+)`", first_paragraph)
               if labels.get(label, 99) < chapter_number(path)]
    assert earlier, f"{path.name}: the first paragraph cites no earlier chapter with {{ref}}"


def test_the_book_map_shows_every_chapter():
    intro = (ROOT / "intro.md").read_text()
    on_map = {int(n) for n in re.findall(r'": \((\d+), \d', intro)}
    assert {chapter_number(path) for path in CHAPTERS} <= on_map


def test_notation_is_tabulated_in_one_place():
    tables = [path.relative_to(ROOT).as_posix() for path in
              [ROOT / "intro.md", ROOT / "notation.md", *CHAPTERS]
              if "| symbol | meaning |" in path.read_text()]
    assert tables == ["notation.md"]


def test_every_citation_is_in_references_bib():
    keys = bibliography_keys()
    for path in CHAPTERS:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", path.read_text()):
            for key in group.split(","):
                assert key.strip() in keys, f"{path.name} cites {key.strip()!r}"
