"""The autoregressive annealing path (paper App. C) against closed forms.

The video prior is a Gaussian Markov chain over frames, given to the engine
as a *frame-wise* expert (``chunk_velocity(x, sigma, context)``: the noised
conditional of a chunk given the frames before it), multiplied by a
per-frame Gaussian (the simulator's expert, separable over frames). The
product is Gaussian, with a closed-form mean and covariance that couples the
frames: sampling the chunks in order is only right if the chunk weights carry
the future frames' evidence back (SMC over chunks), so the check has teeth.
"""
from __future__ import annotations

import functools
import math

import pytest
import torch

from poelang.infer import Factor, Problem, RewardFactor, SamplerError, Settings, SettingsError, sample
from poelang.infer.autoregressive import WindowField, chunk_frames
from poelang.infer.conditional import simulator_updates
from poelang.stdlib.analytic import LOG_2PI, GaussianFlow, QuadraticReward, SimulatorGaussian

from .checks import assert_within_mc, iid_floor, moment_variances, replicate, weighted_moments


class MarkovVideo:
    """A video prior x_1 ~ N(m1, q1 I), x_t | x_{t-1} ~ N(rho x_{t-1} + b, q I),
    independent over a frame's coordinates: a frame-wise expert.

    ``chunk_velocity`` / ``chunk_log_prob`` give the exact noised conditional
    of a chunk of c frames given the frames before it (only the last one
    matters); ``velocity`` / ``log_prob`` the joint over all frames (so the
    joint path can sample the same product)."""

    has_log_prob = True

    def __init__(self, frames, frame_shape, rho=0.8, q=0.3, m1=0.5, q1=1.0, b=0.2, name="markov"):
        self.frames, self.frame_shape, self.name = frames, tuple(frame_shape), name
        self.rho, self.q, self.m1, self.q1, self.b = rho, q, m1, q1, b
        mean, cov = self.moments(frames, None)
        D = math.prod(self.frame_shape)
        self.joint_mean = mean[:, None].expand(frames, D).reshape((frames,) + self.frame_shape)
        self.joint_cov = cov  # [f, f], the same for every coordinate of a frame
        self.joint = GaussianFlow(self.joint_mean, cov=torch.kron(cov, torch.eye(D, dtype=torch.float64)))

    def moments(self, c, first_mean):
        """Mean [c] (or [B, c] given the first frame's mean [B]) and covariance [c, c]
        of c consecutive frames whose first frame has that mean (None: the chain's start)."""
        v0 = self.q1 if first_mean is None else self.q
        m0 = torch.tensor(self.m1, dtype=torch.float64) if first_mean is None else first_mean
        var, means = [v0], [m0]
        for _ in range(1, c):
            var.append(self.rho**2 * var[-1] + self.q)
            means.append(self.rho * means[-1] + self.b)
        S = torch.zeros(c, c, dtype=torch.float64)
        for i in range(c):
            for j in range(i, c):
                S[i, j] = S[j, i] = self.rho ** (j - i) * var[i]
        return torch.stack(means, dim=-1), S

    def _parts(self, x, sigma, context):
        B, c = x.shape[0], x.shape[1]
        xf = x.double().reshape(B, c, -1)  # [B, c, D]
        if context.shape[1] == 0:
            mean, S = self.moments(c, None)
            mean = mean.expand(B, c)[:, :, None]
        else:
            last = context[:, -1].double().reshape(B, -1)  # [B, D]
            mean, S = self.moments(c, self.rho * last.reshape(-1) + self.b)
            mean = mean.reshape(B, -1, c).transpose(1, 2)  # [B, c, D]
        lam, U = torch.linalg.eigh(S)
        s = sigma.double().reshape(B, 1, 1)
        r = torch.einsum("ij,bjd->bid", U.T, xf - (1 - s) * mean)  # eigenbasis of the frame axis
        cl = (1 - s) ** 2 * lam[None, :, None] + s**2
        return xf, mean, U, r, cl, s, lam

    def chunk_velocity(self, x, sigma, context):
        xf, mean, U, r, cl, s, lam = self._parts(x, sigma, context)
        v = torch.einsum("ij,bjd->bid", U, (s - (1 - s) * lam[None, :, None]) / cl * r) - mean
        return v.reshape(x.shape).to(x.dtype)

    def chunk_log_prob(self, x, sigma, context):
        xf, mean, U, r, cl, s, lam = self._parts(x, sigma, context)
        lp = -0.5 * (r * r / cl + torch.log(cl) + LOG_2PI)
        return lp.reshape(x.shape[0], -1).sum(1).to(x.dtype)

    def velocity(self, x, sigma):
        return self.joint.velocity(x, sigma)

    def log_prob(self, x, sigma):
        return self.joint.log_prob(x, sigma)


