"""optcore.attacks (chapter 22): projections, FGSM, PGD, and what an attack must not touch."""

import pytest
import torch

from optcore import attacks, training

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def trained():
    """A digits classifier (trained 300 steps) and 100 test inputs in [0, 1]; the network sees
    the standardized features, so the test inputs are mapped to the unit box first."""
    data = training.digits()
    run = training.train_digits(torch.optim.Adam, steps=300, lr=3e-3, data=data)
    lo, hi = data.x_train.min(0).values, data.x_train.max(0).values
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    model = torch.nn.Sequential(attacks.Standardize(-lo / span, 1 / span), run.net)
    x = ((data.x_test[:100] - lo) / span).clamp(0, 1)
    return model, x, data.y_test[:100]


def ball_members(n, d, eps, norm, gen):
    """Random members of the ball: half on its boundary, half inside."""
    c = attacks.random_start(torch.zeros(n, d, dtype=torch.float64), eps, norm, gen)
    edge = eps * c[: n // 2].sign() if norm == "inf" else attacks.project_l2(1e3 * c[: n // 2], eps)
    return torch.cat([edge, c[n // 2:]])


@pytest.mark.parametrize("norm,p", [("inf", float("inf")), ("2", 2)])
def test_projection_is_the_closest_point_idempotent_and_non_expansive(norm, p):
    """p = Π(z) satisfies (z − p)ᵀ(c − p) ≤ 0 for 4000 members c of the ball, no member is
    closer to z, Π(p) = p to 1e-15, and ‖Π(a) − Π(b)‖ ≤ ‖a − b‖, for 100 points in 16-d."""
    gen = torch.Generator().manual_seed(0)
    z = 2 * torch.randn(100, 16, generator=gen, dtype=torch.float64)
    eps = 1.5
    proj = attacks.project(z, eps, norm)
    c = ball_members(4000, 16, eps, norm, gen)
    assert (torch.linalg.vector_norm(proj, ord=p, dim=1) <= eps * (1 + 1e-12)).all()
    assert (((z - proj) @ c.T) - ((z - proj) * proj).sum(1, keepdim=True) <= 1e-9).all()
    assert (torch.linalg.vector_norm(z - proj, dim=1) <= torch.cdist(z, c).amin(1) + 1e-12).all()
    assert torch.allclose(attacks.project(proj, eps, norm), proj, rtol=1e-15, atol=0)
    other = attacks.project(z.flip(0), eps, norm)
    assert (torch.linalg.vector_norm(proj - other, dim=1)
            <= torch.linalg.vector_norm(z - z.flip(0), dim=1) + 1e-12).all()
    inside = 0.1 * z / torch.linalg.vector_norm(z, ord=p, dim=1, keepdim=True)
    assert torch.equal(attacks.project(inside, eps, norm), inside)  # points inside stay


def test_l2_random_start_is_uniform_in_the_ball():
    """For a uniform point of the d-ball, (‖δ‖/ε)^d is uniform on [0, 1]: its mean over 20,000
    draws is ½ to within 0.01 (five standard errors), and no point leaves the ball."""
    delta = attacks.random_start(torch.zeros(20000, 8), 0.3, "2", torch.Generator().manual_seed(0))
    r = torch.linalg.vector_norm(delta.double(), dim=1) / 0.3
    assert r.max() <= 1 + 1e-6
    assert abs((r ** 8).mean().item() - 0.5) < 0.01


@pytest.mark.parametrize("device", DEVICES)
def test_fgsm_is_one_signed_step_clipped_to_the_box(trained, device):
    """FGSM equals clip(x + ε sign ∇ₓ CE) with the gradient computed independently by
    backward(), equals PGD with one step of length ε and no random start, and stays inside
    the L∞ ball and [0, 1]."""
    model, x, y = (t.to(device) for t in trained)
    eps = 0.05
    xr = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(xr), y, reduction="sum").backward()
    expected = (x + eps * xr.grad.sign()).clamp(0, 1)
    model.zero_grad(set_to_none=True)
    adv = attacks.fgsm(model, x, y, eps)
    assert adv.device.type == device
    assert torch.equal(adv, expected)
    assert torch.equal(attacks.pgd(model, x, y, eps, steps=1, alpha=eps, random_init=False), adv)
    assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_pgd_respects_the_budget_and_beats_fgsm_loss(trained, norm):
    """PGD (20 steps, 2 restarts) stays within ε = 0.05 (L∞) or 0.4 (L2) and [0, 1], and its
    mean cross-entropy is higher than FGSM's (the L2 FGSM baseline being its one-step case)."""
    model, x, y = trained
    eps = 0.05 if norm == "inf" else 0.4
    adv = attacks.pgd(model, x, y, eps, steps=20, restarts=2, norm=norm,
                      generator=torch.Generator().manual_seed(0))
    ord_ = float("inf") if norm == "inf" else 2
    assert (torch.linalg.vector_norm(adv - x, ord=ord_, dim=1) <= eps * (1 + 1e-5)).all()
    assert adv.min() >= 0 and adv.max() <= 1
    one = attacks.pgd(model, x, y, eps, steps=1, alpha=eps, random_init=False, norm=norm)
    with torch.no_grad():
        assert attacks.cross_entropy(model(adv), y).mean() > attacks.cross_entropy(
            model(one), y).mean()
    if norm == "inf":
        assert torch.equal(one, attacks.fgsm(model, x, y, eps))


def test_restarts_keep_each_examples_worst_case(trained):
    """With restarts, every example's final margin loss is at least that of the first restart
    alone (same generator seed, so the first restart is the same run)."""
    model, x, y = trained
    kw = dict(steps=5, loss_fn=attacks.margin_loss)
    one = attacks.pgd(model, x, y, 0.03, generator=torch.Generator().manual_seed(3), **kw)
    three = attacks.pgd(model, x, y, 0.03, restarts=3, generator=torch.Generator().manual_seed(3),
                        **kw)
    with torch.no_grad():
        assert (attacks.margin_loss(model(three), y) >= attacks.margin_loss(model(one), y)).all()


def test_attacks_are_deterministic_given_the_generator(trained):
    """Same seed, same adversarial batch, bit for bit; another seed, another batch."""
    model, x, y = trained
    run = lambda seed: attacks.pgd(model, x, y, 0.05, steps=3,  # noqa: E731
                                   generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_attack_uses_eval_mode_restores_modes_and_leaves_param_grads_alone(trained):
    """With dropout in train mode, FGSM and PGD equal the attack on the same network without
    dropout (eval mode was used); afterwards each submodule has its own mode back (a mixed
    model stays mixed), and parameter gradients are exactly what they were (None stays None,
    an existing .grad is unchanged)."""
    model, x, y = trained
    standardize, net = model
    dropped = torch.nn.Sequential(standardize, net[0], net[1], torch.nn.Dropout(0.5), net[2])
    dropped.train()
    net[0].eval()  # a mixed model
    for p in net.parameters():
        p.grad = None
    net[2].weight.grad = torch.ones_like(net[2].weight)
    kw = dict(steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(attacks.fgsm(dropped, x, y, 0.05), attacks.fgsm(model, x, y, 0.05))
    assert torch.equal(attacks.pgd(dropped, x, y, 0.05, **kw),
                       attacks.pgd(model, x, y, 0.05, steps=3,
                                   generator=torch.Generator().manual_seed(0)))
    assert dropped.training and dropped[3].training and not net[0].training
    assert net[0].weight.grad is None and net[0].bias.grad is None and net[2].bias.grad is None
    assert torch.equal(net[2].weight.grad, torch.ones_like(net[2].weight))
    net[2].weight.grad = None
    model.eval()


def test_margin_loss_is_positive_exactly_on_mistakes_and_does_not_saturate(trained):
    """margin > 0 ⇔ misclassified; with logits scaled by 1000 the cross-entropy's input
    gradient is exactly zero on correct examples, the margin's gradient sign is unchanged."""
    model, x, y = trained
    with torch.no_grad():
        logits = model(x)
    assert torch.equal(attacks.margin_loss(logits, y) > 0, logits.argmax(1) != y)

    class Scale(torch.nn.Module):
        def forward(self, z):
            return 1000 * z

    scaled = torch.nn.Sequential(model, Scale())
    correct = logits.argmax(1) == y
    ce = attacks.input_gradient(scaled, x, y)
    assert (ce[correct] == 0).all()
    m_plain = attacks.input_gradient(model, x, y, attacks.margin_loss).sign()
    m_scaled = attacks.input_gradient(scaled, x, y, attacks.margin_loss).sign()
    assert (m_plain == m_scaled).double().mean() > 0.999


@pytest.mark.parametrize("kwargs,name", [
    (dict(eps=-0.1), "eps"), (dict(norm="1"), "norm"), (dict(steps=0), "steps"),
    (dict(restarts=0), "restarts"), (dict(alpha=-1.0), "alpha"), (dict(steps=2.5), "steps"),
])
def test_pgd_refuses_bad_arguments_naming_them(trained, kwargs, name):
    model, x, y = trained
    args = dict(eps=0.05) | kwargs
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        attacks.pgd(model, x, y, args.pop("eps"), **args)


def test_fgsm_and_projection_refuse_bad_arguments(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="Invalid eps"):
        attacks.fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match="Invalid y"):
        attacks.fgsm(model, x, y[:-1], 0.1)
    with pytest.raises(ValueError, match="Invalid lo"):
        attacks.fgsm(model, x, y, 0.1, lo=1.0, hi=0.0)
    with pytest.raises(ValueError, match="Invalid norm"):
        attacks.project(x, 0.1, "1")
