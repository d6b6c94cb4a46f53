"""Adafactor: factored second moments (chapter 15). The contract is in test_contract.py."""

import torch

from optcore.optim.adafactor import Adafactor
from optcore.training import Run, max_rel_error
from parity import RTOL, assert_same_state_layout


def test_adafactor_factors_the_last_two_dims_of_a_3d_tensor_and_keeps_scalars_whole():
    """A (2, 3, 4) stack keeps row_var (2, 3, 1) and col_var (2, 1, 4), 2·(3+4) = 14 numbers
    instead of 24; a vector and a 0-d scalar keep a full `variance`; 25 steps agree with torch
    to 1e-9, also with a shape-(1,) tensor lr."""
    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(2, 3, 4, generator=gen, dtype=torch.float64),
            torch.randn(5, generator=gen, dtype=torch.float64),
            torch.tensor(0.7, dtype=torch.float64)]
    targets = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in init]
    runs = []
    for cls in (Adafactor, torch.optim.Adafactor):
        params = [p.clone().requires_grad_() for p in init]
        opt = cls(params, lr=torch.tensor([0.05]), weight_decay=0.01)
        snapshots = []
        for _ in range(25):
            opt.zero_grad()
            sum(((p - q) ** 2 * (1 + p.tanh() ** 2)).sum()
                for p, q in zip(params, targets)).backward()
            opt.step()
            snapshots.append([p.detach().clone() for p in params])
        runs.append(Run([], snapshots, None, opt))
    assert max_rel_error(runs[0], runs[1]) <= RTOL
    assert_same_state_layout(runs[0].optimizer, runs[1].optimizer)
    state = [runs[0].optimizer.state[p] for p in runs[0].optimizer.param_groups[0]["params"]]
    assert state[0]["row_var"].shape == (2, 3, 1) and state[0]["col_var"].shape == (2, 1, 4)
    assert state[1]["variance"].shape == (5,) and state[2]["variance"].shape == ()


def test_missing_eps1_is_the_first_parameters_machine_epsilon_for_the_whole_group():
    """eps=(None, …): torch takes ε₁ from the group's first parameter (here bfloat16, 2⁻⁷) and
    uses it for the float32 one too; optcore the same, so the float32 matrix is bitwise torch's."""
    gen = torch.Generator().manual_seed(0)
    shapes = [((4, 3), torch.bfloat16), ((5, 6), torch.float32)]
    starts = [torch.randn(s, generator=gen).to(d) for s, d in shapes]
    runs = []
    for cls in (Adafactor, torch.optim.Adafactor):
        ps = [x.clone().requires_grad_() for x in starts]
        opt = cls(ps, lr=0.01, foreach=False) if cls is torch.optim.Adafactor else cls(ps, lr=0.01)
        g = torch.Generator().manual_seed(1)
        for _ in range(5):
            for p in ps:
                p.grad = (torch.randn(p.shape, generator=g) * 1e-3).to(p.dtype)
            opt.step()
        runs.append(ps)
    assert all(torch.equal(a, b) for a, b in zip(*runs))
