"""What the browser and site tests share: the built site's pages, in the table of contents' order."""

from __future__ import annotations

import io
import os
import re
import tokenize
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
SITE = ROOT / "_build" / "html"
IN_CI = os.environ.get("CI") == "true"
# In rendered prose (math and code removed), a `$` or a `\command` is math that was not typeset.
RAW_LATEX = re.compile(r"\$|\\[A-Za-z]{2,}")


def assert_statements(source: str) -> int:
    """The ``assert`` statements of a code cell, counted as Python's ``assert`` keyword tokens
    (so not in comments or strings); IPython's ``%`` and ``!`` lines are left out."""
    python = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                       for line in source.splitlines())
    tokens = tokenize.generate_tokens(io.StringIO(python).readline)
    return sum(token.type == tokenize.NAME and token.string == "assert" for token in tokens)


def bibliography_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(), flags=re.M))


def toc_files() -> list[str]:
    """The documents of ``_toc.yml`` in reading order: the root page, then every part's."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for part in toc["parts"] for entry in part["chapters"]]


def chapter_files() -> list[str]:
    return [name for name in toc_files() if name.startswith("chapters/")]


def missing(reason: str):
    """Skip a test whose prerequisite is absent, except in CI, where skipping would hide it."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def require_site() -> Path:
    if not (SITE / "index.html").exists():
        missing("no built site in _build/html: run `make book` first (`make test` does)")
    return SITE
