"""The built website, read as HTML: pages, links, navigation, the Colab button, explorers.

These tests read ``_build/html``, which ``make test`` builds first; run by hand, they skip
with a message until ``make book`` has run. tests/test_browser.py loads the same pages in a
real browser.
"""

from __future__ import annotations

import base64
import io
import math
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jupytext
import pytest
import yaml
from bs4 import BeautifulSoup
from PIL import Image

from optcore import widgets

from built_site import (RAW_LATEX, ROOT, assert_statements, bibliography_keys, chapter_files,
                        require_site, toc_files)

REPOSITORY = "descent-book/descent"


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
def test_each_explorer_is_a_self_contained_player_within_its_size_budget(doc):
    calls = jupytext.read(ROOT / f"{doc}.md")
    expected = sum(cell.source.count("widgets.explorer(") for cell in calls.cells
                   if cell.cell_type == "code")
    players = page(html_of(doc)).select("div.descent-explorer")
    assert len(players) == expected, f"{doc}: {len(players)} players for {expected} explorers"
    for player in players:
        size = len(str(player).encode())
        assert size <= widgets.SITE_BUDGET_BYTES, f"{doc}: an explorer takes {size} bytes"
        sliders = player.select("input[type=range]")
        assert sliders and all(player.find("label", attrs={"for": s["id"]}) for s in sliders)
        script = player.find("script")
        assert script is not None and not player.select("script[src], link")
        frames = re.findall(r'"(data:image/png;base64,[^"]+)"', script.string)
        positions = [int(s["max"]) + 1 for s in sliders]
        assert len(frames) == len(set(frames)) == math.prod(positions), f"{doc}: {positions}"
        assert player.find("img", class_="explorer-frame")["src"] in frames
        assert player.find("noscript"), f"{doc}: an explorer has no fallback without JavaScript"
        with Image.open(io.BytesIO(base64.b64decode(frames[0].split(",", 1)[1]))) as image:
            assert image.convert("RGB").getpixel((0, 0)) == (255, 255, 255)  # as figures are


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


CHECKS_SUMMARY = re.compile(r"^Checks · (\d+) asserts?$")


@pytest.mark.parametrize("doc", chapter_files())
def test_check_cells_are_folded_under_a_count_of_their_asserts(doc):
    """Each cell tagged `check` shows, in source order, as a closed block whose summary
    counts the asserts of its source; its outputs (if any) stay outside the fold."""
    wanted = [assert_statements(cell.source) for cell in jupytext.read(ROOT / f"{doc}.md").cells
              if cell.cell_type == "code" and "check" in cell.metadata.get("tags", [])]
    cells = page(html_of(doc)).select("div.cell.tag_check")
    assert len(cells) == len(wanted), f"{doc}: {len(cells)} check cells shown of {len(wanted)}"
    for cell, count in zip(cells, wanted):
        fold = cell.find("details", recursive=False)
        assert fold is not None and "checks" in fold["class"] and not fold.has_attr("open")
        summary = fold.find("summary").get_text(strip=True)
        match = CHECKS_SUMMARY.match(summary)
        assert match and int(match[1]) == count, f"{doc}: {summary!r} for {count} asserts"
        assert summary.endswith("asserts") == (count != 1), summary
        assert fold.select_one("div.cell_input pre"), f"{doc}: the fold holds no source"
        assert not fold.select(".cell_output"), f"{doc}: a check's output is folded away"


def chapter_body(doc: str):
    """The chapter's top section: its title, then its blocks."""
    return page(html_of(doc)).select_one("main article section")


@pytest.mark.parametrize("doc", chapter_files())
def test_chapter_page_opens_with_its_goal_and_ends_with_next(doc):
    body = chapter_body(doc)
    title = body.find("h1")
    goal = title.find_next_sibling()
    assert goal is not None and "chapter-goal" in goal.get("class", []), (
        f"{doc}: the title is followed by {goal.name if goal else None}, not the chapter goal")
    assert "You will be able to" in goal.get_text() and "Prerequisites:" in goal.get_text()
    chapters = [a for a in goal.select("a.reference.internal") if "chapters/" in a["href"]
                or re.match(r"\d\d_", a["href"])]
    assert chapters or doc.endswith("01_gradient_descent"), f"{doc}: no prerequisite links"

    nexts = body.select("div.chapter-next")
    assert len(nexts) == 1, f"{doc}: {len(nexts)} chapter-next blocks"
    last = nexts[0]
    # Nothing with text comes after it on the page's article.
    after = [e for e in last.find_all_next(string=True) if e.find_parent("article") and e.strip()
             and e.parent.name not in ("script", "style") and last not in e.parents]
    assert not after, f"{doc}: {after[:3]} after the chapter-next block"
    links = last.select("a.reference.internal")
    assert links and "Next:" in last.get_text(), f"{doc}: {last.get_text()!r}"
    # The link goes to a page of the book (test_internal_links_and_images_resolve checks the
    # rest of every link).
    target = (html_of(doc).parent / urlsplit(links[0]["href"]).path).resolve()
    assert target.exists() and target != html_of(doc).resolve(), links[0]["href"]


def test_the_map_links_each_written_chapter_and_greys_the_rest():
    intro = page(html_of("intro"))
    svg = intro.select_one("div.book-map svg")
    assert svg is not None, "the intro shows no inline SVG map"
    linked = {urlsplit(a["href"]).path.removesuffix(".html") for a in svg.find_all("a")}
    assert linked == set(chapter_files()), linked ^ set(chapter_files())
    for a in svg.find_all("a"):
        assert a.get("aria-label", "").startswith("Chapter "), a.attrs
        assert a.find("g"), "a link of the map encloses no box"
    # Glyphs are drawn by <use xlink:href>, which an inline SVG in HTML resolves only under
    # that exact attribute name.
    assert svg.find("use") and all(use.has_attr("xlink:href") for use in svg.find_all("use"))
