"""(a) The velocity -> score / x0 conversions, checked against exact densities.

The exact score is the autograd gradient of torch.distributions' log density
of the noised marginal -- code independent of the analytic experts.
"""
from __future__ import annotations

import pytest
import torch

from poelang.infer import flow
from poelang.stdlib.analytic import GaussianFlow

from .checks import check_score_conversion, exact_noised_gaussian, exact_noised_mixture

SIGMAS = [1.0, 0.9, 0.5, 0.2, 0.05, 0.01]


def test_score_from_velocity_full_covariance_gaussian(g_full):
    check_score_conversion(g_full, lambda s: exact_noised_gaussian(g_full, s), SIGMAS)


def test_score_from_velocity_diagonal_gaussian_image(image_gaussians):
    g = image_gaussians[0]
    check_score_conversion(g, lambda s: exact_noised_gaussian(g, s), SIGMAS, n=16)


def test_score_from_velocity_full_covariance_image():
    gen = torch.Generator().manual_seed(1)
    A = torch.randn(12, 12, generator=gen, dtype=torch.float64)
    g = GaussianFlow(torch.randn(3, 2, 2, generator=gen), cov=A @ A.T / 12 + 0.1 * torch.eye(12), name="img_full")
    check_score_conversion(g, lambda s: exact_noised_gaussian(g, s), SIGMAS, n=16)


def test_score_from_velocity_mixture(mix_b):
    check_score_conversion(mix_b, lambda s: exact_noised_mixture(mix_b, s), SIGMAS)


@pytest.mark.parametrize("sigma", [1.0, 0.7, 0.3, 0.0])
def test_analytic_log_prob_matches_torch_distributions(g_full, mix_a, sigma):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(20, 2, dtype=torch.float64, generator=gen)
    s = torch.full((20,), sigma, dtype=torch.float64)
    assert torch.allclose(g_full.log_prob(x, s), exact_noised_gaussian(g_full, sigma).log_prob(x), atol=1e-10)
    assert torch.allclose(mix_a.log_prob(x, s), exact_noised_mixture(mix_a, sigma).log_prob(x), atol=1e-10)


def test_velocity_endpoints(g_full):
    """sigma = 1: x = eps, so E[eps - x0 | x] = x - mu; sigma = 0: x = x0, v = -x."""
    x = torch.randn(5, 2, dtype=torch.float64)
    ones, zeros = torch.ones(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    assert torch.allclose(g_full.velocity(x, ones), x - g_full.mean)
    assert torch.allclose(g_full.velocity(x, zeros), -x)
    assert torch.allclose(flow.x0_from_velocity(x, g_full.velocity(x, ones), ones), g_full.mean.expand(5, 2))


def test_velocity_is_posterior_mean_by_monte_carlo():
    """v(x, s) = E[eps - x0 | x_s = x], estimated by binning simulated pairs (1-D)."""
    g = GaussianFlow([0.7], var=0.3)
    gen = torch.Generator().manual_seed(3)
    n, s = 400_000, 0.4
    x0 = g.sample_x0(n, gen)
    eps = torch.randn(n, 1, dtype=torch.float64, generator=gen)
    xs = (1 - s) * x0 + s * eps
    target = (eps - x0).squeeze(1)
    near = (xs.squeeze(1) - 0.5).abs() < 0.01
    mc = target[near].mean()
    se = target[near].std() / near.sum().sqrt()
    exact = g.velocity(torch.tensor([[0.5]], dtype=torch.float64), torch.tensor([s], dtype=torch.float64))
    assert abs(float(mc - exact)) < 5 * float(se) + 0.01  # + bin-width bias


def test_conversions_are_mutual_inverses():
    x = torch.randn(7, 3, dtype=torch.float64)
    v = torch.randn(7, 3, dtype=torch.float64)
    s = torch.rand(7, dtype=torch.float64) * 0.9 + 0.05
    score = flow.score_from_velocity(x, v, s)
    assert torch.allclose(flow.velocity_from_score(x, score, s), v)
    # eps_hat = -sigma * score, and x = (1 - s) x0_hat + s eps_hat
    eps = flow.eps_from_velocity(x, v, s)
    assert torch.allclose(eps, -s[:, None] * score)
    assert torch.allclose((1 - s[:, None]) * flow.x0_from_velocity(x, v, s) + s[:, None] * eps, x)


def test_score_denominator_is_clamped_at_sigma_zero():
    x, v = torch.ones(2, 2), torch.ones(2, 2)
    out = flow.score_from_velocity(x, v, torch.zeros(2), sigma_min=1e-3)
    assert torch.isfinite(out).all() and torch.allclose(out, torch.full((2, 2), -2e3))
