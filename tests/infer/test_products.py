"""(b), (c), (e): products of analytic experts against their closed forms.

The sampler runs in its exact mode (annealing='ais': MALA/HMC moves,
annealed importance weights), whose weighted particles target the product
exactly as L grows; tolerances are 5 Monte Carlo standard errors estimated
from independent runs (see checks.py). Each check is also shown to reject a
wrong closed form, so passing means something.
"""
from __future__ import annotations

import pytest
import torch

from poelang.infer import Factor, Problem, Settings
from poelang.stdlib.analytic import (
    GaussianFlow,
    MixtureFlow,
    SimulatorGaussian,
    gaussian_product,
    mixture_product,
)

from .checks import (
    check_composed_score,
    check_gaussian_product,
    check_langevin_stationary,
    check_mixture_product,
)

FAST = Settings(levels=40, particles=800, mcmc_steps=2, keep_trace=False)


# -- (b) Gaussian products ---------------------------------------------------------

def test_product_of_two_gaussians_2d(g_full, g_diag):
    check_gaussian_product((2,), [(g_full, 1.0, None), (g_diag, 1.0, None)], FAST, runs=12)


def test_product_of_three_gaussians_with_exponents_2d(g_full, g_diag, g_third):
    terms = [(g_full, 1.0, None), (g_diag, 0.5, None), (g_third, 2.0, None)]
    check_gaussian_product((2,), terms, FAST, runs=12)


def test_product_of_three_gaussians_hmc(g_full, g_diag, g_third):
    terms = [(g_full, 1.0, None), (g_diag, 1.0, None), (g_third, 1.0, None)]
    check_gaussian_product((2,), terms, FAST.replace(kernel="hmc", mcmc_steps=1), runs=12)


def test_product_check_rejects_a_wrong_closed_form(g_full, g_diag, g_third):
    terms = [(g_full, 1.0, None), (g_diag, 1.0, None)]
    wrong = gaussian_product((2,), [(g_full, 1.0, None), (g_diag, 1.2, None)])
    with pytest.raises(AssertionError):
        check_gaussian_product((2,), terms, FAST, runs=12, expected=wrong)


@pytest.mark.slow
def test_product_of_gaussian_images(image_gaussians):
    a, b, c = image_gaussians
    shape = a.event_shape
    check_gaussian_product(shape, [(a, 1.0, None), (b, 1.0, None)], FAST.replace(particles=500), runs=10,
                           full_cov=False, z=5.5)
    check_gaussian_product(shape, [(a, 1.0, None), (b, 1.0, None), (c, 1.0, None)],
                           FAST.replace(particles=500), runs=10, full_cov=False, z=5.5)


def test_langevin_kernel_on_composed_score_has_the_exact_ula_law(g_full, g_diag):
    """The score path (velocity -> score -> composition -> ULA) at fixed sigma."""
    terms = [(g_full, 1.0, None), (g_diag, 1.0, None)]
    check_langevin_stationary((2,), terms, sigma=0.5, chains=20000)
    check_langevin_stationary((3,), [(g_full, 1.0, (slice(0, 2),)), (g_diag, 2.0, (slice(1, 3),))],
                              sigma=0.3, chains=20000, step_size=1.0)


def test_composed_score_is_gradient_of_product_log_density(g_full, g_diag, mix_b):
    problem = Problem((3,), [Factor(g_full, 1.0, (slice(0, 2),)), Factor(g_diag, 0.5, (slice(1, 3),)),
                             Factor(MixtureFlow([0.4, 0.6], [[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]], var=0.3), 2.0)])
    check_composed_score(problem, [0.95, 0.5, 0.1])


# -- (c) mixtures ------------------------------------------------------------------------

def test_product_of_two_1d_mixtures_mode_masses():
    m1 = MixtureFlow([0.6, 0.4], [[-1.5], [1.5]], var=0.2, name="m1")
    m2 = MixtureFlow([0.2, 0.8], [[-1.0], [1.0]], var=[0.5, 0.3], name="m2")
    check_mixture_product([m1, m2], FAST, runs=12)


