"""Convergence rates of (momentum) gradient descent on a quadratic, from its iteration matrix.

On L(θ) = ½ (θ − θ*)ᵀ H (θ − θ*) every method of {ref}`ch-gradient-descent`,
{ref}`ch-momentum` and {ref}`ch-nesterov` is linear, and in the
eigenbasis of H it splits into one small system per eigenvalue h. With torch's momentum form
(``optcore.SGD``, buffer M_t = β M_{t−1} + g_t) one eigen-component of the error e = θ − θ*
and of the buffer evolves as

    (M_t, e_t) = A(h) (M_{t−1}, e_{t−1}),

    heavy ball  A = [[β,     h          ],
                     [−ηβ,   1 − ηh     ]]
    Nesterov    A = [[β,     h          ],
                     [−ηβ²,  1 − ηh(1+β)]]

(with β = 0 the heavy ball is gradient descent, e_t = (1 − ηh) e_{t−1}). The error shrinks
asymptotically by the spectral radius ρ(A(h)) per step; the rate of the whole problem is the
worst component's, max_h ρ(A(h)).
"""

from __future__ import annotations

import torch


def iteration_matrix(h, lr, momentum=0.0, nesterov: bool = False) -> torch.Tensor:
    """A(h) above, acting on (M, e), for every broadcast combination of the eigenvalue ``h``,
    the learning rate ``lr`` and the momentum β; shape ``(..., 2, 2)``, float64."""
    h, lr, beta = (torch.as_tensor(x, dtype=torch.float64) for x in (h, lr, momentum))
    h, lr, beta = torch.broadcast_tensors(h, lr, beta)
    row_e = (-lr * beta * beta, 1 - lr * h * (1 + beta)) if nesterov else (-lr * beta, 1 - lr * h)
    return torch.stack([torch.stack([beta, h], -1), torch.stack(row_e, -1)], -2)


def spectral_radius(h, lr, momentum=0.0, nesterov: bool = False) -> torch.Tensor:
    """ρ(A(h)): the asymptotic factor by which one eigen-component shrinks per step."""
    return torch.linalg.eigvals(iteration_matrix(h, lr, momentum, nesterov)).abs().amax(-1)


def convergence_rate(eigenvalues, lr, momentum=0.0, nesterov: bool = False) -> torch.Tensor:
    """max_h ρ(A(h)) over the Hessian's ``eigenvalues`` (a 1-D tensor), for each broadcast
    combination of ``lr`` and ``momentum``: below 1 the method converges, above it diverges.
    On a grid (``lr[:, None]``, ``momentum[None, :]``) this is the (η, β) rate map."""
    eigenvalues = torch.as_tensor(eigenvalues, dtype=torch.float64)
    lr, beta = torch.broadcast_tensors(torch.as_tensor(lr, dtype=torch.float64),
                                       torch.as_tensor(momentum, dtype=torch.float64))
    radii = spectral_radius(eigenvalues, lr[..., None], beta[..., None], nesterov)
    return radii.amax(-1)
