"""Exactness checks shared by the tests, written as plain functions.

Each ``check_*`` raises ``AssertionError`` (with the numbers) when the engine
disagrees with a closed form, so the same function serves the exactness
tests and the fault-injection tests (h), which run it with a deliberately
wrong score conversion and assert that it now raises.

Monte Carlo tolerances. A sampler statistic is estimated by R independent
runs (different seeds); its standard error is the spread of the R estimates
over sqrt(R) -- SMC particles are correlated after resampling, so the
within-run spread would understate it. That spread is itself noisy (and
SMC estimates are skewed, e.g. the mass of a rare mode), so it is floored
at the iid standard error sqrt(Var_target(f) / (R L)), which no weighted
particle estimate of E[f] beats. A check fails when an estimate is more than
Z standard errors from the exact value; Z = 5 for a single statistic,
slightly more when many coordinates are compared at once (the max of many
t-statistics).
"""
from __future__ import annotations

import math
import os
from typing import Callable, Sequence

import torch

from poelang.infer import Factor, Problem, RewardFactor, Settings, flow, sample
from poelang.infer.kernels import Langevin
from poelang.infer.product import ProductField
from poelang.stdlib.analytic import GaussianFlow, gaussian_product, mixture_product

Z = 5.0
# Re-run the statistical tests on other seeds: POELANG_TEST_SEED=7 pytest tests/infer
SEED_OFFSET = int(os.environ.get("POELANG_TEST_SEED", "0"))


# -- Monte Carlo comparison --------------------------------------------------

def replicate(problem: Problem, settings: Settings, runs: int, statistic: Callable) -> torch.Tensor:
    """[runs, k]: ``statistic(result)`` over independent seeds."""
    rows = []
    for r in range(runs):
        result = sample(problem, settings.replace(seed=settings.seed + 1000 * r + 7919 * SEED_OFFSET))
        rows.append(torch.as_tensor(statistic(result), dtype=torch.float64).reshape(-1))
    return torch.stack(rows)


def assert_within_mc(estimates: torch.Tensor, exact: torch.Tensor, label: str, z: float = Z,
                     floor: torch.Tensor | None = None) -> None:
    """Mean of R replicate estimates within z standard errors of ``exact``;
    ``floor`` is a per-statistic lower bound on the standard error."""
    exact = torch.as_tensor(exact, dtype=torch.float64).reshape(-1)
    mean = estimates.mean(0)
    se = estimates.std(0, unbiased=True) / math.sqrt(estimates.shape[0])
    if floor is not None:
        se = torch.maximum(se, floor.reshape(-1))
    se = se.clamp_min(1e-6)
    t = (mean - exact).abs() / se
    if bool((t > z).any()):
        worst = int(t.argmax())
        raise AssertionError(
            f"{label}: estimate {mean.tolist()} vs exact {exact.tolist()} "
            f"(worst coordinate {worst}: {float(mean[worst]):.4f} vs {float(exact[worst]):.4f}, "
            f"{float(t[worst]):.1f} standard errors, se={float(se[worst]):.4f})"
        )


def iid_floor(variances: torch.Tensor, runs: int, particles: int) -> torch.Tensor:
    """sqrt(Var_target(f) / (R L)) per statistic (0 where no bound applies)."""
    return torch.sqrt(torch.as_tensor(variances, dtype=torch.float64).clamp_min(0) / (runs * particles))


def moment_variances(mean: torch.Tensor, cov: torch.Tensor, full_cov: bool = True) -> torch.Tensor:
    """Var of x_i and of (x_i - m_i)(x_j - m_j) under a Gaussian N(mean, cov)."""
    d = torch.diagonal(cov)
    second = (torch.outer(d, d) + cov**2).reshape(-1) if full_cov else 2 * d**2
    return torch.cat([d, second])


def weighted_moments(result) -> torch.Tensor:
    """[mean (D), covariance (D*D)] of the weighted final particles, flattened."""
    w = result.weights.double()
    x = result.particles.double().reshape(w.shape[0], -1)
    m = (w[:, None] * x).sum(0)
    d = x - m
    cov = (d.T * w) @ d
    return torch.cat([m, cov.reshape(-1)])


