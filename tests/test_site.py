"""The built website, read as HTML: pages, links, navigation, the Colab button, explorers.

These tests read ``_build/html``, which ``make test`` builds first; run by hand, they skip
with a message until ``make book`` has run. tests/test_browser.py loads the same pages in a
real browser.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jupytext
import pytest
import yaml
from bs4 import BeautifulSoup
from PIL import Image

from built_site import (RAW_LATEX, ROOT, bibliography_keys, chapter_files, require_site,
                        toc_files)

REPOSITORY = "descent-book/descent"
STATIC_EXPLORER_NOTE = "A static view of the explorer"


@lru_cache(maxsize=None)
def page(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def html_of(doc: str) -> Path:
    return require_site() / f"{doc}.html"


@pytest.mark.parametrize("doc", toc_files())
def test_every_page_of_the_toc_is_built(doc):
    assert html_of(doc).exists(), f"{doc} is in _toc.yml but was not built"


@pytest.mark.parametrize("doc", toc_files())
def test_internal_links_and_images_resolve(doc):
    source = html_of(doc)
    soup = page(source)
    broken = []
    for tag, attribute in [("a", "href"), ("img", "src"), ("link", "href"), ("script", "src")]:
        for element in soup.find_all(tag):
            target = element.get(attribute)
            url = urlsplit(target or "")
            if not target or url.scheme or url.netloc:
                continue  # absent, or external (the browser test checks what is fetched)
            path, fragment = unquote(url.path), unquote(url.fragment)
            file = (source.parent / path).resolve() if path else source
            if not file.exists():
                broken.append(f"{tag} {target}: no such file")
            elif fragment and file.suffix == ".html" and not page(file).find(id=fragment):
                broken.append(f"{tag} {target}: no element with id {fragment!r}")
    assert not broken, f"{doc}: " + "; ".join(broken)


def test_pages_link_previous_and_next_in_reading_order():
    docs = toc_files()
    for before, doc, after in zip([None] + docs, docs, docs[1:] + [None]):
        soup = page(html_of(doc))
        for cls, neighbour in [("left-prev", before), ("right-next", after)]:
            link = soup.select_one(f".prev-next-area a.{cls}")
            if neighbour is None:
                assert link is None, f"{doc} has a {cls} link but is at the end"
                continue
            assert link is not None, f"{doc} has no {cls} link"
            target = (html_of(doc).parent / link["href"]).resolve()
            assert target == html_of(neighbour).resolve(), f"{doc}: {cls} goes to {link['href']}"


@pytest.mark.parametrize("doc", chapter_files())
def test_colab_button_opens_the_paired_notebook(doc):
    links = [a["href"] for a in page(html_of(doc)).find_all("a", href=True)
             if a["href"].startswith("https://colab.research.google.com/")]
    expected = f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/{doc}.ipynb"
    assert links == [expected]
    assert (ROOT / f"{doc}.ipynb").exists()


@pytest.mark.parametrize("doc", toc_files())
def test_no_cell_output_shows_an_error_or_a_warning(doc):
    soup = page(html_of(doc))
    assert not soup.select(".cell_output .stderr, .cell_output .traceback, .output.error")
    outputs = " ".join(o.get_text() for o in soup.select(".cell_output"))
    for sign in ["Traceback (most recent call last)", "Warning:", "Error:"]:
        assert sign not in outputs, f"{doc}: a cell output shows {sign!r}"


@pytest.mark.parametrize("doc", toc_files())
def test_no_page_shows_inert_widgets(doc):
    # A saved ipywidgets view would be a slider with no kernel behind it.
    assert "application/vnd.jupyter.widget" not in html_of(doc).read_text(encoding="utf-8")


def test_execution_statistics_list_every_notebook_as_run_successfully():
    table = page(html_of("statistics")).find("table")
    assert table is not None, "the statistics page has no {nb-exec-table}"
    rows = {cells[0]: cells for cells in
            ([td.get_text(strip=True) for td in tr.find_all("td")] for tr in table.find_all("tr"))
            if cells}
    for doc in chapter_files():
        assert doc in rows, f"{doc} is missing from the execution statistics"
        assert rows[doc][-1] == "✅", f"{doc} did not run cleanly: {rows[doc]}"


def test_bibliography_page_lists_every_entry_of_references_bib():
    keys = bibliography_keys()
    listed = page(html_of("bibliography")).select(".citation, dl.citation > dt")
    assert len(keys) > 10 and len(listed) >= len(keys)


def test_notation_page_has_the_table_and_the_intro_links_to_it():
    assert page(html_of("notation")).find("table") is not None
    assert page(html_of("intro")).find("a", href=re.compile(r"notation\.html#notation"))


@pytest.mark.parametrize("doc", chapter_files())
def test_solutions_are_collapsed_dropdowns(doc):
    soup = page(html_of(doc))
    exercises, solutions = soup.select("div.exercise"), soup.select("div.solution")
    assert len(solutions) == len(exercises) >= 2, f"{doc}: exercises need solutions"
    assert all("dropdown" in s["class"] for s in solutions)


@pytest.mark.parametrize("doc", chapter_files())
def test_equations_are_numbered(doc):
    numbered = page(html_of(doc)).select("div.math span.eqno")
    assert numbered, f"{doc} has no numbered equation"


@pytest.mark.parametrize("doc", chapter_files())
def test_each_explorer_shows_a_grid_of_panels_and_says_how_to_get_the_sliders(doc):
    calls = jupytext.read(ROOT / f"{doc}.md")
    expected = sum(cell.source.count("widgets.explorer(") for cell in calls.cells
                   if cell.cell_type == "code")
    notes = page(html_of(doc)).find_all(string=re.compile(re.escape(STATIC_EXPLORER_NOTE)))
    assert len(notes) == expected
    for note in notes:
        output = note.find_parent(class_="cell_output")
        images = output.find_all("img")
        assert images, f"{doc}: an explorer printed its note but drew no panels"


def test_figures_are_opaque_so_they_stay_legible_in_dark_mode():
    images = sorted((require_site() / "_images").glob("*.png"))
    assert images
    for path in images:
        with Image.open(path) as image:
            rgba = image.convert("RGBA")
            assert rgba.getextrema()[3][0] == 255, f"{path.name} has transparent pixels"
            assert rgba.getpixel((0, 0))[:3] == (255, 255, 255), f"{path.name} is not on white"


@pytest.mark.parametrize("doc", toc_files())
def test_no_latex_is_left_outside_math(doc):
    # Text outside math elements and code is prose: a `$` or a `\command` there is math that
    # the parser did not recognise (for example `$$` not set off by blank lines in a directive).
    main = BeautifulSoup(str(page(html_of(doc)).find("main")), "html.parser")
    for element in main.select(".math, pre, code, script, style, .cell_output, .highlight"):
        element.decompose()
    leftovers = sorted({match.group() for match in RAW_LATEX.finditer(main.get_text())})
    assert not leftovers, f"{doc}: LaTeX outside math: {leftovers}"


def numbered_chapters() -> dict[str, bool]:
    """Each chapter of _toc.yml, and whether its part is numbered."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return {entry["file"]: bool(part.get("numbered")) for part in toc["parts"]
            for entry in part["chapters"] if entry["file"].startswith("chapters/")}


@pytest.mark.parametrize("doc", chapter_files())
def test_each_chapter_shows_the_number_of_its_file_or_none(doc):
    """Sphinx numbers the chapters of numbered parts consecutively: a chapter missing before a
    numbered part would show chapter 17 as "16." and its equations as (16.n). So a chapter in a
    numbered part shows its file's number, and one in an unnumbered part shows none."""
    number = page(html_of(doc)).select_one("h1 span.section-number")
    if not numbered_chapters()[doc]:
        assert number is None, f"{doc} is in an unnumbered part but shows {number.get_text()}"
        return
    assert number is not None, f"{doc}: its title has no chapter number"
    assert number.get_text().strip() == f"{int(Path(doc).name[:2])}.", number.get_text()
