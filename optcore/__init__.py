"""optcore: the small library behind *Descent*, an executable textbook on optimizers.

The optimizers are drop-in replacements for ``torch.optim`` with the math written out; the
modules around them give the chapters problems to solve, runs to trace, and figures to draw.
"""

from . import (attacks, curvature, distributed, memory, parallel_runs, plot, problems, rates,
               schedules, search, trace, training, tuning, widgets)
from .device import device, seed_everything
from .optim import *  # noqa: F401,F403 (the optimizers, listed in optim.__all__)
from .optim import __all__ as _optimizers

__all__ = ["device", "seed_everything", "attacks", "curvature", "distributed", "memory",
           "parallel_runs", "plot", "problems", "rates", "schedules", "search", "trace",
           "training", "tuning", "widgets", *_optimizers]