def weighted_mean_var(result) -> torch.Tensor:
    """[mean (D), variance (D)] of the weighted final particles."""
    w = result.weights.double()
    x = result.particles.double().reshape(w.shape[0], -1)
    m = (w[:, None] * x).sum(0)
    return torch.cat([m, (w[:, None] * (x - m) ** 2).sum(0)])


# -- (a) the conversion --------------------------------------------------------

def exact_noised_gaussian(g: GaussianFlow, sigma: float):
    """torch.distributions object of p_sigma for a GaussianFlow (independent of its code)."""
    mu = g.mean.reshape(-1)
    C = (1 - sigma) ** 2 * g.covariance() + sigma**2 * torch.eye(mu.numel(), dtype=torch.float64)
    return torch.distributions.MultivariateNormal((1 - sigma) * mu, covariance_matrix=C)


def exact_noised_mixture(m, sigma: float):
    comps = torch.distributions.Independent(
        torch.distributions.Normal((1 - sigma) * m.means, torch.sqrt((1 - sigma) ** 2 * m.vars + sigma**2)), 1
    )
    return torch.distributions.MixtureSameFamily(torch.distributions.Categorical(probs=m.weights), comps)


def autograd_score(dist, x_flat: torch.Tensor) -> torch.Tensor:
    x = x_flat.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(dist.log_prob(x).sum(), x)
    return grad


def check_score_conversion(expert, dist_at: Callable, sigmas: Sequence[float], n: int = 64, seed: int = 0) -> None:
    """score_from_velocity(x, v(x)) == grad log p_sigma(x) (autograd of the exact density),
    and x0_from_velocity == Tweedie's (x + sigma^2 score) / (1 - sigma)."""
    gen = torch.Generator().manual_seed(seed)
    shape = expert.event_shape
    for sigma in sigmas:
        x = 1.5 * torch.randn((n,) + tuple(shape), dtype=torch.float64, generator=gen)
        s = torch.full((n,), sigma, dtype=torch.float64)
        v = expert.velocity(x, s)
        score = flow.score_from_velocity(x, v, s).reshape(n, -1)
        exact = autograd_score(dist_at(sigma), x.reshape(n, -1))
        err = float((score - exact).abs().max() / (exact.abs().max() + 1e-12))
        if err > 1e-6:
            raise AssertionError(f"{expert.name}: score from velocity off by {err:.2e} (relative) at sigma={sigma}")
        if sigma < 1:
            x0 = flow.x0_from_velocity(x, v, s).reshape(n, -1)
            tweedie = (x.reshape(n, -1) + sigma**2 * exact) / (1 - sigma)
            err0 = float((x0 - tweedie).abs().max())
            if err0 > 1e-6 * (1 + float(tweedie.abs().max())):
                raise AssertionError(f"{expert.name}: x0 from velocity off by {err0:.2e} at sigma={sigma}")


# -- composed score of a product ----------------------------------------------

