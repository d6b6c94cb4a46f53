"""The book's machinery: configuration, table of contents, setup cells and Colab copies."""

import ast
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from jupytext.compare import compare_notebooks

from built_site import assert_statements, bibliography_keys, toc_files

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


def after_title(text: str) -> str:
    return text[re.search(r"^# .+$", text, flags=re.M).end():].lstrip("\n")


# A chapter's first block, right under its title, and its last, after the reference list.
GOAL = re.compile(r"\A:::\{div\} chapter-goal\n(.*?)\n:::\n", flags=re.S)
NEXT = re.compile(r"^:::\{div\} chapter-next\n((?:(?!:::).)*?)\n:::\s*\Z", flags=re.S | re.M)
CHAPTER_LINK = re.compile(r"\{ref\}`(ch-[\w-]+)`")


@pytest.mark.parametrize("path", CHAPTERS[1:], ids=lambda p: p.stem)
def test_first_paragraph_names_the_earlier_chapter_whose_problem_it_solves(path):
    opening = after_title(path.read_text())
    goal = GOAL.match(opening)
    first_paragraph = opening[goal.end() if goal else 0:].lstrip("\n").split("\n\n")[0]
    labels = chapter_labels()
    earlier = [label for label in re.findall(r"\{ref\}`(ch-[\w-]+)`", first_paragraph)
               if labels.get(label, 99) < chapter_number(path)]
    assert earlier, f"{path.name}: the first paragraph cites no earlier chapter with {{ref}}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_opens_with_its_goal_and_prerequisites(path):
    goal = GOAL.match(after_title(path.read_text()))
    assert goal, f"{path.name}: the first block under the title is not a chapter-goal div"
    text = goal.group(1)
    assert "You will be able to" in text and "Prerequisites:" in text, text
    prerequisites = CHAPTER_LINK.findall(text.split("Prerequisites:")[1])
    labels = chapter_labels()
    later = [label for label in prerequisites if labels.get(label, 99) >= chapter_number(path)]
    assert not later, f"{path.name}: prerequisites must be earlier chapters, not {later}"
    if chapter_number(path) > 1:
        assert prerequisites, f"{path.name}: the prerequisites name no chapter with {{ref}}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_ends_with_the_chapter_it_prepares(path):
    text = path.read_text()
    block = NEXT.search(text)
    assert block, f"{path.name}: the last block is not a chapter-next div"
    assert "{bibliography}" in text[:block.start()], f"{path.name}: next comes after the references"
    links = CHAPTER_LINK.findall(block.group(1)) + re.findall(r"\{doc\}`([^`]+)`", block.group(1))
    assert links and "Next:" in block.group(1), f"{path.name}: {block.group(1)!r}"
    labels = chapter_labels()
    for link in links:
        assert link in labels or (ROOT / "chapters" / f"{link}.md").resolve().exists(), link


# Tags under which an assert would go unchecked or unseen, and who reads them:
# - skip-execution: nbclient (myst-nb's build of the site) does not run the cell;
# - raises-exception (nbclient and nbval), nbval-raises-exception: an exception, a failing
#   assert included, is expected, so the cell passes either way;
# - nbval-skip: nbval does not run the cell;
# - remove-cell, remove_cell (myst-nb): the cell runs but is left off the page, and with
#   remove-input, remove_input its source: the reader could not find the check.
UNCHECKING_TAGS = {"skip-execution", "raises-exception", "nbval-raises-exception", "nbval-skip",
                   "remove-cell", "remove_cell", "remove-input", "remove_input"}
# nbval's comment markers for the same (a line "# NBVAL_SKIP" in the cell's source).
UNCHECKING_MARKERS = re.compile(r"^\s*#+\s*(NBVAL_SKIP|NBVAL_RAISES_EXCEPTION)\s*$", flags=re.M)
CHECK_TAG = "check"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_cells_with_asserts_are_run_and_shown(path):
    for cell in code_cells(jupytext.read(path)):
        if not assert_statements(cell.source):
            continue
        tags = set(cell.metadata.get("tags", [])) & UNCHECKING_TAGS
        assert not tags, f"{path.name}: a cell with asserts is tagged {sorted(tags)}"
        marker = UNCHECKING_MARKERS.search(cell.source)
        assert not marker, f"{path.name}: a cell with asserts says {marker.group(1)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_check_cells_hold_asserts(path):
    for cell in code_cells(jupytext.read(path)):
        if CHECK_TAG in cell.metadata.get("tags", []):
            assert assert_statements(cell.source), (
                f"{path.name}: a check cell without an assert:\n{cell.source}")


def test_counting_asserts_skips_comments_strings_and_magics():
    source = '''%pip install x  # assert
# assert in a comment
s = "assert"
for x in [1]:
    assert x, f"assert {x}"
assert (1
        == 1)
'''
    assert assert_statements(source) == 2


def book_map() -> tuple[dict, set]:
    """The map's nodes (name: chapter file, column, row, parents) and the chapters drawn in
    grey, read from the intro's code cell."""
    (cell,) = code_cells(jupytext.read(ROOT / "intro.md"))
    values = {}
    for statement in ast.parse(cell.source).body:
        target = statement.targets[0] if isinstance(statement, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id in ("BOOK", "BEING_WRITTEN"):
            values[target.id] = ast.literal_eval(statement.value)
    return values["BOOK"], values["BEING_WRITTEN"]


PLANNED_CHAPTERS = 23


def test_the_book_map_shows_every_chapter():
    nodes, being_written = book_map()
    files = {file for file, *_ in nodes.values()}
    assert {int(file[:2]) for file in files} == set(range(1, PLANNED_CHAPTERS + 1))
    listed = {entry.removeprefix("chapters/") for entry in toc_files()
              if entry.startswith("chapters/")}
    assert listed <= files, f"chapters not on the map: {sorted(listed - files)}"
    # A chapter in the table of contents is linked from the map; one not yet there is grey.
    assert being_written == files - listed, (
        f"intro.md's BEING_WRITTEN is {sorted(being_written)}, but the chapters that _toc.yml "
        f"does not list are {sorted(files - listed)}")
    for name, (_, _, _, parents) in nodes.items():
        assert set(parents) <= set(nodes), f"{name} is built on an idea not on the map"


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