FRAMES, FRAME = 4, (1, 1, 2)
SHAPE = (FRAMES,) + FRAME
D = FRAMES * 2


def product_terms():
    prior = MarkovVideo(FRAMES, FRAME)
    gen = torch.Generator().manual_seed(3)
    center = 0.8 * torch.randn(SHAPE, generator=gen, dtype=torch.float64)
    sim = SimulatorGaussian(center, weight=1.0, name="sim")  # N(center, 0.5) per coordinate
    return prior, sim, center


def exact_product(prior: MarkovVideo, center: torch.Tensor, sim_var: float = 0.5):
    """Mean [f*D] and covariance of N(prior) * N(center, sim_var I), flattened frames-first."""
    P0 = torch.linalg.inv(torch.kron(prior.joint_cov, torch.eye(2, dtype=torch.float64)))
    P = P0 + torch.eye(D, dtype=torch.float64) / sim_var
    cov = torch.linalg.inv(P)
    mean = cov @ (P0 @ prior.joint_mean.reshape(-1) + center.reshape(-1) / sim_var)
    return mean, cov


AR = Settings(levels=30, particles=400, mcmc_steps=2, keep_trace=False, path="autoregressive", chunk=1)
RUNS = 8


@functools.lru_cache(maxsize=None)
def estimates(chunk: int, resample_when: str) -> torch.Tensor:
    """[RUNS, mean + covariance] of the weighted particles, over independent seeds
    (shared by the tests that compare them with different answers)."""
    prior, sim, _ = product_terms()
    problem = Problem(SHAPE, [Factor(prior), Factor(sim, simulator=True)])
    return replicate(problem, AR.replace(chunk=chunk, resample_when=resample_when), RUNS, weighted_moments)


def check_moments(est: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, label: str) -> None:
    floor = iid_floor(moment_variances(mean, cov), est.shape[0], AR.particles)
    assert_within_mc(est, torch.cat([mean, cov.reshape(-1)]), label, floor=floor)


# -- the expert used here is right ---------------------------------------------------

def test_markov_expert_conditionals_are_the_joint_gaussian_conditionals():
    """chunk_log_prob(x_k | x_<k) + log p(x_<k) == joint log density, at every sigma = 0
    (the chain rule), and at sigma = 1 it is N(0, I); chunk_velocity is the
    velocity of that conditional (score from autograd of chunk_log_prob)."""
    from poelang.infer import flow

    prior = MarkovVideo(FRAMES, FRAME)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((5,) + SHAPE, generator=gen, dtype=torch.float64)
    zero, one = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    for chunk in (1, 2, 3):
        total = torch.zeros(5, dtype=torch.float64)
        for a, b in chunk_frames(FRAMES, chunk):
            total += prior.chunk_log_prob(x[:, a:b], zero, x[:, :a])
            at_one = prior.chunk_log_prob(x[:, a:b], one, x[:, :a])
            exact = torch.distributions.Normal(0.0, 1.0).log_prob(x[:, a:b]).reshape(5, -1).sum(1)
            assert torch.allclose(at_one, exact, atol=1e-10)
            for sigma in (0.2, 0.7):
                s = torch.full((5,), sigma, dtype=torch.float64)
                xc = x[:, a:b].clone().requires_grad_(True)
                (score,) = torch.autograd.grad(prior.chunk_log_prob(xc, s, x[:, :a]).sum(), xc)
                got = flow.score_from_velocity(x[:, a:b], prior.chunk_velocity(x[:, a:b], s, x[:, :a]), s)
                assert torch.allclose(got, score, atol=1e-9)
        assert torch.allclose(total, prior.log_prob(x, zero), atol=1e-9)


# -- exactness -----------------------------------------------------------------------

def test_autoregressive_chunks_of_one_frame_match_the_closed_form_product():
    prior, _, center = product_terms()
    check_moments(estimates(1, "always"), *exact_product(prior, center), "autoregressive path, chunk = 1")


