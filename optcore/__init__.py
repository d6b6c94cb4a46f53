"""optcore: the small library behind *Descent*, an executable textbook on optimizers."""

from .optim import SGD, Optimizer

__all__ = ["SGD", "Optimizer"]
