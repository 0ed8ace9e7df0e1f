"""Conditional generative experts (paper Eq. 7, App. D.2).

An expert i conditioned on parents pa(i) is pulled toward agreement with
them: the paper models p(x_i | x_pa) as a Gaussian on the deviation of the
velocity predicted at x_i from the parents' velocity, whose score gives

    x_i <- x_i - lambda * grad_{x_i} || v_i(x_i) - stopgrad(v_pa(x_pa)) ||^2

applied ``cond_updates`` times per level, after the MCMC move. Gradients go
through the child's velocity only (autograd), and only over the child's
region; coordinates of that region that no parent covers do not enter the
loss. The parents' velocity is their composed (weighted-average) velocity.

These updates are a heuristic move: they do not leave any known target
invariant, so a run that uses them is on the approximate ('flow') path.

:func:`simulator_updates` is the other heuristic pull of the paper (App. C,
the video runs): gradient steps toward the simulation on the simulator
experts' own log density, after the model's move.
"""
from __future__ import annotations

from typing import Sequence

import torch

from . import flow
from .product import ProductField

Tensor = torch.Tensor


def conditional_update(field: ProductField, x: Tensor, sigma: float, child: int, lam: float) -> Tensor:
    """One Eq. 7 update of ``child``'s crop of x; returns the new canvas."""
    idx = field.regions[child]
    with torch.no_grad():
        v_parents, weight = field.parents_velocity(child, x, sigma)
    xi = field.crop(child, x).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        vi = field.expert_velocity(child, xi, sigma, grad=True)
        loss = (weight * (vi - v_parents) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, xi)
    out = x.clone()
    updated = xi.detach() - lam * grad
    if idx == (Ellipsis,):
        return updated
    out[(slice(None),) + idx] = updated
    return out


def conditional_updates(
    field: ProductField, x: Tensor, sigma: float, children: Sequence[int], lam: float, rounds: int
) -> Tensor:
    """``rounds`` passes of Eq. 7 over every factor that has parents."""
    for _ in range(rounds):
        for child in children:
            x = conditional_update(field, x, sigma, child, lam)
    return x


def simulator_updates(
    field: ProductField, x: Tensor, sigma: float, sims: Sequence[int], lam: float, rounds: int
) -> Tensor:
    """``rounds`` gradient steps on the log density of the simulator factors only
    (paper App. C: after the model's move, "8 gradient updates" on the
    simulator Gaussian's loss):

        x <- x + lam * sigma^2 / A * sum_{i in sims} a_i m_i pad_i(s_i(x_i, sigma))

    with s_i the expert's score (from its velocity) and A the coverage of the
    whole product, the same preconditioning as the MCMC step: for a Gaussian
    simulator expert (variance >= sigma^2 at level sigma) a step with lam < 1
    moves x part of the way toward its noised centre and never past it. No
    step at sigma = 0, where the score is undefined. Deterministic, and not
    invariant for any known target: a run using it is on the 'flow' path.
    """
    if sigma <= 0 or rounds == 0 or not sims:
        return x
    eta = lam * sigma * sigma / field.coverage
    for _ in range(rounds):
        pull = torch.zeros_like(x)
        for i in sims:
            xi = field.crop(i, x)
            vi = field.expert_velocity(i, xi, sigma)
            field._accumulate(pull, i, flow.score_from_velocity(xi, vi, sigma, field.sigma_min))
        x = x + eta * pull
    return x