def test_product_of_two_2d_mixtures_mode_masses(mix_a, mix_b):
    check_mixture_product([mix_a, mix_b], FAST, runs=12)


def test_product_of_three_2d_mixtures_mode_masses(mix_a, mix_b):
    m3 = MixtureFlow([0.5, 0.5], [[0.0, 0.3], [0.0, -0.3]], var=1.0, name="m3")
    check_mixture_product([mix_a, mix_b, m3], FAST, runs=12)


def test_mixture_check_rejects_wrong_mode_masses(mix_a, mix_b):
    prod = mixture_product([mix_a, mix_b])
    wrong = MixtureFlow(torch.tensor([0.4, 0.0009, 0.0004, 0.5987]), prod.means, prod.vars)
    wrong.log_normalizer = prod.log_normalizer
    with pytest.raises(AssertionError):
        check_mixture_product([mix_a, mix_b], FAST, runs=12, expected=wrong)


def test_mixture_product_closed_form_by_quadrature():
    """The closed form itself: product weights and normaliser vs 1-D quadrature."""
    m1 = MixtureFlow([0.6, 0.4], [[-1.5], [1.5]], var=0.2)
    m2 = MixtureFlow([0.2, 0.8], [[-1.0], [1.0]], var=[0.5, 0.3])
    prod = mixture_product([m1, m2])
    x = torch.linspace(-8, 8, 200001, dtype=torch.float64)[:, None]
    zero = torch.zeros(x.shape[0], dtype=torch.float64)
    dens = torch.exp(m1.log_prob(x, zero) + m2.log_prob(x, zero))
    dx = 16 / 200000
    assert abs(float(torch.log(dens.sum() * dx)) - prod.log_normalizer) < 1e-6
    assert torch.allclose(torch.exp(prod.log_prob(x, zero)), dens / (dens.sum() * dx), atol=1e-6)


# -- (e) regional experts --------------------------------------------------------------

def test_regional_experts_disjoint(g_full):
    g1 = GaussianFlow([0.3], var=0.2, name="left")
    terms = [(g1, 1.0, (slice(0, 1),)), (g_full, 1.0, (slice(1, 3),))]
    check_gaussian_product((3,), terms, FAST, runs=12)


def test_regional_experts_overlapping(g_full, g_diag):
    prior = GaussianFlow([0.0, 0.0, 0.0], var=2.0, name="prior")
    terms = [(g_full, 1.0, (slice(0, 2),)), (g_diag, 1.0, (slice(1, 3),)), (prior, 0.5, None)]
    check_gaussian_product((3,), terms, FAST, runs=12)


@pytest.mark.slow
def test_regional_experts_on_an_image_with_a_simulator():
    """Two overlapping crops of a 1x4x4 image, plus a simulator Gaussian on a
    non-rectangular mask (its support)."""
    gen = torch.Generator().manual_seed(7)
    top = GaussianFlow(torch.randn(1, 3, 4, generator=gen), var=0.3, name="top")
    bottom = GaussianFlow(torch.randn(1, 3, 4, generator=gen), var=0.5, name="bottom")
    mask = torch.zeros(1, 4, 4)
    mask[0, 1:3, 0] = 1
    mask[0, 2, 1:3] = 1
    sim = SimulatorGaussian(torch.ones(1, 4, 4), weight=4.0, mask=mask, name="sim")
    terms = [(top, 1.0, (slice(None), slice(0, 3))), (bottom, 1.0, (slice(None), slice(1, 4))), (sim, 1.0, None)]
    check_gaussian_product((1, 4, 4), terms, FAST.replace(particles=600), runs=12, full_cov=False, z=5.5)


def test_regional_composed_score_and_simulator_support():
    mask = torch.tensor([1.0, 0.0, 1.0])
    sim = SimulatorGaussian([1.0, 5.0, -1.0], weight=2.0, mask=mask)
    prior = GaussianFlow([0.0, 0.0, 0.0], var=1.0)
    check_composed_score(Problem((3,), [Factor(prior), Factor(sim)]), [0.9, 0.4, 0.05])