def test_autoregressive_chunks_of_two_frames_match_the_closed_form_and_chunks_of_one():
    prior, _, center = product_terms()
    two, one = estimates(2, "ess"), estimates(1, "always")
    check_moments(two, *exact_product(prior, center), "autoregressive path, chunk = 2")
    # the two chunkings estimate the same moments: a two-sample test
    se = torch.sqrt(two.var(0) / two.shape[0] + one.var(0) / one.shape[0]).clamp_min(1e-6)
    assert float(((two.mean(0) - one.mean(0)).abs() / se).max()) < 5.5


def test_the_check_rejects_the_filtering_distribution():
    """Sampling each frame from prior(x_t | x_<t) * sim(x_t) without carrying
    weights (the 'filtering' answer) is the mistake this path could make; its
    moments differ from the product's, and the check sees it."""
    prior, sim, center = product_terms()
    mean, cov = exact_product(prior, center)
    c = center.reshape(FRAMES, -1)
    filtered, previous = [], None
    for t in range(FRAMES):  # x_t ~ prior(x_t | x_{t-1}) * sim(x_t), means only
        m, v = (torch.full((2,), prior.m1, dtype=torch.float64), prior.q1) if t == 0 else (
            prior.rho * previous + prior.b, prior.q)
        previous = (m / v + c[t] / 0.5) / (1 / v + 1 / 0.5)
        filtered.append(previous)
    wrong_mean = torch.cat(filtered)
    assert float((wrong_mean - mean).abs().max()) > 0.1
    with pytest.raises(AssertionError):
        check_moments(estimates(1, "always"), wrong_mean, cov, "filtering answer")


def test_joint_and_autoregressive_paths_sample_the_same_product():
    prior, sim, center = product_terms()
    mean, cov = exact_product(prior, center)
    problem = Problem(SHAPE, [Factor(prior), Factor(sim)])
    check_moments(replicate(problem, AR.replace(path="joint"), RUNS, weighted_moments), mean, cov, "joint path")


def test_rewards_enter_on_the_whole_video_in_the_last_chunk():
    """A quadratic reward on the whole video tilts the product to another
    Gaussian; the autoregressive path samples it (rewards scored in the last chunk)."""
    prior, sim, center = product_terms()
    target = torch.linspace(-1.0, 1.0, D, dtype=torch.float64).reshape(SHAPE)
    quad = QuadraticReward(target, scale=0.5, name="quad")  # exp(-0.5 |x - target|^2) = N(target, I)
    problem = Problem(SHAPE, [Factor(prior), Factor(sim)], [RewardFactor(quad)])
    P0 = torch.linalg.inv(torch.kron(prior.joint_cov, torch.eye(2, dtype=torch.float64)))
    P = P0 + torch.eye(D, dtype=torch.float64) / 0.5 + torch.eye(D, dtype=torch.float64)
    cov = torch.linalg.inv(P)
    mean = cov @ (P0 @ prior.joint_mean.reshape(-1) + center.reshape(-1) / 0.5 + target.reshape(-1))
    est = replicate(problem, AR.replace(chunk=2), RUNS, weighted_moments)
    check_moments(est, mean, cov, "autoregressive path with a reward")


# -- contracts -----------------------------------------------------------------------

def test_same_seed_same_video_and_max_batch_changes_nothing():
    prior, sim, _ = product_terms()
    problem = Problem(SHAPE, [Factor(prior), Factor(sim)])
    settings = Settings(levels=8, particles=12, path="autoregressive", chunk=2, resample_when="always")
    a, b = sample(problem, settings), sample(problem, settings)
    assert torch.equal(a.particles, b.particles) and torch.equal(a.samples, b.samples)
    assert all(torch.equal(x.x0_hat, y.x0_hat) for x, y in zip(a.trace, b.trace))
    # context rows must follow their particles through batching and resampling
    c = sample(problem, settings.replace(max_batch=5))
    assert torch.equal(a.particles, c.particles)
    assert not torch.equal(a.particles, sample(problem, settings.replace(seed=1)).particles)


