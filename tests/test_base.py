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
    saved = torch.optim.NAdam([torch.ones(3, requires_grad=True)], foreach=True).state_dict()
    opt = optcore.NAdam([w])
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


def test_by_default_a_step_failing_in_an_update_stays_half_done():
    """undo_failed_steps is off by default (the copy it takes costs a full-size allocation per
    tensor per step): a failure in the second tensor's update leaves the first tensor
    updated. (tests/test_contract.py opts in and checks the undo.)"""
    a, b = (torch.ones(2, requires_grad=True) for _ in range(2))
    opt = optcore.SGD([a, b], lr=0.5)
    assert opt.undo_failed_steps is False
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


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Rprop"])
def test_a_state_dict_of_another_model_is_refused_before_any_tensor_changes(name):
    """load_state_dict matches parameters by position only. A second tensor's state of the
    wrong shape is refused with ValueError naming the entry and both shapes, and the first
    tensor, though listed before it, has not moved: the check runs before the first write."""
    kwargs = dict(lr=0.1, momentum=0.9) if name == "SGD" else dict(lr=0.1)
    cls = getattr(optcore, name)

    def stepped(shapes):
        params = [torch.ones(shape, requires_grad=True) for shape in shapes]
        opt = cls(params, **kwargs)
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        return params, opt

    _, other = stepped([(3,), (5,)])
    params, opt = stepped([(3,), (4,)])
    opt.load_state_dict(other.state_dict())
    before = [p.detach().clone() for p in params]
    with pytest.raises(ValueError, match=r"state\[.*\(5,\).*\(4,\)"):
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(params, before, strict=True))