def check_composed_score(problem: Problem, sigmas: Sequence[float], n: int = 32, seed: int = 0) -> None:
    """The engine's composed score == grad of sum_i a_i log p_{i,sigma}(x_i) (autograd)."""
    field = ProductField(problem.factors, problem.shape, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    for sigma in sigmas:
        x = torch.randn((n,) + tuple(problem.shape), dtype=torch.float64, generator=gen)
        got = field.evaluate(x, sigma, score=True).score
        xr = x.clone().requires_grad_(True)
        total = 0.0
        for i, f in enumerate(problem.factors):
            s = torch.full((n,), sigma, dtype=torch.float64)
            total = total + f.exponent * f.expert.log_prob(field.crop(i, xr), s).sum()
        (exact,) = torch.autograd.grad(total, xr)
        err = float((got - exact).abs().max() / (exact.abs().max() + 1e-12))
        if err > 1e-6:
            raise AssertionError(f"composed score off by {err:.2e} (relative) at sigma={sigma}")


# -- (b) Gaussian products ---------------------------------------------------------

def noised_terms(terms, sigma: float):
    """The factors' noised marginals at sigma, as GaussianFlows (same regions)."""
    out = []
    for g, a, region in terms:
        mu = (1 - sigma) * g.mean.reshape(-1)
        C = (1 - sigma) ** 2 * g.covariance() + sigma**2 * torch.eye(mu.numel(), dtype=torch.float64)
        out.append((GaussianFlow(mu.reshape(g.event_shape), cov=C) if g.support is None else
                    GaussianFlow(mu.reshape(g.event_shape), var=torch.diagonal(C).reshape(g.event_shape),
                                 support=g.support), a, region))
    return out


def check_langevin_stationary(shape, terms, sigma: float, step_size: float = 0.5, chains: int = 20000,
                              seed: int = SEED_OFFSET) -> None:
    """The Langevin kernel on the composed score, run to stationarity at a fixed
    sigma, has exactly the stationary law that discrete-time ULA has on the
    closed-form product gamma_sigma = N(m, P^-1): mean m and the covariance V
    solving V = B V B^T + 2H, B = I - H P, H = diag(eta). This is the part of
    the sampler that depends on the score conversion (MH and AIS do not)."""
    problem = Problem(shape, [Factor(g, exponent=a, region=r) for g, a, r in terms])
    field = ProductField(problem.factors, shape, dtype=torch.float64)
    m, cov, _ = gaussian_product(shape, noised_terms(terms, sigma))
    D = m.numel()
    P = torch.linalg.inv(cov)
    eta = (step_size * sigma**2 / field.coverage).reshape(-1).to(torch.float64)
    H = torch.diag(eta)
    B = torch.eye(D, dtype=torch.float64) - H @ P
    V = torch.linalg.solve(torch.eye(D * D, dtype=torch.float64) - torch.kron(B, B), (2 * H).reshape(-1)).reshape(D, D)
    rho = float(torch.linalg.eigvals(B).abs().max())
    steps = int(math.ceil(math.log(1e-4) / math.log(rho)))
    gen = torch.Generator().manual_seed(seed)
    x = torch.distributions.MultivariateNormal(m, covariance_matrix=cov).sample((chains,))
    x = x.reshape((chains,) + tuple(shape))
    kernel = Langevin()
    eta_t = (step_size * sigma**2 / field.coverage).unsqueeze(0)

    def target(y, full=False):
        return field.evaluate(y, sigma, score=True)

    for _ in range(steps):
        x, _, _ = kernel.step(x, None, target, eta_t, gen)
    flat = x.reshape(chains, -1)
    mean = flat.mean(0)
    d = flat - mean
    emp = d.T @ d / (chains - 1)
    se_mean = torch.sqrt(torch.diagonal(V) / chains)
    se_cov = torch.sqrt((torch.outer(torch.diagonal(V), torch.diagonal(V)) + V**2) / chains)
    tm = ((mean - m).abs() / se_mean).max()
    tc = ((emp - V).abs() / se_cov).max()
    if float(tm) > Z or float(tc) > Z:
        raise AssertionError(
            f"Langevin at sigma={sigma}: mean {mean.tolist()} vs {m.tolist()} ({float(tm):.1f} se); "
            f"cov {emp.reshape(-1).tolist()} vs {V.reshape(-1).tolist()} ({float(tc):.1f} se)"
        )


def check_gaussian_product(shape, terms, settings: Settings, runs: int = 10, full_cov: bool = True,
                           z: float = Z, expected=None, score_checks: bool = True,
                           log_evidence: bool = True) -> None:
    """Exact-mode sampler vs the closed-form (precision-weighted) product:
    mean, covariance (or variances) and (log_evidence) log normaliser; and (score_checks)
    the score path: composed score vs autograd, Langevin's stationary law."""
    problem = Problem(shape, [Factor(g, exponent=a, region=r) for g, a, r in terms])
    if score_checks:
        check_composed_score(problem, [0.9, 0.5, 0.1])
        check_langevin_stationary(shape, terms, sigma=0.5, chains=10000)
    mean, cov, log_z = expected if expected is not None else gaussian_product(shape, terms)

    def stat(result):
        moments = weighted_moments(result) if full_cov else weighted_mean_var(result)
        evidence = [result.log_evidence] if log_evidence else []
        return torch.cat([moments, torch.tensor(evidence, dtype=torch.float64)])

    est = replicate(problem, settings, runs, stat)
    second = cov.reshape(-1) if full_cov else torch.diagonal(cov)
    evidence = [log_z] if log_evidence else []
    exact = torch.cat([mean, second, torch.tensor(evidence, dtype=torch.float64)])
    floor = iid_floor(torch.cat([moment_variances(mean, cov, full_cov), torch.zeros(len(evidence))]), runs,
                      settings.particles)
    assert_within_mc(est, exact, f"product of {len(terms)} Gaussians on {tuple(shape)}", z=z, floor=floor)


# -- (c) mixtures ----------------------------------------------------------------------

def check_mixture_product(mixtures, settings: Settings, runs: int = 10, expected=None,
                          score_checks: bool = True, log_evidence: bool = True) -> None:
    """Exact-mode sampler vs the exact product mixture: mode masses, i.e.
    E[responsibility_k(x)] = pi_k of the product (exact for any overlap),
    plus the mean and (log_evidence) the log normaliser; and (score_checks)
    the composed score."""
    shape = mixtures[0].event_shape
    prod = expected if expected is not None else mixture_product(mixtures)
    problem = Problem(shape, [Factor(m) for m in mixtures])
    if score_checks:
        check_composed_score(problem, [0.9, 0.5, 0.1])

    def stat(result):
        x = result.particles.double().reshape(result.particles.shape[0], -1)
        resp = torch.softmax(prod.component_log_prob(x), dim=1)
        w = result.weights.double()
        masses = (w[:, None] * resp).sum(0)
        mean = (w[:, None] * x).sum(0)
        evidence = [result.log_evidence] if log_evidence else []
        return torch.cat([masses, mean, torch.tensor(evidence, dtype=torch.float64)])

    est = replicate(problem, settings, runs, stat)
    w = prod.weights
    mean = (w[:, None] * prod.means).sum(0)
    var = (w[:, None] * (prod.vars + prod.means**2)).sum(0) - mean**2
    evidence = [prod.log_normalizer] if log_evidence else []
    exact = torch.cat([w, mean, torch.tensor(evidence, dtype=torch.float64)])
    floor = iid_floor(torch.cat([w * (1 - w), var, torch.zeros(len(evidence))]), runs, settings.particles)
    assert_within_mc(est, exact, f"product of {len(mixtures)} mixtures (masses, mean, log Z)", floor=floor)


# -- (d) rewards -----------------------------------------------------------------------

def check_tilted_gaussian(g: GaussianFlow, reward, settings: Settings, runs: int = 10, expected=None,
                          score_checks: bool = True) -> None:
    """Gaussian expert times exp(reward) vs the exact tilted distribution.

    Quadratic reward: a Gaussian (mean, covariance, log E[exp r]).
    Half-space constraint: truncated Gaussian (mean, and the mass
    P(a.x <= c) = exp(log_evidence)). With score_checks, also the score path
    of the generative part (composed score, Langevin's stationary law)."""
    problem = Problem(g.event_shape, [Factor(g)], [RewardFactor(reward)])
    if score_checks:
        check_composed_score(problem, [0.9, 0.5, 0.1])
        check_langevin_stationary(g.event_shape, [(g, 1.0, None)], sigma=0.5, chains=10000)
    mu, S = g.mean.reshape(-1), g.covariance()
    if expected is None:
        if hasattr(reward, "tilt"):
            m, C = reward.tilt(mu, S)
            expected = torch.cat([m, C.reshape(-1), torch.tensor([reward.log_expectation(mu, S)])])
        else:
            expected = torch.cat([reward.truncated_mean(mu, S), reward.gaussian_mass(mu, S).reshape(1)])
    floor = None
    if hasattr(reward, "tilt"):
        m, C = reward.tilt(mu, S)
        floor = iid_floor(torch.cat([moment_variances(m, C), torch.zeros(1)]), runs, settings.particles)

        def stat(result):
            return torch.cat([weighted_moments(result), torch.tensor([result.log_evidence])])
    else:
        def stat(result):
            return torch.cat([weighted_moments(result)[: mu.numel()], torch.tensor([math.exp(result.log_evidence)])])
    est = replicate(problem, settings, runs, stat)
    assert_within_mc(est, expected, f"{g.name} x exp({reward.name})", floor=floor)


def tilted_quadratic_exact(g: GaussianFlow, reward):
    mu, S = g.mean.reshape(-1), g.covariance()
    m, C = reward.tilt(mu, S)
    return m, C
