"""Every page of the built site, loaded in headless Chromium as a reader would see it.

Needs the built site (``make book``; ``make test`` builds it first) and Debian's Chromium
(``apt-get install chromium``; ``.ci/run`` installs it). Without Chromium the tests skip and
say so; in CI they fail instead. Playwright drives the system Chromium, so nothing is
downloaded. The site is served on 127.0.0.1 and MathJax, the one asset pages load from a CDN,
is answered from the copy that the pinned ``django-static-mathjax`` package ships; any other
request that leaves the machine fails the test. One full-page screenshot per page (and a dark
one) is saved to ``_build/screenshots`` for a person to look at.
"""

from __future__ import annotations

import functools
import http.server
import mimetypes
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from built_site import RAW_LATEX, SITE, chapter_files, missing, require_site, toc_files

SCREENSHOTS = SITE.parent / "screenshots"
MATHJAX_CDN = ("cdn.jsdelivr.net", "/npm/mathjax@3/")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    return os.environ.get("DESCENT_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")


def local_mathjax() -> Path:
    import mathjax  # the django-static-mathjax package: MathJax 3.2.2's files, nothing else

    return Path(mathjax.__file__).parent / "static" / "mathjax"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_url():
    require_site()
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        missing("Chromium not found: `apt-get install chromium` (Debian) to run the browser "
                "tests, or set DESCENT_CHROMIUM to a Chromium binary; .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class Visit:
    """One page in a fresh browser context, with what went wrong while it loaded."""

    def __init__(self, browser, url: str, dark: bool = False):
        self.errors: list[str] = []
        self.external: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900},
                                           color_scheme="dark" if dark else "light")
        self.context.route("**/*", self.answer)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(f"exception: {error}"))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.goto(url, wait_until="load")
        # MathJax typesets after load; its startup promise resolves when it is done.
        self.page.evaluate("() => window.MathJax?.startup?.promise")

    def answer(self, route):
        url = urlsplit(route.request.url)
        if url.hostname == "127.0.0.1":
            return route.continue_()
        host, prefix = MATHJAX_CDN
        if url.hostname == host and url.path.startswith(prefix):
            file = local_mathjax() / url.path[len(prefix):]
            if file.is_file():
                content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                return route.fulfill(path=str(file), content_type=content_type)
        self.external.append(route.request.url)
        return route.abort()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.context.close()


def screenshot_name(doc: str, suffix: str = "") -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{doc.replace('/', '__')}{suffix}.png"


@pytest.mark.parametrize("doc", toc_files())
def test_page_renders_cleanly(browser, site_url, doc):
    with Visit(browser, f"{site_url}/{doc}.html") as visit:
        page = visit.page
        # A full-page screenshot also makes the browser load every image on the page.
        page.screenshot(path=screenshot_name(doc), full_page=True)
        page.wait_for_function("() => [...document.images].every(image => image.complete)")

        assert not visit.errors, f"JavaScript errors on {doc}: {visit.errors}"
        assert not visit.external, f"{doc} fetched from the network: {visit.external}"

        untypeset = page.evaluate("""() => [...document.querySelectorAll('div.math, span.math')]
            .filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60))""")
        assert not untypeset, f"equations MathJax did not typeset on {doc}: {untypeset[:5]}"
        prose = page.evaluate("""() => { const main = document.querySelector('main').cloneNode(true);
            main.querySelectorAll('mjx-container, pre, code, script, style, .cell_output')
                .forEach(e => e.remove());
            return main.innerText; }""")
        leftovers = sorted({match.group() for match in RAW_LATEX.finditer(prose)})
        assert not leftovers, f"LaTeX that MathJax did not typeset is visible on {doc}: {leftovers}"

        broken = page.evaluate("""() => [...document.images]
            .filter(image => !(image.naturalWidth > 0)).map(image => image.src.slice(0, 80))""")
        assert not broken, f"images that did not load on {doc}: {broken}"
        failed_cells = page.locator(".cell_output .stderr, .cell_output .traceback").count()
        assert failed_cells == 0, f"{doc} shows {failed_cells} error or warning outputs"


@pytest.mark.parametrize("doc", chapter_files())
def test_animations_have_frames_and_play(browser, site_url, doc):
    with Visit(browser, f"{site_url}/{doc}.html") as visit:
        animations = visit.page.locator("div.animation")
        for i in range(animations.count()):
            animation = animations.nth(i)
            animation.scroll_into_view_if_needed()
            image, slider = animation.locator("img").first, animation.locator("input.anim-slider")
            frames = int(slider.get_attribute("max") or 0) + 1
            assert frames >= 10, f"animation {i} on {doc} has {frames} frames"
            assert image.evaluate("img => img.naturalWidth") > 0
            first = image.get_attribute("src")
            animation.get_by_role("button", name="Next frame").click()
            assert image.get_attribute("src") != first, f"animation {i} on {doc} did not advance"
        assert not visit.errors, visit.errors


