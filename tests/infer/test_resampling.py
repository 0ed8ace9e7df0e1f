"""(f) Resampling schemes: unbiased offspring counts, the median scheme, and
the numerically safe log-weight helpers."""
from __future__ import annotations

import math

import pytest
import torch

from poelang.infer import RESAMPLERS, effective_sample_size, logsumexp, normalized_weights, resample
from poelang.infer.resampling import UNBIASED, inverse_cdf

WEIGHTS = torch.tensor([0.05, 0.3, 0.02, 0.13, 0.4, 0.1], dtype=torch.float64)  # n*W has fractional parts


def offspring_counts(scheme, weights: torch.Tensor, n: int, draws: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.stack(
        [torch.bincount(scheme(weights, n, gen), minlength=weights.shape[0]) for _ in range(draws)]
    ).to(torch.float64)


def assert_unbiased(scheme, weights: torch.Tensor, n: int, draws: int = 4000) -> None:
    counts = offspring_counts(scheme, weights, n, draws)
    assert bool((counts.sum(1) == n).all()), "every draw must have n offspring"
    mean = counts.mean(0)
    se = counts.std(0) / math.sqrt(draws)
    expected = n * weights
    bad = (mean - expected).abs() > 5 * se + 1e-12
    assert not bool(bad.any()), f"E[N_i] {mean.tolist()} vs n W_i {expected.tolist()} (se {se.tolist()})"


@pytest.mark.parametrize("name", sorted(UNBIASED))
@pytest.mark.parametrize("n", [6, 11])
def test_offspring_counts_are_unbiased(name, n):
    assert_unbiased(RESAMPLERS[name], WEIGHTS, n)


@pytest.mark.parametrize("name", sorted(UNBIASED))
def test_zero_weight_particles_are_never_chosen(name):
    w = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0], dtype=torch.float64)
    counts = offspring_counts(RESAMPLERS[name], w, 5, 300)
    assert float(counts[:, [0, 2, 4]].sum()) == 0


def test_low_variance_schemes_stay_within_one_of_n_w():
    """Systematic and residual: floor(nW_i) <= N_i <= ceil(nW_i) (systematic)
    and N_i >= floor(nW_i) (residual)."""
    n = 11
    sys_counts = offspring_counts(RESAMPLERS["systematic"], WEIGHTS, n, 500)
    assert bool((sys_counts >= torch.floor(n * WEIGHTS)).all() & (sys_counts <= torch.ceil(n * WEIGHTS)).all())
    res_counts = offspring_counts(RESAMPLERS["residual"], WEIGHTS, n, 500)
    assert bool((res_counts >= torch.floor(n * WEIGHTS)).all())


def test_the_unbiasedness_check_catches_a_biased_scheme():
    def rounded_systematic(weights, n, gen):  # u fixed at 0.5: deterministic rounding
        u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        return inverse_cdf(weights, u)

    with pytest.raises(AssertionError):
        assert_unbiased(rounded_systematic, WEIGHTS, 11)


def test_median_scheme_keeps_the_top_half_twice():
    w = torch.tensor([0.1, 0.4, 0.05, 0.3, 0.15, 0.0], dtype=torch.float64)
    anc = RESAMPLERS["median"](w, 6, torch.Generator().manual_seed(0))
    assert sorted(anc.tolist()) == [1, 1, 3, 3, 4, 4]
    # four particles as in the paper: two survivors, duplicated
    anc4 = RESAMPLERS["median"](torch.tensor([0.1, 0.4, 0.2, 0.3], dtype=torch.float64), 4, None)
    assert sorted(anc4.tolist()) == [1, 1, 3, 3]
    # odd n: the last kept particle gets one copy
    anc5 = RESAMPLERS["median"](torch.tensor([0.1, 0.4, 0.2, 0.25, 0.05], dtype=torch.float64), 5, None)
    assert sorted(anc5.tolist()) == [1, 1, 2, 3, 3]
    # ties broken by index, deterministic
    tie = RESAMPLERS["median"](torch.full((4,), 0.25, dtype=torch.float64), 4, None)
    assert sorted(tie.tolist()) == [0, 0, 1, 1]


def test_median_scheme_never_keeps_zero_weight_particles_when_others_live():
    w = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    anc = RESAMPLERS["median"](w, 4, None)
    assert anc.tolist() == [1, 1, 1, 1]


def test_none_scheme_is_identity():
    assert resample("none", WEIGHTS, 6, torch.Generator()).tolist() == list(range(6))


def test_logsumexp_is_safe_when_all_are_minus_infinity():
    neg = torch.full((4,), -math.inf, dtype=torch.float64)
    assert logsumexp(neg).item() == -math.inf
    assert normalized_weights(neg) is None
    assert effective_sample_size(neg) == 0.0
    x = torch.tensor([1000.0, 1000.0, -math.inf], dtype=torch.float64)
    assert math.isclose(logsumexp(x).item(), 1000.0 + math.log(2))
    assert torch.allclose(normalized_weights(x), torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))


def test_effective_sample_size():
    assert math.isclose(effective_sample_size(torch.zeros(10, dtype=torch.float64)), 10.0)
    assert math.isclose(effective_sample_size(torch.tensor([0.0, -math.inf, -math.inf])), 1.0)
