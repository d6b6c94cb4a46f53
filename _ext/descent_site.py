"""Sphinx extension for Descent's website build.

1. It marks the build in the environment (``optcore.widgets.STATIC_SITE_ENV``), which the
   chapter kernels started by myst-nb inherit, so that ``optcore.widgets`` renders each
   explorer's frames ahead of time and ships them with a player of its own: ipywidgets
   sliders on a static page would have no kernel behind them and do nothing.
2. It drops scripts registered twice. sphinx-thebe 0.3.1 registers its inline configuration
   on every ``env-before-read-docs`` event, which Jupyter Book fires more than once, and the
   second copy fails in the browser ("Identifier 'THEBE_JS_URL' has already been declared").
3. It gives each chapter's citations a key prefix of its own. Every chapter ends with a
   reference list of the works it cites, and sphinxcontrib-bibtex refuses ("duplicate
   citation") to list one key in two lists, unless each list has its own ``:keyprefix:``
   and every citation of its chapter carries the prefix. Authors write plain keys,
   {cite}`kingma2015`; this adds the prefix (``ch03-`` in chapter 03) when Sphinx reads
   the chapter, to the citations and to its ``{bibliography}``.
4. It adds the theme options (and the default colour mode) that Jupyter Book's
   ``_config.yml`` has no key for. Setting ``html_theme_options`` in ``_config.yml`` would
   replace the options Jupyter Book derives from it, and with them the Colab launch button and
   the repository button.
5. It folds each check cell (a code cell tagged ``check``: mostly ``assert`` lines) into a
   closed block whose summary counts its asserts, "Checks · 3 asserts"; its outputs stay in
   view. myst-nb's own ``hide-input`` fold says only "Show code cell source", and names every
   summary "Toggle hidden content" for screen readers, which would hide the count from them.
   The look of these blocks, the wrapping of long code lines, the chapter-goal and
   chapter-next blocks and the map are in ``_static/descent.css``, which Jupyter Book links
   into every page (as it does every .css file in ``_static``).
"""

import ast
import os
import re
from html import escape

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform

# The variable's one definition; optcore is installed wherever the book is built.
from optcore.widgets import STATIC_SITE_ENV


def drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    # The copies differ only in the file name of an inline script: None once, "" once.
    seen, unique = set(), []
    for script in scripts:
        key = (script.filename or None, script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


THEME_OPTIONS = {
    "show_toc_level": 2,  # the page's sections in the right-hand table of contents
    "navigation_with_keys": False,  # arrow keys scroll the page; they do not turn it
}
# Light or dark as the reader's system prefers. Without it a page starts with an empty mode,
# and the theme logs "Got invalid theme mode" to the console on a reader's first visit.
HTML_CONTEXT = {"default_mode": "auto"}


def add_theme_options(app, config):
    config.html_theme_options = {**THEME_OPTIONS, **(config.html_theme_options or {})}
    config.html_context = {**HTML_CONTEXT, **(config.html_context or {})}


CITATION = re.compile(r"(\{cite(?::[a-z]+)?\}`)([^`]+)(`)")
BIBLIOGRAPHY = re.compile(r"^(`{3,})\{bibliography\}[^\n]*\n", flags=re.M)


def prefix_citations(app, docname, source):
    if not docname.startswith("chapters/"):
        return
    prefix = f"ch{docname.split('/')[-1][:2]}-"

    def with_prefix(match):
        keys = ",".join(prefix + key.strip() for key in match[2].split(","))
        return match[1] + keys + match[3]

    text = CITATION.sub(with_prefix, source[0])
    source[0] = BIBLIOGRAPHY.sub(lambda m: f"{m[0]}:keyprefix: {prefix}\n", text)


CHECK_TAG = "check"


def count_asserts(source: str) -> int:
    """The ``assert`` statements in a cell's source (IPython's ``%`` and ``!`` lines aside)."""
    python = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                       for line in source.splitlines())
    return sum(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(python)))


def checks_summary(source: str) -> str:
    count = count_asserts(source)
    return f"Checks · {count} assert{'' if count == 1 else 's'}"


class CheckFold(nodes.Element):
    """A check cell's source, folded under a summary that counts its asserts."""


def visit_check_fold(translator, node):
    # The classes are those of myst-nb's folds, whose stylesheet then draws this one alike.
    translator.body.append('<details class="admonition hide above-input checks">\n'
                           f'<summary><p class="admonition-title">{escape(node["summary"])}'
                           "</p></summary>\n")


def depart_check_fold(translator, node):
    translator.body.append("</details>\n")


class FoldCheckCells(SphinxPostTransform):
    # Before myst-nb's HideInputCells (199), which then finds no source to fold again.
    default_priority = 198
    formats = ("html",)

    def run(self, **kwargs):
        for cell in list(self.document.findall(nodes.container)):
            tags = cell.get("cell_metadata", {}).get("tags", [])
            if cell.get("nb_element") != "cell_code" or CHECK_TAG not in tags:
                continue
            for source in [c for c in cell.children if c.get("nb_element") == "cell_code_source"]:
                fold = CheckFold(summary=checks_summary(source.astext()))
                cell.replace(source, fold)
                fold.append(source)


def setup(app):
    app.add_node(CheckFold, html=(visit_check_fold, depart_check_fold))
    app.add_post_transform(FoldCheckCells)
    app.connect("source-read", prefix_citations)
    app.connect("config-inited", add_theme_options)
    os.environ[STATIC_SITE_ENV] = "1"
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)  # after the others
    return {"parallel_read_safe": True, "parallel_write_safe": True}