def test_trace_plan_and_levels():
    prior, sim, _ = product_terms()
    result = sample(Problem(SHAPE, [Factor(prior), Factor(sim)]),
                    Settings(levels=5, particles=4, path="autoregressive", chunk=3))
    assert result.plan["path"] == "autoregressive" and result.plan["chunks"] == [[0, 3], [3, 4]]
    assert [t.level for t in result.trace] == list(range(12))
    assert [t.frames for t in result.trace] == [(0, 3)] * 6 + [(3, 4)] * 6
    # frames after the chunk are zero in the trace, the chunk's frames are filled in
    first = result.trace[5].x0_hat
    assert torch.count_nonzero(first[:, 3:]) == 0 and torch.count_nonzero(first[:, :3]) > 0
    assert result.particles.shape == (4,) + SHAPE
    assert result.log_evidence is None  # a separable expert with a density: see the module doc


def test_framewise_only_expert_needs_the_autoregressive_path():
    class FramewiseOnly:
        name = "fp"

        def __init__(self):
            self.inner = MarkovVideo(FRAMES, FRAME)

        def chunk_velocity(self, x, sigma, context):
            return self.inner.chunk_velocity(x, sigma, context)

    problem = Problem(SHAPE, [Factor(FramewiseOnly())])
    with pytest.raises(SettingsError, match="frame-wise only"):
        sample(problem, Settings(levels=3, particles=2))
    result = sample(problem, Settings(levels=3, particles=2, path="autoregressive"))
    assert result.plan["annealing"] == "flow" and result.particles.shape == (2,) + SHAPE


def test_joint_video_expert_is_refused_with_a_message():
    prior, sim, _ = product_terms()
    joint = prior.joint  # a GaussianFlow with a covariance across frames
    with pytest.raises(SettingsError, match="'g'.*velocity at frame .* changed"):
        sample(Problem(SHAPE, [Factor(GaussianFlow(joint.mean, cov=joint.covariance(), name="g")), Factor(sim)]),
               Settings(levels=3, particles=2, path="autoregressive"))
    # one chunk is the whole video: a joint expert is fine then
    whole = sample(Problem(SHAPE, [Factor(GaussianFlow(joint.mean, cov=joint.covariance(), name="g")), Factor(sim)]),
                   Settings(levels=3, particles=2, path="autoregressive", chunk=FRAMES))
    assert whole.plan["chunks"] == [[0, FRAMES]]
    sim.frame_separable = False
    with pytest.raises(SettingsError, match="frame_separable = False"):
        sample(Problem(SHAPE, [Factor(prior), Factor(sim)]), Settings(levels=3, particles=2, path="autoregressive"))


def test_settings_are_validated():
    prior, sim, _ = product_terms()
    with pytest.raises(SettingsError, match="chunk=5 is more than the video's 4 frames"):
        sample(Problem(SHAPE, [Factor(prior)]), Settings(levels=2, particles=2, path="autoregressive", chunk=5))
    with pytest.raises(SettingsError, match="no frame axis"):
        sample(Problem((3,), [Factor(GaussianFlow([0.0, 0.0, 0.0], var=1.0))]),
               Settings(levels=2, particles=2, path="autoregressive"))
    with pytest.raises(SettingsError, match="path"):
        Settings(path="sideways")
    with pytest.raises(SettingsError, match="chunk"):
        Settings(chunk=0)
    with pytest.raises(SettingsError, match="part of the frame axis"):
        sample(Problem(SHAPE, [Factor(prior), Factor(sim, region=(slice(0, 2),))]),
               Settings(levels=2, particles=2, path="autoregressive"))


def test_window_field_places_the_chunk_and_checks_rows():
    prior, sim, _ = product_terms()
    field = WindowField([Factor(prior), Factor(sim)], SHAPE, (1, 3), [True, False], dtype=torch.float64)
    x = torch.randn((3, 2) + FRAME, dtype=torch.float64)
    context = torch.randn((3, 1) + FRAME, dtype=torch.float64)
    field.bind(context)
    s = torch.full((3,), 0.4, dtype=torch.float64)
    whole = torch.cat([torch.zeros_like(context), x, torch.zeros((3, 1) + FRAME, dtype=torch.float64)], dim=1)
    assert torch.allclose(field.expert_velocity(1, x, 0.4), sim.velocity(whole, s)[:, 1:3])
    assert torch.allclose(field.expert_velocity(0, x, 0.4), prior.chunk_velocity(x, s, context))
    with pytest.raises(SamplerError, match="context"):
        field.expert_velocity(0, x[:2], 0.4)


# -- the simulator's gradient updates (App. C's "8 gradient updates") ------------------

