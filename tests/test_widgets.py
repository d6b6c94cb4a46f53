"""Explorers: live sliders in a notebook, a player of precomputed frames on the website."""

import base64
import io
import itertools
import json
import re
from unittest import mock

import matplotlib
import pytest
from PIL import Image

matplotlib.use("Agg")

from optcore import widgets  # noqa: E402

SLIDERS = {"lr": [0.1, 0.2, 0.3], "batch_size": [1, 10]}
STATIC = {"lr": [0.1, 0.3], "batch_size": [1, 10]}


def _captured_display(mode, monkeypatch, static_env=None):
    if static_env:
        monkeypatch.setenv(widgets.STATIC_SITE_ENV, static_env)
    shown, calls = [], []

    def draw(ax, lr, batch_size):
        calls.append((lr, batch_size))
        ax.plot([0, 1], [lr, batch_size])

    with mock.patch("IPython.display.display", side_effect=shown.append):
        widgets.explorer(draw, sliders=SLIDERS, static=STATIC, labels={"lr": "η"}, mode=mode)
    return shown, calls


def parts(page: str):
    """The frames the player's script holds, the first frame shown, and the script."""
    script = re.search(r"<script>(.*?)</script>", page, flags=re.S)[1]
    frames = json.loads(re.search(r"var frames = (\[.*?\]),", script)[1])
    shown = re.search(r'<img class="explorer-frame" src="([^"]+)"', page)[1]
    return frames, shown, script


def pixels(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_site_sliders_are_every_combination_when_few_enough():
    assert widgets.site_values(SLIDERS, STATIC) == SLIDERS


def test_site_sliders_fall_back_to_the_static_names_then_to_their_static_values():
    sliders = {"a": list(range(10)), "b": list(range(10)), "c": [1, 2]}
    # 200 combinations: the site moves the static hyperparameters over all their slider values
    assert widgets.site_values(sliders, {"a": [0, 5], "c": [1]}) == {"a": sliders["a"],
                                                                     "c": [1, 2]}
    # 100 of those are still too many: only the values `static` names
    assert widgets.site_values(sliders, {"a": [0, 9], "b": [3, 4, 5]}) == {"a": [0, 9],
                                                                           "b": [3, 4, 5]}
    # and `site` overrides the choice
    assert widgets.site_values(sliders, {"a": [0]}, site={"b": [1, 2]}) == {"b": [1, 2]}


@pytest.mark.parametrize("static, site, message", [
    ({"x": [1]}, None, "Invalid static"),
    ({"lr": [0.1], "batch_size": [1], "other": [2]}, None, "Invalid static"),
    (STATIC, {"y": [1]}, "Invalid site"),
])
def test_site_sliders_reject_names_without_a_slider(static, site, message):
    with pytest.raises(ValueError, match=message):
        widgets.site_values(SLIDERS, static, site)


def test_player_draws_one_frame_per_combination_in_the_order_the_script_indexes():
    calls = []

    def draw(ax, lr, batch_size, momentum):
        calls.append((lr, batch_size, momentum))
        ax.plot([0, 1], [lr, batch_size])

    defaults = {"lr": 0.2, "batch_size": 10, "momentum": 0.9}
    page = widgets.player(draw, SLIDERS, defaults, {"lr": "η"})
    frames, shown, script = parts(page)
    combinations = list(itertools.product(*SLIDERS.values()))
    assert calls == [(lr, b, 0.9) for lr, b in combinations]  # the others at their default
    assert len(frames) == len(set(frames)) == 6
    # The script reads slider k's position as digit k of the index, the first the most
    # significant: the starting frame (η = 0.2, batch size 10) is combination 1·2 + 1.
    assert "index = index * values[k].length + i" in script
    assert frames.index(shown) == combinations.index((0.2, 10)) == 3
    assert 'value="1"' in page and 'max="2"' in page and 'max="1"' in page
    assert '<output for="' in page and ">0.2</output>" in page and ">10</output>" in page
    assert "momentum = 0.9, fixed here" in page  # the fixed hyperparameter is named


def test_player_is_self_contained_with_a_fallback_and_labelled_sliders():
    page = widgets.player(lambda ax, lr, batch_size: ax.plot([lr, batch_size]), SLIDERS,
                          {"lr": 0.2, "batch_size": 10}, {"lr": "η"})
    assert "<script src" not in page and "http" not in page and "<link" not in page
    assert "<noscript>" in page and "η = 0.2, batch_size = 10" in page
    ids = re.findall(r'<input type="range" id="([^"]+)"', page)
    assert len(ids) == 2 and all(f'<label for="{i}">' in page for i in ids)
    assert "hidden>" in page  # the sliders show only once the script runs
    other = widgets.player(lambda ax, lr, batch_size: ax.plot([lr, batch_size]), SLIDERS,
                           {"lr": 0.2, "batch_size": 10}, {"lr": "η"})
    assert not set(re.findall(r'id="([^"]+)"', page)) & set(re.findall(r'id="([^"]+)"', other))


def test_player_shrinks_its_frames_to_fit_the_budget():
    def draw(ax, lr, batch_size):
        ax.imshow(Image.effect_noise((256, 256), 60 * lr), cmap="viridis")  # compresses badly

    defaults = {"lr": 0.2, "batch_size": 10}
    full = widgets.player(draw, SLIDERS, defaults, {})
    budget = len(full.encode()) // 3
    small = widgets.player(draw, SLIDERS, defaults, {}, budget=budget)
    assert len(full.encode()) <= widgets.SITE_BUDGET_BYTES and len(small.encode()) <= budget
    (large_frame, *_), _, _ = parts(full)
    (small_frame, *_), _, _ = parts(small)
    assert pixels(large_frame).width == round(3.2 * 1.6 * widgets.FRAME_DPI)
    # size grows with the pixel count, so a third of the bytes is about 1/√3 of the width
    assert 0.4 < pixels(small_frame).width / pixels(large_frame).width < 1 / 3 ** 0.5 + 0.02


def test_explorer_shows_the_player_on_the_website_build_and_sliders_elsewhere(monkeypatch):
    shown, calls = _captured_display(None, monkeypatch, static_env="1")
    assert len(shown) == 1 and 'class="descent-explorer"' in shown[0].data
    assert sorted(calls) == sorted(itertools.product(*SLIDERS.values()))
    monkeypatch.delenv(widgets.STATIC_SITE_ENV)
    shown, calls = _captured_display(None, monkeypatch)
    import ipywidgets
    assert isinstance(shown[0], ipywidgets.VBox)
    sliders = shown[0].children[0].children
    assert [s.description for s in sliders] == ["η", "batch_size"]
    assert [s.value for s in sliders] == [0.2, 10]  # each slider starts mid-list
    sliders[0].value = 0.3
    assert calls[-1] == (0.3, 10)  # moving a slider redraws


def test_explorer_checks_the_site_values_in_the_notebook_too():
    with pytest.raises(ValueError, match="Invalid site"):
        widgets.explorer(lambda ax, a: None, sliders={"a": [1, 2]}, static={"a": [1]},
                         site={"b": [1]}, mode="live")


def test_explorer_rejects_a_bad_mode():
    with pytest.raises(ValueError, match="Invalid mode"):
        widgets.explorer(lambda ax, a: None, sliders={"a": [1]}, static={"a": [1]}, mode="x")