@pytest.mark.parametrize("doc", chapter_files())
def test_explorers_move_with_the_keyboard(browser, site_url, doc):
    """Each slider of each explorer, moved one step with an arrow key, swaps the frame and
    prints its new value."""
    with Visit(browser, f"{site_url}/{doc}.html") as visit:
        players = visit.page.locator("div.descent-explorer")
        for i in range(players.count()):
            player = players.nth(i)
            player.scroll_into_view_if_needed()
            image = player.locator("img.explorer-frame")
            sliders = player.locator("input[type=range]")
            assert sliders.count() >= 1 and sliders.first.is_visible(), f"{doc}: explorer {i}"
            assert image.evaluate("img => img.naturalWidth") > 0
            for k in range(sliders.count()):
                slider, printed = sliders.nth(k), player.locator("output").nth(k)
                src, value = image.get_attribute("src"), printed.text_content()
                at_end = slider.input_value() == slider.get_attribute("max")
                slider.focus()
                visit.page.keyboard.press("ArrowLeft" if at_end else "ArrowRight")
                assert image.get_attribute("src") != src, f"{doc}: explorer {i}, slider {k}"
                assert printed.text_content() != value, f"{doc}: explorer {i}, slider {k}"
                assert slider.get_attribute("aria-valuetext") == printed.text_content()
                assert printed.text_content() in image.get_attribute("alt")
        assert not visit.errors, visit.errors


@pytest.mark.parametrize("doc", chapter_files())
def test_dark_mode_keeps_figures_as_drawn(browser, site_url, doc):
    with Visit(browser, f"{site_url}/{doc}.html", dark=True) as visit:
        page = visit.page
        page.evaluate("() => { document.documentElement.dataset.theme = 'dark'; }")
        page.screenshot(path=screenshot_name(doc, "-dark"))
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        red, green, blue = (int(c) for c in background[background.index("(") + 1:-1].split(",")[:3])
        assert red + green + blue < 3 * 80, f"dark mode did not darken {doc}: {background}"
        filters = page.evaluate("""() => [...document.querySelectorAll('.cell_output img')]
            .map(image => getComputedStyle(image).filter)""")
        assert filters and not any("invert" in f for f in filters), filters


def test_solutions_start_collapsed_and_open_on_click(browser, site_url):
    doc = chapter_files()[0]
    with Visit(browser, f"{site_url}/{doc}.html") as visit:
        solution = visit.page.locator("div.solution").first
        body = solution.locator(".admonition-title ~ *").first
        solution.scroll_into_view_if_needed()
        assert not body.is_visible()
        solution.locator(".admonition-title").click()
        body.wait_for(state="visible")


def test_search_finds_a_chapter(browser, site_url):
    with Visit(browser, f"{site_url}/search.html?q=minibatch+variance") as visit:
        results = visit.page.locator("#search-results li a")
        results.first.wait_for(timeout=15_000)
        hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
        assert any("chapters/01_gradient_descent" in href for href in hrefs), hrefs
        assert not visit.errors, visit.errors


@pytest.mark.parametrize("doc", toc_files())
def test_code_never_scrolls_sideways(browser, site_url, doc):
    """At the default width no code block in the main column scrolls horizontally, with every
    fold (checks, hidden sources, solutions) opened; the site's CSS wraps long lines."""
    with Visit(browser, f"{site_url}/{doc}.html") as visit:
        wide = visit.page.evaluate("""() => {
            document.querySelectorAll('.bd-article details').forEach(d => { d.open = true; });
            document.querySelectorAll('.bd-article .toggle-hidden')
                .forEach(e => e.classList.remove('toggle-hidden'));
            return [...document.querySelectorAll('.bd-article pre')]
                .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
                .map(pre => pre.textContent.split('\\n')[0].slice(0, 60)); }""")
        assert not wide, f"{doc}: code blocks that scroll sideways: {wide}"


def first_chapter_with(selector: str, site_url, browser) -> str:
    for doc in chapter_files():
        with Visit(browser, f"{site_url}/{doc}.html") as visit:
            if visit.page.locator(selector).count():
                return doc
    missing(f"no chapter page has {selector}")


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_check_blocks_start_folded_and_open_by_keyboard_and_click(browser, site_url, dark):
    doc = first_chapter_with("details.checks", site_url, browser)
    with Visit(browser, f"{site_url}/{doc}.html", dark=dark) as visit:
        fold = visit.page.locator("details.checks").first
        summary, source = fold.locator("summary"), fold.locator("div.cell_input pre")
        fold.scroll_into_view_if_needed()
        assert summary.is_visible() and not source.is_visible()
        summary.focus()
        visit.page.keyboard.press("Enter")
        source.wait_for(state="visible")
        summary.click()
        source.wait_for(state="hidden")
        # The summary's text stands out from the page in either mode.
        colours = summary.evaluate("""s => [getComputedStyle(s.querySelector('p')).color,
                                            getComputedStyle(document.body).backgroundColor]""")
        text, page = ([int(c) for c in colour[colour.index("(") + 1:-1].split(",")[:3]]
                      for colour in colours)
        assert abs(sum(text) - sum(page)) > 3 * 100, f"{doc}: summary {colours} in dark={dark}"
        assert not visit.errors, visit.errors


def test_clicking_a_box_of_the_map_opens_its_chapter(browser, site_url):
    with Visit(browser, f"{site_url}/intro.html") as visit:
        boxes = visit.page.locator(".book-map svg a")
        hrefs = {boxes.nth(i).get_attribute("href") for i in range(boxes.count())}
        assert hrefs == {f"{doc}.html" for doc in chapter_files()}
        adam = visit.page.locator('.book-map svg a[href="chapters/07_adam.html"]')
        adam.scroll_into_view_if_needed()
        adam.click()
        visit.page.wait_for_url("**/chapters/07_adam.html")
        assert "Adam" in visit.page.locator("article h1").first.inner_text()
