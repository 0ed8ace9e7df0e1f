"""(g), (i) and the engine's contracts: determinism, batching, errors, the
trace, the plan, conditional experts (Eq. 7), schedules."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from poelang.infer import (
    Factor,
    Problem,
    ProductField,
    RewardFactor,
    SamplerError,
    Settings,
    SettingsError,
    make_schedule,
    sample,
)
from poelang.infer.conditional import conditional_update
from poelang.stdlib.analytic import GaussianFlow, HalfSpaceReward, QuadraticReward


class FlowOnly:
    """A Gaussian seen as a flow network: velocity only, no log density."""

    has_log_prob = False

    def __init__(self, inner, name="flow_net"):
        self.inner, self.name = inner, name

    def velocity(self, x, sigma):
        return self.inner.velocity(x, sigma)


class NaNBelow:
    """Returns NaN for sigma below a threshold (a broken network)."""

    has_log_prob = False

    def __init__(self, threshold, name="broken_net"):
        self.threshold, self.name = threshold, name
        self.inner = GaussianFlow([0.0, 0.0], var=0.5)

    def velocity(self, x, sigma):
        v = self.inner.velocity(x, sigma)
        return torch.where((sigma < self.threshold)[:, None], torch.full_like(v, float("nan")), v)


def problems(g_full, g_diag):
    """(label, problem, settings) covering the paths and kernels."""
    quad = QuadraticReward([1.0, 0.0], scale=0.5, name="quad")
    hs = HalfSpaceReward([0.0, 1.0], 0.5, name="hs")
    base = Settings(levels=12, particles=9, mcmc_steps=2)
    child = Factor(FlowOnly(g_diag, "child"), parents=(0,))
    return [
        ("ais-mala-rewards", Problem((2,), [Factor(g_full), Factor(g_diag)], [RewardFactor(quad), RewardFactor(hs)]), base),
        ("ais-hmc", Problem((2,), [Factor(g_full), Factor(g_diag)], [RewardFactor(quad)]), base.replace(kernel="hmc")),
        ("flow-langevin", Problem((2,), [Factor(FlowOnly(g_full)), Factor(g_diag)], [RewardFactor(quad)]), base),
        ("flow-eq7", Problem((2,), [Factor(g_full), child], [RewardFactor(quad)]), base.replace(cond_updates=2)),
        ("greedy", Problem((2,), [Factor(g_full)], [RewardFactor(quad)]),
         base.replace(weighting="greedy", resample="median", resample_when="times", resample_times=[0.25, 0.5, 0.75])),
    ]


def same(a, b) -> bool:
    return (
        torch.equal(a.particles, b.particles)
        and torch.equal(a.log_weights, b.log_weights)
        and torch.equal(a.samples, b.samples)
        and all(torch.equal(x.x0_hat, y.x0_hat) and torch.equal(x.ancestors, y.ancestors) for x, y in zip(a.trace, b.trace))
    )


# -- (i) determinism and batching --------------------------------------------------

def test_same_seed_gives_identical_tensors(g_full, g_diag):
    for label, problem, settings in problems(g_full, g_diag):
        assert same(sample(problem, settings), sample(problem, settings)), label
        other = sample(problem, settings.replace(seed=1))
        assert not torch.equal(other.particles, sample(problem, settings).particles), label


def test_max_batch_gives_identical_results(g_full, g_diag):
    for label, problem, settings in problems(g_full, g_diag):
        full = sample(problem, settings)
        for chunk in (4, 1):
            assert same(full, sample(problem, settings.replace(max_batch=chunk))), (label, chunk)


def test_max_batch_bounds_every_expert_call(g_full):
    seen = []

    class Spy(GaussianFlow):
        def velocity(self, x, sigma):
            seen.append(x.shape[0])
            return super().velocity(x, sigma)

        def velocity_and_log_prob(self, x, sigma):
            seen.append(x.shape[0])
            return super().velocity_and_log_prob(x, sigma)

    spy = Spy([0.0, 0.0], var=0.3, name="spy")
    sample(Problem((2,), [Factor(spy)]), Settings(levels=5, particles=10, max_batch=3))
    assert seen and max(seen) <= 3


def test_experts_are_called_once_per_batch_not_per_particle(g_full):
    calls = []

    class Spy(GaussianFlow):
        def velocity(self, x, sigma):
            calls.append(x.shape[0])
            return super().velocity(x, sigma)

        def velocity_and_log_prob(self, x, sigma):
            calls.append(x.shape[0])
            return super().velocity_and_log_prob(x, sigma)

        def log_prob(self, x, sigma):
            calls.append(x.shape[0])
            return super().log_prob(x, sigma)

    spy = Spy([0.0, 0.0], var=0.3, name="spy")
    result = sample(Problem((2,), [Factor(spy)]), Settings(levels=5, particles=64, mcmc_steps=1))
    assert set(calls) == {64}
    assert result.evaluations["calls"] == 64 * len(calls)
    # 'ais' + MALA, K = 1: one log density at the start, then per level with
    # sigma > 0 one fused call for the transition and one per proposal, and a
    # log density at sigma = 0
    assert len(calls) == 1 + 4 * 2 + 1


# -- (g) L = 1 is the sampler without SMC ------------------------------------------------

@pytest.mark.parametrize("index", range(4))
def test_one_particle_equals_smc_disabled(g_full, g_diag, index):
    label, problem, settings = problems(g_full, g_diag)[index]
    one = settings.replace(particles=1, resample="systematic", resample_when="always")
    no_smc = one.replace(resample="none")
    a, b = sample(problem, one), sample(problem, no_smc)
    assert torch.equal(a.particles, b.particles) and torch.equal(a.samples, b.samples), label


def test_one_particle_ignores_rewards_on_the_paper_path(g_full, g_diag):
    """With the paper's order (rewards only weight and resample), one particle
    with rewards moves exactly like one particle of the reward-free problem."""
    settings = Settings(levels=12, particles=1, resample_when="always", reward_moves=False)
    with_r = Problem((2,), [Factor(g_full), Factor(g_diag)], [RewardFactor(QuadraticReward([3.0, 3.0], 5.0))])
    without = Problem((2,), [Factor(g_full), Factor(g_diag)])
    assert torch.equal(sample(with_r, settings).particles, sample(without, settings).particles)
    flow_settings = settings.replace(kernel="langevin")
    assert torch.equal(sample(with_r, flow_settings).particles, sample(without, flow_settings).particles)


# -- (i) errors ------------------------------------------------------------------------

def test_nan_from_an_expert_names_the_expert_and_the_level(g_full):
    problem = Problem((2,), [Factor(g_full), Factor(NaNBelow(0.45))])
    with pytest.raises(SamplerError, match=r"broken_net.*level 6 \(sigma=0\.4000\)"):
        sample(problem, Settings(levels=10, particles=4))


def test_nan_from_a_reward_names_the_reward(g_full):
    class Bad:
        name = "bad_score"

        def score(self, x0):
            return torch.full((x0.shape[0],), float("nan"))

    with pytest.raises(SamplerError, match="bad_score.*level 0"):
        sample(Problem((2,), [Factor(g_full)], [RewardFactor(Bad())]), Settings(levels=5, particles=4))


def test_all_zero_weights_names_the_rejecting_reward(g_full):
    ok = QuadraticReward([0.0, 0.0], name="harmless")
    wall = HalfSpaceReward([1.0, 0.0], -50.0, name="wall")
    for settings in (Settings(levels=8, particles=8), Settings(levels=8, particles=8, weighting="greedy"),
                     Settings(levels=8, particles=8, kernel="langevin")):
        with pytest.raises(SamplerError, match="'wall'") as err:
            sample(Problem((2,), [Factor(g_full)], [RewardFactor(ok), RewardFactor(wall)]), settings)
        assert "harmless" not in str(err.value)


def test_wrong_velocity_shape_is_reported(g_full):
    class Wrong:
        name = "wrong_shape"

        def velocity(self, x, sigma):
            return x[:, :1]

    with pytest.raises(SamplerError, match="wrong_shape.*shape"):
        sample(Problem((2,), [Factor(Wrong())]), Settings(levels=3, particles=2))


def test_uncovered_coordinates_fail_at_setup(g_full):
    problem = Problem((3,), [Factor(g_full, region=(slice(0, 2),))])
    with pytest.raises(SamplerError, match="covered by no generative expert.*\\(2,\\)"):
        sample(problem, Settings(levels=3, particles=2))


def test_settings_and_plan_errors(g_full):
    with pytest.raises(SettingsError, match="kernel"):
        Settings(kernel="gibbs")
    with pytest.raises(SettingsError, match="median"):
        Settings(resample="median")  # greedy only
    with pytest.raises(SettingsError, match="levels"):
        Settings(levels=0)
    flow_only = Problem((2,), [Factor(FlowOnly(g_full, "net_a"))])
    with pytest.raises(SettingsError, match="net_a"):
        sample(flow_only, Settings(kernel="mala", levels=3))
    with pytest.raises(SettingsError, match="ais.*net_a"):
        sample(flow_only, Settings(annealing="ais", levels=3))
    soft = Problem((2,), [Factor(g_full, mask=torch.tensor([1.0, 0.5]))])
    with pytest.raises(SettingsError, match="the mask on '.*' is soft"):
        sample(soft, Settings(kernel="hmc", levels=3))
    with pytest.raises(SettingsError, match="cycle"):
        Problem((2,), [Factor(g_full, parents=(1,)), Factor(g_full, parents=(0,))])
    with pytest.raises(SettingsError, match="init tensor"):
        sample(Problem((2,), [Factor(g_full)]), Settings(levels=3, particles=2, init=torch.zeros(3, 2)))


# -- the plan, the trace, the output ------------------------------------------------------

def test_plan_says_which_sampler_ran(g_full):
    exact = sample(Problem((2,), [Factor(g_full)]), Settings(levels=3, particles=4))
    assert exact.plan["annealing"] == "ais" and exact.plan["kernel"] == "mala"
    assert exact.plan["exact"].startswith("exact")
    approx = sample(Problem((2,), [Factor(FlowOnly(g_full))]), Settings(levels=3, particles=4))
    assert approx.plan["annealing"] == "flow" and approx.plan["kernel"] == "langevin"
    assert "no log density" in approx.plan["notes"][0]


def test_trace_and_callback(g_full):
    seen = []
    reward = QuadraticReward([0.5, 0.5], name="q")
    settings = Settings(levels=6, particles=5, resample_when="always")
    result = sample(Problem((2,), [Factor(g_full)], [RewardFactor(reward)]), settings, callback=seen.append)
    assert len(result.trace) == len(seen) == 7
    assert [i.level for i in result.trace] == list(range(7))
    assert torch.allclose(torch.tensor([i.sigma for i in result.trace], dtype=torch.float64), result.sigmas)
    for info in result.trace:
        assert info.x0_hat.shape == (5, 2) and info.rewards.shape == (5, 1) and info.scores.shape == (5,)
        assert info.ancestors.shape == (5,) and 0 <= int(info.ancestors.min()) and int(info.ancestors.max()) < 5
    assert all(i.resampled for i in result.trace[:-1]) and not result.trace[-1].resampled
    # level 0: x0_hat at sigma = 1 is the prior mean for every particle
    assert torch.allclose(result.trace[0].x0_hat, g_full.mean.float().expand(5, 2), atol=1e-5)
    light = sample(Problem((2,), [Factor(g_full)]), settings.replace(keep_trace="scores"))
    assert light.trace[0].x0_hat is None
    assert sample(Problem((2,), [Factor(g_full)]), settings.replace(keep_trace=False)).trace == []


def test_output_modes(g_full):
    problem = Problem((2,), [Factor(g_full)], [RewardFactor(QuadraticReward([0.0, 0.0]))])
    base = Settings(levels=5, particles=6)
    assert sample(problem, base.replace(output="all")).samples.shape == (6, 2)
    assert sample(problem, base.replace(num_samples=3)).samples.shape == (3, 2)
    best = sample(problem, base.replace(output="best"))
    assert best.samples.shape == (1, 2)
    assert torch.equal(best.samples[0], best.particles[int(best.scores.argmax())])
    r = sample(problem, base)
    assert math.isclose(float(torch.logsumexp(r.log_weights, 0)), 0.0, abs_tol=1e-9)


def test_init_tensor_and_explicit_schedule(g_full):
    start = torch.tensor([[0.5, 0.5]]).expand(4, 2)
    result = sample(Problem((2,), [Factor(g_full)]), Settings(schedule=[0.5, 0.25, 0.0], particles=4, init=start))
    assert result.plan["annealing"] == "flow" and result.plan["init"] == "tensor"
    assert result.trace[0].sigma == 0.5 and len(result.trace) == 3


# -- composition -------------------------------------------------------------------------------

def test_soft_masks_normalise_the_composed_velocity():
    a = GaussianFlow([1.0, 1.0, 1.0], var=0.3)
    b = GaussianFlow([-1.0, 0.0, 2.0], var=0.6)
    ma, mb = torch.tensor([1.0, 0.7, 0.0]), torch.tensor([0.2, 0.3, 1.0])
    field = ProductField([Factor(a, 2.0, mask=ma), Factor(b, 1.0, mask=mb)], (3,), dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    s = torch.full((5,), 0.4, dtype=torch.float64)
    values = field.evaluate(x, 0.4)
    va, vb = a.velocity(x, s), b.velocity(x, s)
    expected = (2.0 * ma * va + mb * vb) / (2.0 * ma + mb)
    assert torch.allclose(values.velocity, expected)
    assert torch.allclose(values.score, 2.0 * ma * a.score(x, s) + mb * b.score(x, s))


# -- Eq. 7 ---------------------------------------------------------------------------------------

def test_conditional_update_is_the_eq7_gradient_step():
    """Child: a diagonal Gaussian over coords 1:3, parent over 0:2. Its velocity is
    affine, v = k x + c per coordinate, so grad ||v - v_pa||^2 = 2 k (v - v_pa)
    on the child's coordinates that a parent covers (coordinate 1 only)."""
    parent = GaussianFlow([1.0, -1.0], var=0.4)
    child = GaussianFlow([0.0, 2.0], var=[0.3, 0.5])
    field = ProductField([Factor(parent, region=(slice(0, 2),)),
                          Factor(child, region=(slice(1, 3),), parents=(0,))], (3,), dtype=torch.float64)
    sigma, lam = 0.6, 0.05
    x = torch.randn(7, 3, dtype=torch.float64)
    out = conditional_update(field, x, sigma, child=1, lam=lam)
    s = torch.full((7,), sigma, dtype=torch.float64)
    var = torch.tensor([0.3, 0.5], dtype=torch.float64)
    k = (sigma - (1 - sigma) * var) / ((1 - sigma) ** 2 * var + sigma**2)
    v_child = child.velocity(x[:, 1:3], s)
    v_parent = parent.velocity(x[:, 0:2], s)[:, 1]
    expected = x.clone()
    expected[:, 1] = x[:, 1] - lam * 2 * k[0] * (v_child[:, 0] - v_parent)
    assert torch.allclose(out, expected)
    # the update reduces the disagreement
    after = child.velocity(out[:, 1:3], s)[:, 0] - parent.velocity(out[:, 0:2], s)[:, 1]
    assert float(after.abs().sum()) < float((v_child[:, 0] - v_parent).abs().sum())


