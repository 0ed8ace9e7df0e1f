"""The 'fk' path: Feynman-Kac corrected transport for a product of flow experts.

Only velocities are needed -- no log density, no divergence. With
gamma_sigma(x) = prod_i q_{i,sigma}(x_i)^{a_i} (q_i the expert's noised
marginal, a_i its exponent times its region/support weight per coordinate,
A = sum_i a_i per coordinate), W = sum_i a_i v_i and Q = sum_i a_i v_i^2
(per coordinate, from the experts' velocities at (x, sigma)), one level from
sigma to sigma' < sigma (h = sigma - sigma') is

    SDE    dx/dsigma = eta^2 A x / (1 - sigma) + (1 + eta^2) W   (+ noise
           of variance 2 eta^2 sigma / (1 - sigma) per unit |dsigma|),
           integrated exactly in its stiff linear part (:func:`transport`);
    weight log w += h / sigma * sum_c [ (A - 1) x W + (1 - sigma) (W^2 - Q) ]

and the weighted particles target gamma_sigma' (consistent as the number of
particles grows and the levels get finer: the weight is a left-point rule of
a time integral, so a finite schedule leaves an O(h) discretisation error).
The particles start from gamma_1 = prod_i N(0, I)^{a_i} = N(0, I / A) at
sigma = 1 exactly, with log w = log Z_1 so that the SMC evidence estimates
log of the integral of prod_i p_i^{a_i}.

Derivation (docs/sampling.md has it in full). In the convention
x_sigma = (1 - sigma) x0 + sigma eps, each q_i solves the forward
Fokker-Planck equation with drift f x, f = -1/(1 - sigma), and diffusion g^2,
g^2 / 2 = sigma / (1 - sigma). Run a reverse-time SDE dx = u dtau + e dB
(tau = -sigma) with u = -a x + b S, S = sum_i a_i s_i the product's score,
b = (g^2 + e^2) / 2, e = eta g. The Feynman-Kac weight that makes
E[w phi(x)] = integral gamma phi is d log w = d_tau log gamma - L*gamma /
gamma, which for these choices is

    d log w / dtau = sum_c [(f - a_c) x_c S_c + f A_c - a_c]
                     + g^2/2 (|S|^2 - sum_i a_i |s_i|^2)

-- the divergence of S cancels exactly because b - e^2/2 = g^2/2. Skreta et
al. (ICML 2025) take a = f, whose drift and weight are singular at sigma = 1;
here a_c = A_c f, for which the constant vanishes, the velocity form above
is bounded at sigma = 1, eta = 0 is plain Euler along the velocity *sum*, and
near sigma = 1 the SDE keeps N(0, sigma I / A) -- the product's own law --
stationary, so the weights stay flat there. Two experts on disjoint regions
(A = 1, one v per coordinate) give no weight at all.
"""
from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def log_weight_rate(x: Tensor, W: Tensor, Q: Tensor, A: Tensor, sigma: float) -> Tensor:
    """d log w / d|sigma| at (x, sigma), per particle [L] (float64):
    sum_c [(A - 1) x W + (1 - sigma)(W^2 - Q)] / sigma."""
    per_coord = (A - 1.0) * x * W + (1.0 - sigma) * (W * W - Q)
    return per_coord.reshape(x.shape[0], -1).sum(1).to(torch.float64) / sigma


def log_normalizer_at_one(A: Tensor) -> float:
    """log Z_1 = log of the integral of prod_i N(0, I)^{a_i}: per coordinate
    -(A - 1)/2 log 2 pi - 1/2 log A."""
    A64 = A.to(torch.float64)
    return float((-(A64 - 1.0) * 0.5 * math.log(2 * math.pi) - 0.5 * torch.log(A64)).sum())


def _coefficients(A: Tensor, eta: float, sigma: float, sigma_to: float):
    """(rho, forcing, variance) per coordinate of the exact solution of
    dx/dsigma = k x / (1 - sigma) + F with k = eta^2 A, F frozen, and the
    noise, from sigma down to sigma_to."""
    r = (1.0 - sigma) / (1.0 - sigma_to)  # in [0, 1)
    if eta == 0.0:
        one = torch.ones_like(A)
        return one, -(sigma - sigma_to) * one, torch.zeros_like(A)
    k = eta * eta * A.to(torch.float64)
    log_r = math.log(r) if r > 0 else -math.inf
    rho = torch.exp(k * log_r) if r > 0 else torch.zeros_like(k)
    # forcing: integral over the step of the propagator, = -(1 - sigma_to)(1 - rho r) / (k + 1)
    forcing = -(1.0 - sigma_to) * (1.0 - rho * r) / (k + 1.0)
    # noise: 2 eta^2 [ (1 - rho^2) / (2k) - (1 - sigma_to)(1 - rho^2 r) / (2k + 1) ]
    variance = 2 * eta * eta * ((1.0 - rho * rho) / (2 * k) - (1.0 - sigma_to) * (1.0 - rho * rho * r) / (2 * k + 1))
    return rho, forcing, variance.clamp_min(0.0)


def transport(x: Tensor, W: Tensor, A: Tensor, eta: float, sigma: float, sigma_to: float, noise: Tensor) -> Tensor:
    """One step of the SDE from sigma to sigma_to: the linear part
    eta^2 A x / (1 - sigma) and the noise integrated exactly (they are stiff
    near sigma = 1), the velocity sum W frozen at the left point."""
    rho, forcing, variance = _coefficients(A, eta, sigma, sigma_to)
    dt = x.dtype
    return rho.to(dt) * x + forcing.to(dt) * (1.0 + eta * eta) * W + torch.sqrt(variance).to(dt) * noise
