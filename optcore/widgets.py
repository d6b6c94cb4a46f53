"""Explorers: sliders in a live notebook, a player of precomputed frames on the static website.

A slider needs a running kernel to redraw its figure. The website has none, so there the
explorer draws its figure ahead of time for every combination of the values its sliders offer
(or for a subset, named by ``static`` or ``site``, when they are too many), and ships them with
a small player: one range input per slider, which swaps the precomputed frame and prints the
values, with no kernel, no network and no external script. Without JavaScript the page shows the
explorer's starting frame. The website build marks itself with the environment variable
``DESCENT_STATIC_SITE`` (set by ``_ext/descent_site.py``); everywhere else the sliders are live.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import math
import os
from typing import Callable, Sequence

import matplotlib.pyplot as plt

STATIC_SITE_ENV = "DESCENT_STATIC_SITE"
# What one explorer may add to its page: its frames as data URIs plus the player's markup.
SITE_BUDGET_BYTES = 2_000_000
# The most frames the site renders for one explorer (draws × their cost is build time).
MAX_FRAMES = 48
FRAME_DPI = 100  # the frames' resolution; they shrink together only if they overflow the budget
FRAME_COLOURS = 256  # frames are palette PNGs: figures have few colours, and compress well


def is_static_site() -> bool:
    """True while the book's website is being built (no kernel will be behind the page)."""
    return os.environ.get(STATIC_SITE_ENV) == "1"