def test_conditional_updates_run_inside_the_sampler(g_full, g_diag):
    problem = Problem((2,), [Factor(g_full), Factor(FlowOnly(g_diag, "child"), parents=(0,))])
    result = sample(problem, Settings(levels=5, particles=4, cond_updates=2))
    assert result.evaluations["velocity_grad"] == 4 * 2 * 4  # 4 levels with sigma > 0, 2 updates, 4 particles


# -- schedules -----------------------------------------------------------------------------------

def test_schedules():
    lin = make_schedule("linear", 4)
    assert torch.allclose(lin, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))
    shifted = make_schedule("flux_shift", 4, shift=3.0)
    assert shifted[0] == 1.0 and shifted[-1] == 0.0
    assert math.isclose(float(shifted[2]), 3 * 0.5 / (1 + 2 * 0.5))
    assert bool((shifted[1:-1] > lin[1:-1]).all())  # more time at high noise
    assert torch.equal(make_schedule([1.0, 0.3, 0.0], 99), torch.tensor([1.0, 0.3, 0.0], dtype=torch.float64))
    for bad in ([1.0, 0.5], [1.0, 0.6, 0.7, 0.0], [1.2, 0.0]):
        with pytest.raises(SettingsError):
            make_schedule(bad, 3)


def test_flow_path_with_one_expert_follows_its_ode(g_full):
    """One expert, no MCMC: Euler on its exact velocity. Not exact (Euler error
    O(1/T)) -- a loose check that the flow path transports noise to data."""
    r = sample(Problem((2,), [Factor(FlowOnly(g_full))]),
               Settings(levels=100, particles=4000, kernel="none", keep_trace=False))
    x = r.particles.double()
    assert torch.allclose(x.mean(0), g_full.mean, atol=0.05)
    assert torch.allclose(torch.cov(x.T), g_full.covariance(), atol=0.05)


def test_analytic_module_does_not_import_torch():
    code = ("import sys, poelang.stdlib.analytic as a; t = sys.modules.get('torch');"
            "assert t is None or type(t).__name__ == '_LazyModule', type(t)")
    subprocess.run([sys.executable, "-c", code], check=True)
