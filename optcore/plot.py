"""The book's one figure style: contours with trajectories, loss curves, animations.

Colours are the Okabe–Ito palette, which stays distinguishable under the common forms of
colour blindness. Figures have white backgrounds so that they stay legible in dark mode.
"""

from __future__ import annotations

import re

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation

from .problems import Problem
from .trace import Trace

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]

STYLE = {
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "figure.figsize": (6.0, 4.0),
    "figure.dpi": 100,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "figure.constrained_layout.use": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "animation.embed_limit": 8.0,  # MB; an animation that large is a mistake on a web page
}


def use_style() -> None:
    """Apply the house style to every later figure (chapters call this in their setup)."""
    mpl.rcParams.update(STYLE)


def contour(ax, problem: Problem, levels: int = 18, resolution: int = 160) -> None:
    """Contours of ``problem`` over its plotting box, spaced geometrically above the minimum
    so that both the floor of a valley and its walls show, with the minimizer marked ★."""
    x_min, x_max, y_min, y_max = problem.bounds
    xs = torch.linspace(x_min, x_max, resolution, dtype=torch.float64)
    ys = torch.linspace(y_min, y_max, resolution, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    Z = problem.f(torch.stack([X, Y], dim=-1))
    floor = Z.min().item() if problem.min_value is None else min(problem.min_value, Z.min().item())
    gap = (Z - floor).clamp_min(1e-12)
    top = gap.max().item()
    lv = torch.logspace(torch.log10(torch.tensor(top)).item() - 5, torch.log10(torch.tensor(top)).item(),
                        levels).tolist()
    ax.contourf(X, Y, gap, levels=lv, norm=mpl.colors.LogNorm(), cmap="Greys", alpha=0.22)
    ax.contour(X, Y, gap, levels=lv, colors="0.45", linewidths=0.5)
    if problem.minimizer is not None:
        m = problem.minimizer
        ax.plot(m[0], m[1], marker="*", markersize=13, color="black", linestyle="none",
                label="minimum", zorder=5)
    ax.set(xlim=(x_min, x_max), ylim=(y_min, y_max), xlabel=r"$\theta_1$", ylabel=r"$\theta_2$")
    ax.set_aspect("equal")
    ax.grid(False)


def trajectories(ax, traces: list[Trace], markers: bool = True) -> None:
    """Draw each run's path θ₀ → θ_T; a hollow circle marks the start."""
    for i, trace in enumerate(traces):
        path = trace.thetas
        colour = PALETTE[i % len(PALETTE)]
        ax.plot(path[:, 0], path[:, 1], color=colour, marker="o" if markers else None,
                markersize=2.5, label=trace.label, zorder=3)
        ax.plot(path[0, 0], path[0, 1], marker="o", markersize=7, markerfacecolor="white",
                color=colour, zorder=4)


def loss_curves(ax, traces: list[Trace], optimum: float | None = None) -> None:
    """Suboptimality L(θ_t) − L* against the step on a log scale (or the loss itself when
    the optimum is not given)."""
    for trace in traces:
        values = trace.losses if optimum is None else trace.losses - optimum
        ax.plot(range(trace.steps + 1), values.clamp_min(1e-300), label=trace.label)
    ax.set_yscale("log")
    ax.set_xlabel("step $t$")
    ax.set_ylabel(r"$L(\theta_t)$" if optimum is None else r"$L(\theta_t) - L^\star$")


def rate_map(ax, lrs, momenta, rates, levels=(0.5, 0.8, 0.9, 0.95, 0.99)):
    """The convergence rate over a grid of learning rates (rows of ``rates``) and momenta
    (columns), as from ``rates.convergence_rate(eig, lrs[:, None], momenta[None, :])``.
    Darker is faster; white is divergence (rate ≥ 1); labelled contours mark chosen rates."""
    lrs, momenta, rates = (torch.as_tensor(x, dtype=torch.float64).numpy()
                           for x in (lrs, momenta, rates))
    shown = np.ma.masked_where(rates >= 1, rates)
    mesh = ax.pcolormesh(momenta, lrs, shown, cmap="viridis", vmin=0, vmax=1, shading="auto")
    lines = ax.contour(momenta, lrs, rates, levels=list(levels), colors="white", linewidths=0.7)
    ax.clabel(lines, fontsize=7, fmt="%g")
    ax.contour(momenta, lrs, rates, levels=[1.0], colors="black", linewidths=1.2)
    ax.set(xlabel=r"momentum $\beta$", ylabel=r"learning rate $\eta$")
    ax.grid(False)
    return mesh


def animate(problem: Problem, traces: list[Trace], frames: int = 30, interval: int = 150,
            title: str = ""):
    """An animation of the runs moving over the contours, as self-contained HTML and
    JavaScript (matplotlib's jshtml): it plays on the static website without a kernel."""
    from IPython.display import HTML

    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=72)
    contour(ax, problem)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(traces))]
    lines = [ax.plot([], [], color=c, marker="o", markersize=2.5, label=t.label)[0]
             for c, t in zip(colours, traces)]
    heads = [ax.plot([], [], color=c, marker="o", markersize=7)[0] for c in colours]
    if any(t.label for t in traces):
        ax.legend(loc="upper right")
    longest = max(t.steps for t in traces)
    shown = torch.linspace(0, longest, frames).round().long().tolist()

    def draw(frame):
        step = shown[frame]
        for line, head, trace in zip(lines, heads, traces):
            k = min(step, trace.steps)
            line.set_data(trace.thetas[: k + 1, 0], trace.thetas[: k + 1, 1])
            head.set_data(trace.thetas[k : k + 1, 0], trace.thetas[k : k + 1, 1])
        ax.set_title(f"{title}  step {step}".strip())
        return [*lines, *heads]

    animation = FuncAnimation(fig, draw, frames=frames, interval=interval, blit=False)
    html = animation.to_jshtml(default_mode="once")
    plt.close(fig)
    return HTML(_self_contained(html))


# matplotlib's player draws its buttons with Font Awesome 4 icons fetched from a CDN. Plain
# symbols that every text font has need no network and look the same on the website, in
# Jupyter and in Colab (media-control code points such as ⏸ are missing from many fonts).
_ICONS = {
    "fa fa-fast-backward": "«", "fa fa-step-backward": "‹", "fa fa-play fa-flip-horizontal": "◀",
    "fa fa-pause": "||", "fa fa-play": "▶", "fa fa-step-forward": "›",
    "fa fa-fast-forward": "»", "fa fa-minus": "−", "fa fa-plus": "+",
}


def _self_contained(html: str) -> str:
    html = re.sub(r'<link rel="stylesheet"\s+href="[^"]*font-awesome[^"]*">', "", html)
    for icon, symbol in _ICONS.items():
        html = html.replace(f'<i class="{icon}"></i>', symbol)
    return html
