"""optcore's optimizers: drop-in replacements for torch.optim, with the math written out,
plus seven that torch lacks (Lion, SignSGD, Shampoo, SOAP, schedule-free SGD and AdamW, and
8-bit Adam)."""

from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adam8bit import Adam8bit
from .adamax import Adamax
from .asgd import ASGD
from .base import Optimizer
from .lbfgs import LBFGS
from .lion import Lion
from .muon import Muon, MuonWithAdamW, muon_param_groups
from .nadam import NAdam
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedule_free import AdamWScheduleFree, SGDScheduleFree
from .sgd import SGD
from .shampoo import Shampoo
from .sign import SignSGD
from .soap import SOAP
from .sparse_adam import SparseAdam

__all__ = [
    "Optimizer",
    # counterparts of torch.optim's 15
    "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "RAdam",
    "Rprop", "ASGD", "SparseAdam", "Adafactor", "Muon", "LBFGS",
    # not in torch.optim
    "Lion", "SignSGD", "Shampoo", "SOAP", "SGDScheduleFree", "AdamWScheduleFree",
    "Adam8bit", "MuonWithAdamW",
]