def explorer(draw: Callable, sliders: dict[str, Sequence], static: dict[str, Sequence],
             labels: dict[str, str] | None = None, panel_size=(3.2, 2.8), mode: str | None = None,
             site: dict[str, Sequence] | None = None):
    """Explore ``draw(ax, **values)`` over the hyperparameters in ``sliders``.

    ``sliders`` maps each keyword of ``draw`` to the values its slider offers (a slider starts
    in the middle of its list). On the website, where no kernel can redraw, the explorer is
    drawn ahead of time for every combination of slider values if there are at most
    ``MAX_FRAMES``; otherwise its site sliders are the one or two hyperparameters named in
    ``static`` (over all their slider values, or over the values ``static`` gives if those are
    still too many), the others fixed at their starting value. ``site`` overrides that choice:
    it maps the hyperparameters the site's sliders move to their values. ``labels`` gives
    display names (``{"lr": "η"}``). ``mode`` forces "live" or "static"; by default it is
    "static" exactly on the website build. The explorer displays itself and returns nothing
    (a returned figure would be shown twice).
    """
    labels = labels or {}
    mode = mode or ("static" if is_static_site() else "live")
    defaults = {name: values[len(values) // 2] for name, values in sliders.items()}
    offered = site_values(sliders, static, site)  # checked in notebooks too
    if mode == "static":
        from IPython.display import HTML, display

        display(HTML(player(draw, offered, defaults, labels, panel_size)))
    elif mode == "live":
        _live(draw, sliders, defaults, labels, panel_size)
    else:
        raise ValueError(f"Invalid mode: {mode!r} (expected 'live' or 'static')")


def _text(value) -> str:
    return format(value, "g") if isinstance(value, (int, float)) else str(value)


def _title(values: dict, labels: dict) -> str:
    return ", ".join(f"{labels.get(k, k)} = {_text(v)}" for k, v in values.items())


def site_values(sliders: dict, static: dict, site: dict | None = None,
                max_frames: int = MAX_FRAMES) -> dict[str, list]:
    """The hyperparameters the website's sliders move, each with the values it offers."""
    for name, chosen in [("static", static), ("site", site or {})]:
        unknown = [key for key in chosen if key not in sliders]
        if unknown:
            raise ValueError(f"Invalid {name}: {chosen!r} (names {unknown} have no slider)")
    if not 1 <= len(static) <= 2:
        raise ValueError(f"Invalid static: {static!r} (expected one or two hyperparameters)")
    if site:
        return {name: list(values) for name, values in site.items()}
    for candidate in (sliders, {name: sliders[name] for name in static}, static):
        if math.prod(len(values) for values in candidate.values()) <= max_frames:
            return {name: list(values) for name, values in candidate.items()}
    raise ValueError(f"Invalid static: {static!r} (more than {max_frames} combinations)")


def render_frames(draw, offered: dict, defaults: dict, labels: dict, panel_size) -> list:
    """One image per combination of the ``offered`` values (the first hyperparameter varies
    slowest, as in ``itertools.product``), the others at their ``defaults``."""
    from PIL import Image

    images = []
    for combination in itertools.product(*offered.values()):
        values = {**defaults, **dict(zip(offered, combination))}
        fig, ax = plt.subplots(figsize=(panel_size[0] * 1.6, panel_size[1] * 1.6))
        draw(ax, **values)
        ax.set_title(_title(values, labels))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=FRAME_DPI, facecolor="white")
        plt.close(fig)
        images.append(Image.open(buffer).convert("RGB"))
    return images


def _data_uri(image, scale: float) -> str:
    from PIL import Image

    if scale < 1.0:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    palette = image.quantize(FRAME_COLOURS, method=Image.Quantize.MEDIANCUT,
                             dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="png", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_PLAYERS = itertools.count()

PLAYER_CSS = """
.descent-explorer { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 1.5rem;
  color: inherit; margin: 0.25rem 0; }
.descent-explorer img { max-width: 100%; height: auto; }
.descent-explorer .explorer-controls { font-size: 0.9rem; max-width: 24rem; }
.descent-explorer .explorer-controls[hidden] { display: none; }
.descent-explorer .explorer-sliders { display: grid; align-items: center; gap: 0.4rem 0.6rem;
  grid-template-columns: max-content minmax(7rem, 12rem) max-content; }
.descent-explorer input[type=range] { width: 100%; margin: 0;
  accent-color: var(--pst-color-primary, #0072B2); }
.descent-explorer input[type=range]:focus-visible { outline: 2px solid currentColor;
  outline-offset: 2px; }
.descent-explorer output { font-variant-numeric: tabular-nums; font-weight: 600;
  min-width: 3.5em; }
.descent-explorer .explorer-note { margin: 0.5rem 0 0; font-size: 0.8rem; }
"""

# Finds its explorer by id; each slider's position is a digit of the frame's index, the first
# slider the most significant (as ``itertools.product`` orders the frames).
PLAYER_JS = """
(function () {
  var root = document.getElementById(%(id)s);
  var frames = %(frames)s, values = %(values)s, names = %(names)s;
  var image = root.querySelector("img.explorer-frame");
  var inputs = root.querySelectorAll("input[type=range]");
  var outputs = root.querySelectorAll("output");
  function show() {
    var index = 0, shown = [];
    for (var k = 0; k < inputs.length; k++) {
      var i = Number(inputs[k].value);
      index = index * values[k].length + i;
      outputs[k].textContent = values[k][i];
      inputs[k].setAttribute("aria-valuetext", values[k][i]);
      shown.push(names[k] + " = " + values[k][i]);
    }
    image.src = frames[index];
    image.alt = %(alt)s + shown.join(", ") + %(fixed)s;
  }
  for (var k = 0; k < inputs.length; k++) inputs[k].addEventListener("input", show);
  root.querySelector(".explorer-controls").hidden = false;
  show();
})();
"""


def player(draw, offered: dict, defaults: dict, labels: dict, panel_size=(3.2, 2.8),
           budget: int = SITE_BUDGET_BYTES) -> str:
    """The explorer as self-contained HTML of at most ``budget`` bytes: its frames, one
    labelled range input per offered hyperparameter with its value printed beside it, and the
    script that swaps the frames. The frames shrink together, if need be, to fit the budget."""
    images = render_frames(draw, offered, defaults, labels, panel_size)
    scale = 1.0
    while True:
        frames = [_data_uri(image, scale) for image in images]
        page = _player_html(frames, offered, defaults, labels)
        size = len(page.encode())
        if size <= budget:
            return page
        room = budget - (size - sum(map(len, frames)))
        if room <= 0:
            raise ValueError(f"Invalid budget: {budget!r} (the player alone takes more)")
        scale *= 0.97 * math.sqrt(room / sum(map(len, frames)))  # bytes grow with the pixels


def _player_html(frames: list[str], offered: dict, defaults: dict, labels: dict) -> str:
    digest = hashlib.sha1("".join(frames).encode()).hexdigest()[:8]
    uid = f"descent-explorer-{next(_PLAYERS)}-{digest}"
    start = [values.index(defaults[name]) if defaults[name] in values else len(values) // 2
             for name, values in offered.items()]
    index = 0
    for position, values in zip(start, offered.values()):
        index = index * len(values) + position
    esc = html.escape
    rows = []
    for k, (name, values) in enumerate(offered.items()):
        text = _text(values[start[k]])
        rows.append(
            f'<label for="{uid}-{k}">{esc(labels.get(name, name))}</label>'
            f'<input type="range" id="{uid}-{k}" min="0" max="{len(values) - 1}" step="1" '
            f'value="{start[k]}" aria-valuetext="{esc(text)}">'
            f'<output for="{uid}-{k}">{esc(text)}</output>')
    fixed = {name: value for name, value in defaults.items() if name not in offered}
    note = "Drawn ahead of time for these values: run this chapter in Jupyter or Colab to " \
           "draw any others"
    if fixed:
        note += f" and to move {_title(fixed, labels)}, fixed here"

    alt = "Explorer at "
    script = PLAYER_JS % {
        "id": json.dumps(uid), "frames": json.dumps(frames), "alt": json.dumps(alt),
        "fixed": json.dumps("".join(f", {_title({n: v}, labels)}" for n, v in fixed.items()),
                            ensure_ascii=False),
        "values": json.dumps([[_text(v) for v in values] for values in offered.values()],
                             ensure_ascii=False),
        "names": json.dumps([labels.get(name, name) for name in offered], ensure_ascii=False)}
    script = script.replace("</", "<\\/")  # nothing in it may close the <script> early
    shown = {**defaults, **{name: values[position] for (name, values), position in
                            zip(offered.items(), start)}}
    return (
        f'<div class="descent-explorer" id="{uid}"><style>{PLAYER_CSS}</style>'
        f'<img class="explorer-frame" src="{frames[index]}" '
        f'alt="{esc(alt + _title(shown, labels))}">'
        f'<div class="explorer-controls" role="group" aria-label="Explorer sliders" hidden>'
        f'<div class="explorer-sliders">{"".join(rows)}</div>'
        f'<p class="explorer-note">{esc(note)}.</p></div>'
        "<noscript><p>This explorer needs JavaScript to move; it shows "
        f"{esc(_title(shown, labels))}.</p></noscript>"
        f"<script>{script}</script></div>")


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
