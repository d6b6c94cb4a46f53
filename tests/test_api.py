"""optcore offers a counterpart of every torch.optim optimizer, with the same signature."""

import inspect

import pytest
import torch

import optcore

TORCH_OPTIMIZERS = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam",
                    "RAdam", "Rprop", "ASGD", "SparseAdam", "Adafactor", "Muon", "LBFGS"]


def test_torch_has_exactly_these_optimizers():
    found = sorted(name for name, obj in vars(torch.optim).items()
                   if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
                   and obj is not torch.optim.Optimizer)
    assert found == sorted(TORCH_OPTIMIZERS)


@pytest.mark.parametrize("name", TORCH_OPTIMIZERS)
def test_counterpart_has_torch_signature(name):
    ours, theirs = getattr(optcore, name), getattr(torch.optim, name)
    assert issubclass(ours, torch.optim.Optimizer)
    assert shape(ours) == shape(theirs)


def shape(cls):
    """Names, kinds (positional or keyword-only) and defaults of the constructor's arguments;
    type annotations are left out (torch annotates, optcore's docstrings say the types)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(cls.__init__).parameters.values()]


@pytest.mark.parametrize("name", ["Lion", "SignSGD", "Shampoo", "SOAP", "Adam8bit",
                                  "SGDScheduleFree", "AdamWScheduleFree"])
def test_optimizers_torch_lacks_are_exported(name):
    assert issubclass(getattr(optcore, name), torch.optim.Optimizer)
    assert not hasattr(torch.optim, name)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW",
                                  "Adamax", "NAdam", "RAdam", "ASGD", "Adafactor", "Lion",
                                  "SignSGD", "Shampoo", "SOAP", "Adam8bit"])
def test_one_element_tensor_lr_keeps_a_scalar_parameter_scalar(name):
    w = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    opt = getattr(optcore, name)([w], lr=torch.tensor([0.1], dtype=torch.float64))
    for _ in range(3):
        opt.zero_grad()
        (w**2).backward()
        opt.step()
    assert w.shape == () and w.item() < 1.0
