"""Sampler accuracy on analytic targets, against compute, versus baselines.

    python benchmarks/sampler_accuracy.py            # the full table (a few minutes, 2 cores)
    python benchmarks/sampler_accuracy.py --quick    # smaller budgets, for a smoke run
    python benchmarks/sampler_accuracy.py --widths --seeds 8   # modes of different widths (about 5 minutes)

Targets (closed-form products, so exact samples and mode weights are known):

* ``mix2d``    two 2-D Gaussian mixtures with unequal, anisotropic components;
               the product has modes of weight 0.39, 0.59 and two small ones.
* ``mix64d``   two 64-D Gaussian mixtures; the product has 2 dominant modes.
* ``mix2d×hs`` the 2-D product times a hard half-space constraint x + y <= 1,
               which keeps 7 % of the heaviest mode (truncated: masses 0.87,
               0.02, 0.02, 0.09).
* ``widths``   (``--widths``, its own table) a needle (sd 0.02) and a wide mode
               (sd 1) times an expert that pulls mass between them late in the
               annealing, in 2-D and 4-D: the needle's mass against the closed
               form, per run, for ais / fk / flow / the baselines at several
               levels and MCMC steps, and with an adaptive schedule (a pilot
               run places the levels where its weight increments spread).

Methods, all run by the same engine (``poelang.infer``) with different settings:

* ``poelang``       exact SMC: annealing='ais', MALA moves with the rewards in
                    the accept (reward_moves), annealed importance weights,
                    systematic resampling when ESS < L/2; output drawn from the
                    weighted particles.
* ``poelang-flow``  the paper's path as flow networks get it: Euler on the
                    composed velocity + Langevin + telescoped reward weights.
* ``poelang-fk``    annealing='fk' on the same velocity-only experts: the
                    Feynman-Kac corrected SDE (fk_noise = 1), no MCMC, weights
                    from the velocities, telescoped reward weights, systematic
                    resampling when ESS < L/2 (one velocity call per expert
                    per level).
* ``composable``    (i) Euler on the composed velocity, no MCMC, no weights
                    (Composable Diffusion with rectified flows).
* ``langevin``      (ii) Euler + Langevin, no SMC: independent chains, unweighted.
* ``best-of-N``     (iii) N samples of the first expert alone (its own ODE),
                    keep the one with the highest log density under the other
                    experts (+ reward); N chosen for equal compute.
* ``fk-smc``        (iv) path-wise SMC with accumulated importance weights (FK
                    steering / TDS style): the first expert's ODE as proposal,
                    the other experts' log densities and the rewards as
                    potentials on x0_hat (telescoped), resampled on ESS.

Compute is counted in expert evaluations per output sample (one velocity or
log-density call of one expert on one particle); for population methods that
is evaluations per particle; a fused velocity + log-density call of an
analytic expert counts once. Accuracy: sliced Wasserstein-2 distance (256
random directions) between n output samples (drawn from the weighted
particles) and n exact samples, n = L (4000 particles in 2-D, 2000 in 64-D);
the ``floor`` row is exact vs exact, the best any method can show. And the
total-variation error of the mode masses: E[responsibility_k] under the
weighted particles vs the exact product weights.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from poelang.infer import Factor, Problem, RewardFactor, Settings, sample  # noqa: E402
from poelang.stdlib.analytic import HalfSpaceReward, MixtureFlow, VelocityOnly, mixture_product  # noqa: E402

PROJECTIONS = 256


# -- targets -----------------------------------------------------------------------

@dataclass
class Target:
    name: str
    experts: list
    rewards: list
    exact: Callable[[int, torch.Generator], torch.Tensor]  # exact samples
    masses: torch.Tensor  # exact mode masses
    product: MixtureFlow  # for responsibilities

    @property
    def shape(self):
        return self.experts[0].event_shape


def mix2d() -> Target:
    a = MixtureFlow([0.6, 0.4], [[-1.0, 0.0], [1.0, 0.5]], var=[0.4, 0.05], name="a")
    b = MixtureFlow([0.5, 0.5], [[-1.0, 1.0], [1.0, 0.0]], var=[0.05, 0.4], name="b")
    prod = mixture_product([a, b])
    return Target("mix2d", [a, b], [], lambda n, g: prod.sample_x0(n, g), prod.weights, prod)


def mix64d() -> Target:
    D = 64
    u = torch.zeros(D, dtype=torch.float64)
    u[:8] = 1.0
    w = torch.zeros(D, dtype=torch.float64)
    w[8:16] = 1.0
    a = MixtureFlow([0.5, 0.5], torch.stack([u, -u]), var=0.3, name="a64")
    b = MixtureFlow([0.2, 0.5, 0.3], torch.stack([u + 0.5 * w, -u - 0.5 * w, 0.3 * w]), var=0.5, name="b64")
    prod = mixture_product([a, b])
    return Target("mix64d", [a, b], [], lambda n, g: prod.sample_x0(n, g), prod.weights, prod)


def mix2d_halfspace() -> Target:
    base = mix2d()
    hs = HalfSpaceReward([1.0, 1.0], 1.0, name="halfspace")  # cuts the heaviest mode to 7 %
    prod = base.product
    mass = torch.stack([hs.gaussian_mass(prod.means[k], torch.diag(prod.vars[k])) for k in range(prod.K)])
    masses = prod.weights * mass / (prod.weights * mass).sum()

    def exact(n, g):
        out = []
        while sum(x.shape[0] for x in out) < n:
            x = prod.sample_x0(4 * n, g)
            out.append(x[x.sum(1) <= 1.0])
        return torch.cat(out)[:n]

    return Target("mix2d×hs", base.experts, [hs], exact, masses, prod)


# -- metrics -------------------------------------------------------------------------

def sliced_w2(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    d = x.shape[1]
    dirs = torch.randn(d, PROJECTIONS, dtype=torch.float64, generator=g)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ dirs, dim=0)
    py, _ = torch.sort(y @ dirs, dim=0)
    return float(((px - py) ** 2).mean().sqrt())


def mode_error(target: Target, x: torch.Tensor, w: torch.Tensor) -> float:
    resp = torch.softmax(target.product.component_log_prob(x), dim=1)
    est = (w[:, None] * resp).sum(0)
    return 0.5 * float((est - target.masses).abs().sum())


# -- methods ---------------------------------------------------------------------------

class LogDensityReward:
    """Another expert's log density at sigma = 0, used as a reward (baselines)."""

    def __init__(self, expert):
        self.expert, self.name = expert, f"log_{expert.name}"

    def score(self, x0):
        return self.expert.log_prob(x0, torch.zeros(x0.shape[0], dtype=x0.dtype))


