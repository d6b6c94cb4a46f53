"""Explorers: sliders in a live notebook, a grid of panels on the static website.

A slider needs a running kernel to redraw its figure. The website has none, so there the same
explorer draws small multiples: one panel for each combination of a few chosen values, which
a reader can compare at a glance. The website build marks itself with the environment variable
``DESCENT_STATIC_SITE`` (set by ``_ext/descent_site.py``); everywhere else the sliders are live.
"""

from __future__ import annotations

import itertools
import os
from typing import Callable, Sequence

import matplotlib.pyplot as plt

STATIC_SITE_ENV = "DESCENT_STATIC_SITE"


def is_static_site() -> bool:
    """True while the book's website is being built (no kernel will be behind the page)."""
    return os.environ.get(STATIC_SITE_ENV) == "1"


def explorer(draw: Callable, sliders: dict[str, Sequence], static: dict[str, Sequence],
             labels: dict[str, str] | None = None, panel_size=(3.2, 2.8), mode: str | None = None):
    """Explore ``draw(ax, **values)`` over the hyperparameters in ``sliders``.

    ``sliders`` maps each keyword of ``draw`` to the values its slider offers (a slider starts
    in the middle of its list). ``static`` maps one or two of them to the few values shown as
    a grid of panels on the website (rows for the first, columns for the second); the other
    keywords keep their slider's starting value. ``labels`` gives display names
    (``{"lr": "η"}``). ``mode`` forces "live" or "static"; by default it is "static" exactly on
    the website build. The explorer displays itself and returns nothing (a returned figure
    would be shown twice).
    """
    labels = labels or {}
    mode = mode or ("static" if is_static_site() else "live")
    defaults = {name: values[len(values) // 2] for name, values in sliders.items()}
    if mode == "static":
        _static_grid(draw, static, defaults, labels, panel_size)
    elif mode == "live":
        _live(draw, sliders, defaults, labels, panel_size)
    else:
        raise ValueError(f"Invalid mode: {mode!r} (expected 'live' or 'static')")


def _title(values: dict, labels: dict) -> str:
    return ", ".join(f"{labels.get(k, k)} = {v:g}" for k, v in values.items())


def _static_grid(draw, static, defaults, labels, panel_size):
    from IPython.display import Markdown, display

    names = list(static)
    if not 1 <= len(names) <= 2:
        raise ValueError(f"Invalid static: {static!r} (expected one or two hyperparameters)")
    rows = static[names[0]] if len(names) == 2 else [None]
    cols = static[names[-1]]
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False,
                             figsize=(panel_size[0] * len(cols), panel_size[1] * len(rows)))
    for (i, row), (j, col) in itertools.product(enumerate(rows), enumerate(cols)):
        values = dict(defaults)
        values[names[-1]] = col
        if row is not None:
            values[names[0]] = row
        draw(axes[i, j], **values)
        axes[i, j].set_title(_title({n: values[n] for n in names}, labels), fontsize=9)
    display(fig)
    plt.close(fig)
    display(Markdown(
        "*A static view of the explorer: run this chapter in Jupyter or Colab to move "
        "the sliders over " + ", ".join(labels.get(n, n) for n in defaults) + ".*"))


def _live(draw, sliders, defaults, labels, panel_size):
    import ipywidgets as widgets
    from IPython.display import display

    controls = {
        name: widgets.SelectionSlider(options=list(values), value=defaults[name],
                                      description=labels.get(name, name),
                                      continuous_update=False)
        for name, values in sliders.items()
    }

    def redraw(**values):
        fig, ax = plt.subplots(figsize=(panel_size[0] * 1.6, panel_size[1] * 1.6))
        draw(ax, **values)
        ax.set_title(_title(values, labels))
        plt.show()

    output = widgets.interactive_output(redraw, controls)
    box = widgets.VBox([widgets.HBox(list(controls.values())), output])
    display(box)
