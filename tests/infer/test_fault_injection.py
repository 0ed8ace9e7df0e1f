"""(h) A 10 % error in the velocity -> score conversion must be caught.

The exactness checks of (a)-(d) are run with ``flow.score_from_velocity``
patched to return 1.1 x the score, and must now fail. Which part catches it
is worth knowing: the score path (composed score, the Langevin kernel's
stationary law). The *sampler* statistics on the exact path are immune by
design -- MALA/HMC accept on log densities and the annealed importance
weights use log densities, so a wrong score only slows them down -- and
the last test pins that down too.
"""
from __future__ import annotations

import pytest

from poelang.infer import Factor, Problem, Settings, flow, sample

from .checks import (
    check_gaussian_product,
    check_mixture_product,
    check_score_conversion,
    check_tilted_gaussian,
    exact_noised_gaussian,
    exact_noised_mixture,
    weighted_moments,
)
from poelang.stdlib.analytic import HalfSpaceReward, QuadraticReward

FAST = Settings(levels=40, particles=800, mcmc_steps=2, keep_trace=False)


@pytest.fixture
def wrong_score(monkeypatch):
    right = flow.score_from_velocity

    def off_by_ten_percent(x, v, sigma, sigma_min=1e-3):
        return 1.1 * right(x, v, sigma, sigma_min)

    monkeypatch.setattr(flow, "score_from_velocity", off_by_ten_percent)


@pytest.fixture
def wrong_x0(monkeypatch):
    right = flow.x0_from_velocity
    monkeypatch.setattr(flow, "x0_from_velocity", lambda x, v, sigma: right(x, 1.1 * v, sigma))


def test_a_conversion_check_detects_it(wrong_score, g_full, mix_b):
    with pytest.raises(AssertionError, match="score from velocity"):
        check_score_conversion(g_full, lambda s: exact_noised_gaussian(g_full, s), [0.5])
    with pytest.raises(AssertionError, match="score from velocity"):
        check_score_conversion(mix_b, lambda s: exact_noised_mixture(mix_b, s), [0.5])


def test_b_gaussian_product_check_detects_it(wrong_score, g_full, g_diag):
    with pytest.raises(AssertionError):
        check_gaussian_product((2,), [(g_full, 1.0, None), (g_diag, 1.0, None)], FAST, runs=4)


def test_b_regional_product_check_detects_it(wrong_score, g_full, g_diag):
    terms = [(g_full, 1.0, (slice(0, 2),)), (g_diag, 1.0, (slice(1, 3),))]
    with pytest.raises(AssertionError):
        check_gaussian_product((3,), terms, FAST, runs=4)


def test_c_mixture_product_check_detects_it(wrong_score, mix_a, mix_b):
    with pytest.raises(AssertionError, match="composed score"):
        check_mixture_product([mix_a, mix_b], FAST, runs=4)


def test_d_tilted_gaussian_check_detects_it(wrong_score, g_full):
    with pytest.raises(AssertionError):
        check_tilted_gaussian(g_full, QuadraticReward([1.0, 1.0], scale=0.5), FAST, runs=4)
    with pytest.raises(AssertionError):
        check_tilted_gaussian(g_full, HalfSpaceReward([1.0, 1.0], 0.0), FAST, runs=4)


def test_the_langevin_stationary_law_alone_detects_it(wrong_score, g_full, g_diag):
    """Not only the deterministic composed-score comparison: the sampler's
    score-driven move itself ends at the wrong distribution."""
    from .checks import check_langevin_stationary

    with pytest.raises(AssertionError, match="Langevin"):
        check_langevin_stationary((2,), [(g_full, 1.0, None), (g_diag, 1.0, None)], sigma=0.5, chains=40000)


def test_paper_flow_sampler_output_moves_with_the_error(monkeypatch, g_full, g_diag):
    """The approximate 'flow' path (Euler + Langevin) depends on the score, so
    its output changes with the error (same seed, same noise)."""
    problem = Problem((2,), [Factor(g_full), Factor(g_diag)])
    settings = Settings(levels=40, particles=4000, kernel="langevin", mcmc_steps=2, keep_trace=False)
    clean = weighted_moments(sample(problem, settings))
    right = flow.score_from_velocity
    monkeypatch.setattr(flow, "score_from_velocity", lambda x, v, s, m=1e-3: 1.1 * right(x, v, s, m))
    faulty = weighted_moments(sample(problem, settings))
    # the variances shrink (Langevin targets a 10 % sharper product)
    assert float((clean[2] - faulty[2]) / clean[2]) > 0.03
    assert float((clean[5] - faulty[5]) / clean[5]) > 0.03


def test_exact_path_sampler_is_immune_to_score_and_x0_errors(wrong_score, wrong_x0, g_full, g_diag):
    """By design: MH + AIS use log densities, and the reward potentials
    telescope to r(x) at sigma = 0 whatever x0_hat was. The sampler-only
    statistics still match the closed form under both faults."""
    check_gaussian_product((2,), [(g_full, 1.0, None), (g_diag, 1.0, None)], FAST, runs=6, score_checks=False)
    check_tilted_gaussian(g_full, QuadraticReward([1.0, 1.0], scale=0.5), FAST, runs=6, score_checks=False)