@dataclass
class Run:
    x: torch.Tensor  # [n, D] float64
    w: torch.Tensor  # [n] normalised weights
    evals: float  # expert evaluations per output sample


def evaluations(result, particles: int) -> float:
    """Expert calls per particle (a fused velocity + log density call counts once)."""
    return result.evaluations["calls"] / particles


def run_engine(problem: Problem, settings: Settings, extra_reward_evals: bool = False) -> Run:
    result = sample(problem, settings)
    L = settings.particles
    evals = evaluations(result, L)
    if extra_reward_evals:
        n_log = sum(isinstance(r.expert, LogDensityReward) for r in problem.rewards)
        evals += result.evaluations["reward"] / L * n_log / max(1, len(problem.rewards))
    return Run(result.particles.double().reshape(L, -1), result.weights.double(), evals)


def poelang(target: Target, budget: int, L: int, seed: int) -> Run:
    E, K = len(target.experts), 2
    T = max(2, round(budget / ((K + 1) * E)))  # one fused call per expert per MALA point
    problem = Problem(target.shape, [Factor(e) for e in target.experts], [RewardFactor(r) for r in target.rewards])
    return run_engine(problem, Settings(levels=T, particles=L, mcmc_steps=K, seed=seed, keep_trace=False))


def poelang_flow(target: Target, budget: int, L: int, seed: int) -> Run:
    E, K = len(target.experts), 2
    T = max(2, round(budget / ((K + 1) * E)))
    problem = Problem(target.shape, [Factor(VelocityOnly(e)) for e in target.experts],
                      [RewardFactor(r) for r in target.rewards])
    return run_engine(problem, Settings(levels=T, particles=L, mcmc_steps=K, seed=seed, keep_trace=False))


def poelang_fk(target: Target, budget: int, L: int, seed: int) -> Run:
    E = len(target.experts)
    T = max(2, round(budget / E))  # one velocity call per expert per level
    problem = Problem(target.shape, [Factor(VelocityOnly(e)) for e in target.experts],
                      [RewardFactor(r) for r in target.rewards])
    return run_engine(problem, Settings(levels=T, particles=L, annealing="fk", seed=seed, keep_trace=False))


def composable(target: Target, budget: int, L: int, seed: int) -> Run:
    E = len(target.experts)
    T = max(2, round(budget / E))
    problem = Problem(target.shape, [Factor(VelocityOnly(e)) for e in target.experts])
    r = run_engine(problem, Settings(levels=T, particles=L, kernel="none", resample="none", seed=seed, keep_trace=False))
    return Run(r.x, torch.full_like(r.w, 1.0 / L), r.evals)


