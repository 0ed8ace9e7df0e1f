"""Inversion initialisation: the particles start from the flow-ODE inversion of
a given canvas (paper §4.3, Alg. 1 line 2), measured against the exact ODE of
a Gaussian expert, whose flow map is known in closed form."""
from __future__ import annotations

import pytest
import torch

from poelang.infer import Factor, Problem, ProductField, Settings, SettingsError, invert, make_schedule, sample
from poelang.stdlib.analytic import GaussianFlow

REGEN = dict(particles=16, kernel="none", output="all", resample="none", dtype="float64", keep_trace=False)


def exact_flow_map(g: GaussianFlow, x0: torch.Tensor, sigma: float) -> torch.Tensor:
    """Where the exact probability-flow ODE of N(mu, S) takes x0 at sigma:
    x_sigma = (1 - sigma) mu + C_sigma^(1/2) S^(-1/2) (x0 - mu), C_sigma = (1-sigma)^2 S + sigma^2 I
    (S and C_sigma share eigenvectors); computed here, independently of the expert's code."""
    lam, U = torch.linalg.eigh(g.covariance())
    mu = g.mean.reshape(-1)
    z = (x0.reshape(x0.shape[0], -1) - mu) @ U / lam.sqrt()
    c = torch.sqrt((1 - sigma) ** 2 * lam + sigma**2)
    return ((1 - sigma) * mu + (z * c) @ U.T).reshape(x0.shape)


@pytest.fixture
def x0(g_full):
    return g_full.sample_x0(16, torch.Generator().manual_seed(0))


def test_inversion_follows_the_exact_ode_to_first_order(g_full, x0):
    field = ProductField([Factor(g_full)], (2,), dtype=torch.float64)
    exact = exact_flow_map(g_full, x0, 1.0)
    errors = {}
    for T in (50, 200, 800):
        for iters in (0, 2):
            got = invert(field, x0, make_schedule("linear", T), iters)
            errors[T, iters] = float((got - exact).abs().max())
    # Euler's error is O(1/T) (measured: 0.086, 0.022, 0.0054): it shrinks 4x when T grows 4x
    for iters in (0, 2):
        assert errors[800, iters] < 0.01
        assert 3.5 < errors[50, iters] / errors[200, iters] < 4.5
        assert 3.5 < errors[200, iters] / errors[800, iters] < 4.5
    # an intermediate sigma too, on a shifted schedule that starts below 1
    sigmas = torch.linspace(0.6, 0.0, 801, dtype=torch.float64)
    assert float((invert(field, x0, sigmas, 2) - exact_flow_map(g_full, x0, 0.6)).abs().max()) < 0.01


def test_the_ode_check_has_teeth(g_full, x0):
    """Integrating with the velocity's sign flipped (a classic inversion bug) is far off."""
    class Flipped:
        name, has_log_prob = "flipped", False

        def velocity(self, x, sigma):
            return -g_full.velocity(x, sigma)

    field = ProductField([Factor(Flipped())], (2,), dtype=torch.float64)
    got = invert(field, x0, make_schedule("linear", 800), 0)
    assert float((got - exact_flow_map(g_full, x0, 1.0)).abs().max()) > 0.5


def test_inversion_then_euler_regeneration_gives_the_input_back(g_full, g_diag, x0):
    """With no MCMC the run's Euler levels retrace the inversion; the fixed-point
    iterations make each step the exact inverse of the sampler's step."""
    problem = Problem((2,), [Factor(g_full), Factor(g_diag, exponent=0.5)])
    base = Settings(levels=200, init="inversion", invert=x0, **REGEN)
    errors = {}
    for iters in (0, 2, 4):
        out = sample(problem, base.replace(invert_iters=iters)).particles
        errors[iters] = float((out - x0).abs().max())
    # measured: 2.1e-2 (plain Euler: the two half-steps do not cancel), 2.9e-7, 6.4e-12
    assert errors[0] < 0.05
    assert errors[2] < 1e-5
    assert errors[4] < 1e-9
    assert errors[0] > 100 * errors[2]  # so the iterations are what makes it exact


def test_regional_product_on_an_image_round_trip(image_gaussians):
    a, b, c = image_gaussians
    shape = a.event_shape
    crop = GaussianFlow(torch.zeros(3, 4, 2), var=0.3, name="left")
    problem = Problem(shape, [Factor(a), Factor(b), Factor(crop, region=(slice(None), slice(None), slice(0, 2)))])
    target = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    out = sample(problem, Settings(levels=60, init="inversion", invert=target, invert_iters=4, **REGEN))
    assert out.particles.shape == (16,) + shape
    assert float((out.particles - target).abs().max()) < 1e-6
    assert out.plan["init"] == "inversion" and out.plan["annealing"] == "flow"


def test_one_input_per_particle(g_full, x0):
    out = sample(Problem((2,), [Factor(g_full)]), Settings(levels=100, init="inversion", invert=x0, **REGEN))
    assert float((out.particles - x0).abs().max()) < 1e-5  # each particle its own input, in order


def test_inverted_particles_are_the_start(g_full, x0):
    """Level 0 of the trace is the inversion itself (x0_hat at sigma = 1 of the noise)."""
    one = x0[:1]
    result = sample(Problem((2,), [Factor(g_full)]),
                    Settings(levels=50, particles=3, kernel="none", init="inversion", invert=one[0], dtype="float64"))
    field = ProductField([Factor(g_full)], (2,), dtype=torch.float64)
    noise = invert(field, one, make_schedule("linear", 50), 2)
    start = field.x0_hat(noise, field.evaluate(noise, 1.0, score=False).velocity, 1.0)
    assert torch.allclose(result.trace[0].x0_hat, start.expand(3, 2))


def test_inversion_is_deterministic_and_mcmc_noise_follows_the_seed(g_full, g_diag, x0):
    problem = Problem((2,), [Factor(g_full), Factor(g_diag)])
    settings = Settings(levels=20, particles=16, init="inversion", invert=x0[0], kernel="langevin")
    a, b = sample(problem, settings), sample(problem, settings)
    assert torch.equal(a.particles, b.particles) and torch.equal(a.samples, b.samples)
    assert not torch.equal(a.particles, sample(problem, settings.replace(seed=1)).particles)


def test_wrong_shape_and_settings_are_errors(g_full):
    problem = Problem((2,), [Factor(g_full)])
    with pytest.raises(SettingsError, match=r"shape \(3,\); the experts sample \(2,\)"):
        sample(problem, Settings(levels=3, particles=2, init="inversion", invert=torch.zeros(3)))
    with pytest.raises(SettingsError, match="one per particle"):
        sample(problem, Settings(levels=3, particles=2, init="inversion", invert=torch.zeros(3, 2)))
    with pytest.raises(SettingsError, match="needs invert"):
        Settings(init="inversion")
    with pytest.raises(SettingsError, match="invert is used by init = inversion"):
        Settings(invert=torch.zeros(2))
    with pytest.raises(SettingsError, match="not a tensor"):
        Settings(path="autoregressive", init=torch.zeros(2))
    with pytest.raises(SettingsError, match="invert_iters"):
        Settings(invert_iters=-1)
    with pytest.raises(SettingsError, match="annealing='ais' is not possible: init is an inversion"):
        sample(problem, Settings(levels=3, particles=2, init="inversion", invert=torch.zeros(2), annealing="ais"))
