"""How fk_noise (eta) and the number of levels set the 'fk' path's accuracy.

    python benchmarks/fk_noise.py      # about two minutes on 2 cores

Target: programs/analytic/gaussian_product.poe's product, N(0, 1) * N(2, 0.5^2)
= N(1.6, 0.447^2) per coordinate (2-D), the experts seen through their
velocities only; and the harder 1-D product N(2, 1) * N(-1, 0.5^2) =
N(-0.4, 0.447^2), whose experts disagree by 3 of the product's standard deviations.
L = 1000 particles, 20 seeds per cell. Columns: the mean error and the
standard deviation's error of the weighted particles (mean over seeds and
coordinates; the Monte Carlo standard error of the mean error is given), the
mean of the minimum ESS / L over levels, and the same errors for the 'flow'
path at the same levels (Euler + Langevin, the baseline).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from poelang.infer import Factor, Problem, Settings, sample  # noqa: E402
from poelang.stdlib.analytic import GaussianFlow, VelocityOnly  # noqa: E402

SEEDS, L = 20, 1000


def targets():
    two = Problem((2,), [Factor(VelocityOnly(GaussianFlow([0.0, 0.0], var=1.0, name="prior"))),
                         Factor(VelocityOnly(GaussianFlow([2.0, 2.0], var=0.25, name="evidence")))])
    one = Problem((1,), [Factor(VelocityOnly(GaussianFlow([2.0], var=1.0, name="a"))),
                         Factor(VelocityOnly(GaussianFlow([-1.0], var=0.25, name="b")))])
    return {"2-D, N(1.6, .447²)": (two, 1.6, math.sqrt(0.2)), "1-D, N(-0.4, .447²)": (one, -0.4, math.sqrt(0.2))}


def errors(problem, settings, mean, sd):
    m_err, s_err, ess = [], [], []
    for seed in range(SEEDS):
        r = sample(problem, settings.replace(seed=seed))
        w, x = r.weights.double(), r.particles.double().reshape(L, -1)
        m = (w[:, None] * x).sum(0)
        s = ((w[:, None] * (x - m) ** 2).sum(0)).sqrt()
        m_err.append(float((m - mean).mean()))
        s_err.append(float((s - sd).mean()))
        if r.trace:
            ess.append(min(info.ess for info in r.trace) / L)
    t = torch.tensor(m_err, dtype=torch.float64)
    return float(t.mean()), float(t.std() / math.sqrt(SEEDS)), sum(s_err) / SEEDS, (sum(ess) / len(ess)) if ess else None


def main() -> None:
    torch.set_num_threads(1)
    print(f"\nfk_noise and levels: L = {L}, {SEEDS} seeds per cell (errors: weighted estimate - exact)\n")
    header = f"{'target':20} {'path':12} {'levels':>6} {'mean err':>9} {'± se':>6} {'sd err':>8} {'min ESS/L':>9}"
    print(header)
    print("-" * len(header))
    for name, (problem, mean, sd) in targets().items():
        for T in (40, 100):
            rows = [(f"fk η={eta:g}", Settings(levels=T, particles=L, annealing="fk", fk_noise=eta, keep_trace="scores"))
                    for eta in (0.0, 0.5, 1.0, 2.0)]
            rows.append(("flow", Settings(levels=T, particles=L, annealing="flow", keep_trace=False)))
            for label, settings in rows:
                m, se, s, ess = errors(problem, settings, mean, sd)
                ess_text = f"{ess:9.3f}" if ess is not None else f"{'':9}"
                print(f"{name:20} {label:12} {T:6d} {m:9.4f} {se:6.4f} {s:8.4f} {ess_text}")


if __name__ == "__main__":
    main()
