"""Where to compute, and how to make a run repeatable."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def device() -> torch.device:
    """The accelerator when there is one (CUDA), else the CPU.

    Set ``OPTCORE_DEVICE=cpu`` (or ``cuda:1``, ...) to choose explicitly. Chapters take their
    device from here and scale the work by it, so the same cell runs on a laptop and a GPU.
    """
    chosen = os.environ.get("OPTCORE_DEVICE")
    if chosen:
        return torch.device(chosen)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's generators (torch's on every device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
