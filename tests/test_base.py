"""optcore.optim.base: what the step loop does for every optimizer, beyond the contract."""

import pytest
import torch

import optcore


def test_a_refused_step_leaves_the_state_dict_as_it_was():
    """A sparse gradient in the second group is refused before anything changes: no state
    entry appears for the first group's parameter either."""
    w = torch.ones(3, requires_grad=True)
    emb = torch.nn.Embedding(4, 2, sparse=True)
    opt = optcore.Adam([{"params": [w]}, {"params": emb.parameters()}])
    w.grad = torch.ones(3)
    emb(torch.tensor([1])).sum().backward()
    before = opt.state_dict()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
    assert opt.state_dict() == before and torch.equal(w, torch.ones(3))


def test_a_speed_switch_restored_by_load_state_dict_is_refused_at_the_next_step():
    """A torch checkpoint saved with foreach=True brings the switch back; the step refuses it
    rather than ignoring it."""
    w = torch.ones(3, requires_grad=True)
    saved = torch.optim.Adam([torch.ones(3, requires_grad=True)], foreach=True).state_dict()
    opt = optcore.Adam([w])
    opt.load_state_dict(saved)
    w.grad = torch.ones(3)
    with pytest.raises(NotImplementedError, match="foreach"):
        opt.step()


def test_a_complex_state_tensor_stays_the_same_object_across_steps():
    """Updated in place through its real view, Adam's complex exp_avg is one tensor for good
    (a view re-created every step would break references a user holds)."""
    z = torch.ones(3, dtype=torch.complex64, requires_grad=True)
    opt = optcore.Adam([z], lr=0.1)
    z.grad = torch.ones(3, dtype=torch.complex64)
    opt.step()
    m = opt.state[z]["exp_avg"]
    opt.step()
    assert opt.state[z]["exp_avg"] is m and m.dtype == torch.complex64


def test_undo_can_be_switched_off_and_then_a_failed_step_stays_half_done():
    """undo_failed_steps = False skips the copy: a failure in the second tensor's update then
    leaves the first tensor updated (which is what the default prevents)."""
    a, b = (torch.ones(2, requires_grad=True) for _ in range(2))
    opt = optcore.SGD([a, b], lr=0.5)
    opt.undo_failed_steps = False
    calls = []

    def update(param, grad, state, group):
        calls.append(param)
        if len(calls) == 2:
            raise RuntimeError("injected")
        optcore.SGD.update(opt, param, grad, state, group)

    opt.update = update
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    with pytest.raises(RuntimeError, match="injected"):
        opt.step()
    assert torch.equal(a, torch.full((2,), 0.5)) and torch.equal(b, torch.ones(2))


@pytest.mark.parametrize("name", ["Adam", "NAdam", "RAdam"])
def test_checkpoint_saved_before_decoupled_weight_decay_existed_loads_and_steps(name):
    """A state_dict whose groups lack "decoupled_weight_decay" (older torch) loads, and the
    optimizer then steps as torch's does: the switch defaults to off."""
    runs = []
    for cls in (getattr(optcore, name), getattr(torch.optim, name)):
        w = torch.ones(4, dtype=torch.float64, requires_grad=True)
        opt = cls([w], lr=0.1, weight_decay=0.1)
        saved = opt.state_dict()
        del saved["param_groups"][0]["decoupled_weight_decay"]
        opt.load_state_dict(saved)
        for _ in range(3):
            w.grad = w.detach() * 2
            opt.step()
        runs.append(w.detach())
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], torch.ones(4).double())
