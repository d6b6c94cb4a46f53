"""optcore's optimizers: drop-in replacements for torch.optim, with the math written out."""

from .base import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD"]