def langevin_chains(target: Target, budget: int, L: int, seed: int) -> Run:
    E, K = len(target.experts), 2
    T = max(2, round(budget / ((K + 1) * E)))
    problem = Problem(target.shape, [Factor(VelocityOnly(e)) for e in target.experts])
    r = run_engine(problem, Settings(levels=T, particles=L, kernel="langevin", mcmc_steps=K, resample="none",
                                     seed=seed, keep_trace=False))
    return Run(r.x, torch.full_like(r.w, 1.0 / L), r.evals)


def others_as_rewards(target: Target) -> list:
    return [RewardFactor(LogDensityReward(e)) for e in target.experts[1:]] + [RewardFactor(r) for r in target.rewards]


def fk_smc(target: Target, budget: int, L: int, seed: int) -> Run:
    E = len(target.experts)
    T = max(2, round(budget / E))  # one velocity + (E - 1) log densities per level
    problem = Problem(target.shape, [Factor(VelocityOnly(target.experts[0]))], others_as_rewards(target))
    return run_engine(problem, Settings(levels=T, particles=L, kernel="none", seed=seed, keep_trace=False),
                      extra_reward_evals=True)


def best_of_n(target: Target, budget: int, L: int, seed: int, T: int = 25) -> Run:
    E = len(target.experts)
    per_candidate = T + (E - 1)
    N = max(1, budget // per_candidate)
    problem = Problem(target.shape, [Factor(VelocityOnly(target.experts[0]))], others_as_rewards(target))
    n_out = min(L, max(200, 20000 // N))  # fewer outputs when N is large (cost)
    settings = Settings(levels=T, particles=n_out * N, kernel="none", resample="none", seed=seed,
                        keep_trace=False, output="all")
    result = sample(problem, settings)
    x = result.particles.double().reshape(n_out, N, -1)
    score = result.scores.reshape(n_out, N)
    best = torch.argmax(torch.nan_to_num(score, nan=-math.inf), dim=1)
    chosen = x[torch.arange(n_out), best]
    return Run(chosen, torch.full((n_out,), 1.0 / n_out, dtype=torch.float64), float(N * per_candidate))


METHODS = {
    "poelang": poelang,
    "poelang-flow": poelang_flow,
    "poelang-fk": poelang_fk,
    "composable": composable,
    "langevin": langevin_chains,
    "best-of-N": best_of_n,
    "fk-smc": fk_smc,
}


def outputs(run: Run, n: int, seed: int) -> torch.Tensor:
    """n draws from the weighted particles (the sampler's 'sample' output)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.multinomial(run.w, n, replacement=True, generator=g)
    return run.x[idx]


# -- modes of very different widths that exchange mass late (--widths) ----------------------

def widths(D: int) -> Target:
    """A = 0.5 N(-2, 0.02^2 I) + 0.5 N(2, I) (a needle and a wide mode) times B = N(-1, 0.3^2 I).

    The product has a needle mode at -2 and a wide one near -0.75 (per coordinate), with masses
    0.42 / 0.58 (D = 2) and 0.35 / 0.65 (D = 4). Along the annealing the needle holds almost all the
    mass in the middle (0.994 at sigma = 0.3 for D = 2; within 1e-4 of 1 at sigma = 0.2-0.3 for D = 4)
    and gives most of it to the wide mode only below sigma = 0.1, where the two are far apart for
    every move: the weights must carry the exchange."""
    e = torch.ones(D, dtype=torch.float64)
    a = MixtureFlow([0.5, 0.5], torch.stack([-2 * e, 2 * e]), var=torch.stack([0.02**2 * e, e]), name="needle_wide")
    b = MixtureFlow([1.0], (-1.0 * e)[None], var=(0.09 * e)[None], name="pull")
    prod = mixture_product([a, b])
    return Target(f"widths {D}-D", [a, b], [], lambda n, g: prod.sample_x0(n, g), prod.weights, prod)


def needle_mass(target: Target, run: Run) -> float:
    resp = torch.softmax(target.product.component_log_prob(run.x), dim=1)
    return float((run.w[:, None] * resp).sum(0)[0])


def min_ess(result, L: int) -> float:
    return min(info.ess for info in result.trace) / L


def increment_spread(result) -> torch.Tensor:
    """Per level, the std of the log-weight increment over the particles (from the trace)."""
    out, prev, prev_resampled = [], None, True
    for info in result.trace[1:]:
        inc = info.log_weights if prev_resampled else info.log_weights - prev
        out.append(float(inc[torch.isfinite(inc)].std()) if inc.numel() > 1 else 0.0)
        prev, prev_resampled = info.log_weights, info.resampled
    return torch.tensor(out, dtype=torch.float64)


def adaptive_sigmas(pilot, levels: int, floor: float = 0.5) -> list:
    """``levels`` sigmas placed by the pilot: each new level takes an equal share of the
    cumulative spread of the log-weight increments (more levels where ESS falls), mixed with a
    uniform share ``floor`` so that no stretch is left without levels. Exactness is unchanged:
    it is only a schedule (a list of sigmas)."""
    sig = pilot.sigmas.double()
    spread = increment_spread(pilot)
    density = floor / len(spread) + (1 - floor) * spread / spread.sum().clamp_min(1e-12)
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(density, 0)])
    cum = cum / cum[-1]
    u = torch.linspace(0, 1, levels + 1, dtype=torch.float64)
    # invert the piecewise-linear map level-position -> cumulative share
    idx = torch.searchsorted(cum, u, right=True).clamp(1, len(cum) - 1)
    t = (u - cum[idx - 1]) / (cum[idx] - cum[idx - 1]).clamp_min(1e-12)
    out = sig[idx - 1] + t * (sig[idx] - sig[idx - 1])
    out[0], out[-1] = 1.0, 0.0
    return [float(v) for v in torch.cummin(out, 0).values]


def widths_engine(target, path, T, K, L, seed, schedule="linear"):
    """One engine run on the widths target: ('ais' | 'fk' | 'flow', levels, MCMC steps)."""
    wrap = (lambda e: e) if path == "ais" else VelocityOnly
    problem = Problem(target.shape, [Factor(wrap(e)) for e in target.experts])
    settings = Settings(levels=T, particles=L, seed=seed, keep_trace="scores", schedule=schedule,
                        mcmc_steps=K, kernel={"ais": "mala", "fk": "none", "flow": "langevin"}[path],
                        annealing="auto" if path == "ais" else path)
    result = sample(problem, settings)
    run = Run(result.particles.double().reshape(L, -1), result.weights.double(), evaluations(result, L))
    return run, result


def widths_cell(target, name, runner, seeds):
    masses, ess, calls = [], [], []
    for s in range(seeds):
        run, result = runner(s)
        masses.append(needle_mass(target, run))
        ess.append(min_ess(result, result.particles.shape[0]) if result is not None else float("nan"))
        calls.append(run.evals)
    m = torch.tensor(masses, dtype=torch.float64)
    exact = float(target.masses[0])
    se = float(m.std() / math.sqrt(seeds)) if seeds > 1 else float("nan")
    rms = float(((m - exact) ** 2).mean().sqrt())
    worst = max(float(m.max()) / exact, (1 - float(m.min())) / (1 - exact))  # the most over-weighted mode, one run
    return (target.name, name, sum(calls) / len(calls), float(m.mean()), se,
            float(m.min()), float(m.max()), rms, worst, sum(ess) / len(ess))


def widths_table(seeds: int, L: int) -> None:
    """Mode masses on the widths targets: every path against the closed form, several budgets,
    and what an adaptive schedule (pilot run -> more levels where the increments spread) buys."""
    rows = []
    for D, cells in ((2, [(10, 1), (20, 2), (40, 2), (80, 2), (40, 8)]), (4, [(20, 2), (80, 2)])):
        target = widths(D)
        E = len(target.experts)
        for T, K in cells:
            budget = T * (K + 1) * E
            rows.append(widths_cell(target, f"ais  T={T} K={K}", lambda s: widths_engine(target, "ais", T, K, L, s), seeds))
            rows.append(widths_cell(target, f"fk   T={T * (K + 1)}", lambda s: widths_engine(target, "fk", T * (K + 1), 0, L, s), seeds))
            rows.append(widths_cell(target, f"flow T={T} K={K}", lambda s: widths_engine(target, "flow", T, K, L, s), seeds))

            def adaptive(path, levels, k):
                def runner(s):
                    pilot_run, pilot = widths_engine(target, path, max(2, levels // 2), k, L, 10_000 + s)
                    run, result = widths_engine(target, path, levels, k, L, s, schedule=adaptive_sigmas(pilot, levels))
                    run.evals += pilot_run.evals  # the pilot's compute counts
                    return run, result
                return runner
            rows.append(widths_cell(target, f"ais  adaptive T={T}+{T // 2} K={K}", adaptive("ais", T, K), seeds))
            rows.append(widths_cell(target, f"fk   adaptive T={T * (K + 1)}+{T * (K + 1) // 2}",
                                    adaptive("fk", T * (K + 1), 0), seeds))
            for base in ("composable", "best-of-N", "fk-smc"):
                rows.append(widths_cell(target, f"{base}", lambda s: (METHODS[base](target, budget, L, s), None), seeds))
        big = 10 * L  # is it the particles? the wide mode holds < 1e-4 of the mass at sigma = 0.2-0.3 in 4-D
        rows.append(widths_cell(target, f"ais  T=80 K=2, L={big}", lambda s: widths_engine(target, "ais", 80, 2, big, s), seeds))
        rows.append(widths_cell(target, f"fk   T=240, L={big}", lambda s: widths_engine(target, "fk", 240, 0, big, s), seeds))
        cubic = [float(u) ** 3 for u in torch.linspace(1, 0, 241)]  # levels dense near sigma = 0, where the needle is stiff
        rows.append(widths_cell(target, f"fk   T=240 sigma=u^3, L={big}",
                                lambda s: widths_engine(target, "fk", 240, 0, big, s, schedule=cubic), seeds))
    print(f"\nmodes of very different widths (needle sd 0.02, wide sd 1) exchanging mass below sigma = 0.1: "
          f"the needle's mass, {seeds} runs per row, L = {L}; ais/flow: T levels x (K + 1) calls per expert, "
          f"fk: T levels x 1 call (equal calls to the ais row above it); adaptive: a pilot at half the levels "
          f"places the levels (its calls counted)\n")
    header = (f"{'target':10} {'method':32} {'calls':>6} {'needle':>7} {'exact':>6} {'± s.e.':>7} {'min':>6} "
              f"{'max':>6} {'run RMS':>8} {'worst x':>8} {'minESS/L':>9}")
    print(header)
    print("-" * len(header))
    exact = {t.name: float(t.masses[0]) for t in (widths(2), widths(4))}
    for tname, name, calls, mean, se, lo, hi, rms, worst, ess in rows:
        print(f"{tname:10} {name:32} {calls:6.0f} {mean:7.3f} {exact[tname]:6.3f} {se:7.3f} {lo:6.3f} {hi:6.3f} "
              f"{rms:8.3f} {worst:8.2f} {ess:9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small budgets (smoke run)")
    parser.add_argument("--seeds", type=int, default=2, help="independent runs averaged per cell")
    parser.add_argument("--widths", action="store_true",
                        help="only the modes-of-different-widths table (issue #17 item 5; use --seeds 8)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster and stable
    if args.widths:
        widths_table(args.seeds, 1000)
        return
    budgets = [60, 240] if args.quick else [60, 240, 960]
    targets = [mix2d(), mix64d(), mix2d_halfspace()]
    rows = []
    t_all = time.time()
    for target in targets:
        L = M = 4000 if target.shape[0] <= 2 else 2000
        g = torch.Generator().manual_seed(123)
        exact = target.exact(M, g)
        floor = sliced_w2(target.exact(M, g), exact)
        rows.append((target.name, "floor (exact vs exact)", 0, floor, 0.0, float("nan"), float("nan"), 0.0))
        for budget in budgets:
            cell = {}
            for name, method in METHODS.items():
                sw, me, ev, secs = [], [], [], []
                for s in range(args.seeds):
                    t = time.time()
                    run = method(target, budget, L, seed=s)
                    secs.append(time.time() - t)
                    sw.append(sliced_w2(outputs(run, M, s), exact))
                    me.append(mode_error(target, run.x, run.w))
                    ev.append(run.evals)
                cell[name] = (sum(ev) / len(ev), sum(sw) / len(sw), sum(me) / len(me), sum(secs) / len(secs))
            ref = cell["poelang"]
            for name, (ev, sw, me, secs) in cell.items():
                rows.append((target.name, name, ev, sw, me, sw / ref[1], me / max(ref[2], 1e-12), secs))
    print(f"\nsampler accuracy (mean of {args.seeds} runs per cell; n output samples vs n exact; "
          f"ratios: method / poelang at the same budget, >1 = worse)\n")
    header = f"{'target':10} {'method':24} {'evals/sample':>12} {'SW2':>8} {'mode TV':>8} {'SW ratio':>9} {'TV ratio':>9} {'sec':>6}"
    print(header)
    print("-" * len(header))
    for target, name, ev, sw, me, rsw, rme, secs in rows:
        print(f"{target:10} {name:24} {ev:12.0f} {sw:8.4f} {me:8.4f} {rsw:9.2f} {rme:9.2f} {secs:6.2f}")
    print(f"\ntotal {time.time() - t_all:.0f} s")


if __name__ == "__main__":
    main()
