"""optcore.parallel_runs, the workers of chapter 18 (ch-distributed), run in this process as a
process group of one rank (gloo), without spawning: with one rank every scheme must train
exactly the network that one process trains without torch.distributed, hold all the state,
and hand the collectives the payloads the chapter derives (Ψ = 4257 float64 parameters)."""

import os

import pytest
import torch
import torch.distributed as dist

import optcore
from optcore import training
from optcore.distributed import free_port
from optcore.memory import state_bytes
from optcore.parallel_runs import all_schemes, count_collectives, deep_net, my_share

PSI = 4 * (32 * 32 + 32) + 32 + 1  # four Linear(32, 32) and a Linear(32, 1)


@pytest.fixture(scope="module")
def one_rank():
    """A process group of one rank in this process; destroyed afterwards."""
    saved = {k: os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT")}
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        yield all_schemes(0, 1, 4, 1e-2)
    finally:
        dist.destroy_process_group()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_deep_net_has_four_equal_matrices_and_is_seeded():
    net = deep_net()
    assert sum(p.numel() for p in net.parameters()) == PSI
    assert [tuple(p.shape) for p in net.parameters()][:2] == [(32, 32), (32,)]
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), deep_net().parameters()))


def test_my_share_splits_every_batch_into_equal_consecutive_parts():
    batches = training.regression_batches(2, inputs=3, size=8)
    parts = [my_share(batches, r, 4) for r in range(4)]
    for k, (x, y) in enumerate(batches):
        assert torch.equal(torch.cat([p[k][0] for p in parts]), x)
        assert torch.equal(torch.cat([p[k][1] for p in parts]), y)
        assert all(p[k][0].shape[0] == 2 for p in parts)


def test_count_collectives_restores_torch_distributed():
    before = dist.all_reduce
    with count_collectives() as counts:
        assert dist.all_reduce is not before
    assert dist.all_reduce is before and counts == {}


@pytest.mark.parametrize("name, make", [("Adam", optcore.Adam), ("Adafactor", optcore.Adafactor)])
def test_every_scheme_on_one_rank_is_the_single_process_run(one_rank, name, make):
    net = deep_net()
    opt = make(net.parameters(), lr=1e-2)
    path = training.fit(net, opt, training.regression_batches(4, inputs=32, size=32)).path()
    schemes = [k for k in one_rank if isinstance(one_rank[k], dict) and k.endswith(name)
               and "path" in one_rank[k]]
    assert len(schemes) == (4 if name == "Adam" else 2)  # DDP, ZeRO (torch, optcore), FSDP2
    for scheme in schemes:
        assert torch.equal(one_rank[scheme]["path"], path), scheme
        assert one_rank[scheme]["state_bytes"] == state_bytes(opt), scheme


def test_payloads_per_step_are_the_parameters_bytes(one_rank):
    steps, b = 4, 8
    assert one_rank["DDP Adam"]["sent"] == {"all_reduce": steps * PSI * b}
    assert one_rank["ZeRO1 Adam"]["sent"] == {"all_reduce": steps * PSI * b,
                                              "broadcast": steps * PSI * b}
    # FSDP2 skips its all-gathers and reduce-scatters when there is one rank (the chapter
    # counts them with two: twice Ψ' gathered, Ψ' scattered per step)
    assert one_rank["FSDP2 Adam"]["sent"] == {}


def test_fsdp2_refuses_adafactor_with_a_sharding_error(one_rank):
    assert "Sharding propagation failed" in one_rank["FSDP2 Adafactor"]["error"]