def test_simulator_updates_step_toward_the_simulation_in_closed_form():
    prior, sim, center = product_terms()
    from poelang.infer.product import ProductField

    field = ProductField([Factor(prior), Factor(sim, simulator=True)], SHAPE, dtype=torch.float64)
    x = torch.randn((6,) + SHAPE, dtype=torch.float64)
    sigma, lam = 0.4, 0.5
    got = simulator_updates(field, x, sigma, [1], lam, rounds=1)
    C = (1 - sigma) ** 2 * 0.5 + sigma**2  # the simulator Gaussian's noised variance
    exact = x + lam * sigma**2 / 2 * (-(x - (1 - sigma) * center) / C)  # A = 2 experts cover every coordinate
    assert torch.allclose(got, exact, atol=1e-12)
    eight = simulator_updates(field, x, sigma, [1], lam, rounds=8)
    assert (eight - (1 - sigma) * center).abs().max() < (got - (1 - sigma) * center).abs().max()
    assert torch.equal(simulator_updates(field, x, 0.0, [1], lam, rounds=8), x)  # none at sigma = 0


def test_sim_updates_pull_the_video_toward_the_simulation():
    prior, sim, center = product_terms()
    problem = Problem(SHAPE, [Factor(prior), Factor(sim, simulator=True)])
    base = Settings(levels=20, particles=64, path="autoregressive", kernel="langevin", annealing="flow",
                    output="all", resample="none")
    plain = sample(problem, base)
    pulled = sample(problem, base.replace(sim_updates=8))
    assert pulled.plan["annealing"] == "flow"
    d_plain = (plain.particles - center).pow(2).mean()
    d_pulled = (pulled.particles - center).pow(2).mean()
    assert d_pulled < 0.3 * d_plain  # measured: 0.47 without, 0.06 with 8 updates
    with pytest.raises(SettingsError, match="no factor of the product is a simulator"):
        sample(Problem(SHAPE, [Factor(prior), Factor(sim)]), base.replace(sim_updates=2))


def test_inversion_on_the_autoregressive_path_gives_the_video_back():
    """init = inversion, chunk by chunk: each chunk is inverted along its conditional flow given the particle's own
    earlier frames, so with no MCMC and no resampling the run retraces the inversion (the fixed-point iterations
    make each step exact) and the video comes back, for a frame-wise expert whose conditionals couple the frames."""
    prior, sim, center = product_terms()
    video = torch.randn((3,) + SHAPE, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    problem = Problem(SHAPE, [Factor(prior), Factor(sim, exponent=0.5)])
    base = Settings(levels=100, particles=3, kernel="none", resample="none", output="all", keep_trace=False,
                    path="autoregressive", init="inversion", invert=video, dtype="float64")
    errors = {}
    for chunk in (1, 3):
        for iters in (0, 4):
            got = sample(problem, base.replace(chunk=chunk, invert_iters=iters)).particles
            errors[chunk, iters] = float((got - video).abs().max())
    # measured: plain Euler 0.076 (chunk 1) and 0.062 (chunk 3), 4 iterations 3.6e-10 and 4.2e-10
    for chunk in (1, 3):
        assert errors[chunk, 4] < 1e-8, errors
        assert errors[chunk, 0] > 1e3 * errors[chunk, 4], errors
    # the same start for every particle from one video; a wrong shape is an error
    one = sample(problem, base.replace(invert=video[0], invert_iters=4)).particles
    assert float((one - video[0]).abs().max()) < 1e-8
    with pytest.raises(SettingsError, match="the video to invert has shape"):
        sample(problem, base.replace(invert=video[:, :2]))


def test_fk_path_chunk_by_chunk_matches_the_closed_form_product():
    """annealing='fk' per chunk (velocities only: no MCMC, no log density) is exact too."""
    prior, sim, center = product_terms()
    problem = Problem(SHAPE, [Factor(prior), Factor(sim)])
    settings = AR.replace(annealing="fk", levels=100, mcmc_steps=0)
    est = replicate(problem, settings, RUNS, weighted_moments)
    check_moments(est, *exact_product(prior, center), "autoregressive fk path, chunk = 1")
    result = sample(problem, settings.replace(levels=4, particles=8))
    assert result.plan["annealing"] == "fk" and result.evaluations["log_prob"] == 0
    assert result.plan["exact"].startswith("exact") and "chunk by chunk" in result.plan["exact"]
