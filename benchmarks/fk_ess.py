"""Weight degeneracy of the 'fk' path against dimension.

    python benchmarks/fk_ess.py            # about a minute on 2 cores
    python benchmarks/fk_ess.py --quick    # 2-D and 64-D only

The Feynman-Kac weights of a product grow with the number of coordinates
where experts overlap (A > 1) and disagree: the risk of the path in high
dimension. For each canvas (2, 64, 1024 coordinates and the mini experts'
latent, 12x16x16) three products of velocity-only Gaussian experts (each
coordinate's data: N(m, s^2) with m ~ N(0, 1) and s in [0.3, 1]):

* ``overlap``   two experts over the whole canvas (A = 2 everywhere);
* ``regional``  a prior over the whole canvas and one expert over the left
                half (A = 2 on half the coordinates; the regional prompt);
* ``disjoint``  two experts on the two halves (A = 1: no weight at all).

Columns: the mean and the minimum over levels of ESS / L before resampling,
how many of the T levels resampled (ESS < L/2), and the error of the weighted
mean against the closed form, in units of the target's standard deviation
(RMS over coordinates) -- beside the same error for 'fk' with two Langevin
rejuvenation moves per level (a mitigation; approximate: ULA's O(step) bias)
and for the 'flow' path, the baseline. L = 256 particles, T = 50 levels,
fk_noise = 1, one seed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from poelang.infer import Factor, Problem, Settings, sample  # noqa: E402
from poelang.stdlib.analytic import GaussianFlow, VelocityOnly, gaussian_product  # noqa: E402

CANVASES = {"2": (2,), "64": (64,), "1024": (1024,), "12x16x16": (12, 16, 16)}


def expert(shape, seed: int, name: str) -> GaussianFlow:
    g = torch.Generator().manual_seed(seed)
    return GaussianFlow(torch.randn(shape, generator=g), var=(0.3 + 0.7 * torch.rand(shape, generator=g)) ** 2, name=name)


def half(shape, left: bool):
    """The left or right half of the last dim."""
    w = shape[-1]
    cut = slice(0, w // 2) if left else slice(w // 2, w)
    return tuple(slice(None) for _ in shape[:-1]) + (cut,)


def crop_shape(shape, region):
    return tuple(len(range(*s.indices(n))) for s, n in zip(region, shape))


def products(shape):
    left, right = half(shape, True), half(shape, False)
    return {
        "overlap": [(expert(shape, 1, "a"), 1.0, None), (expert(shape, 2, "b"), 1.0, None)],
        "regional": [(expert(shape, 3, "prior"), 1.0, None), (expert(crop_shape(shape, left), 4, "left"), 1.0, left)],
        "disjoint": [(expert(crop_shape(shape, left), 5, "l"), 1.0, left),
                     (expert(crop_shape(shape, right), 6, "r"), 1.0, right)],
    }


def mean_error(result, mean, cov) -> float:
    w = result.weights.double()
    x = result.particles.double().reshape(w.shape[0], -1)
    est = (w[:, None] * x).sum(0)
    return float((((est - mean) / torch.sqrt(torch.diagonal(cov))) ** 2).mean().sqrt())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--particles", type=int, default=256)
    parser.add_argument("--levels", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    L, T = args.particles, args.levels
    names = ["2", "64"] if args.quick else list(CANVASES)
    print(f"\nfk weight degeneracy: L = {L}, T = {T}, fk_noise = 1 (ESS before resampling; "
          f"error = RMS over coordinates of |weighted mean - exact| / target sd)\n")
    header = f"{'coords':>9} {'product':9} {'mean ESS/L':>10} {'min ESS/L':>9} {'resampled':>9} " \
             f"{'fk error':>8} {'fk+ULA':>7} {'flow error':>10} {'sec':>5}"
    print(header)
    print("-" * len(header))
    for name in names:
        shape = CANVASES[name]
        for kind, terms in products(shape).items():
            mean, cov, _ = gaussian_product(shape, terms)
            problem = Problem(shape, [Factor(VelocityOnly(g), a, r) for g, a, r in terms])
            t = time.time()
            fk = sample(problem, Settings(levels=T, particles=L, annealing="fk", keep_trace="scores"))
            secs = time.time() - t
            flow = sample(problem, Settings(levels=T, particles=L, annealing="flow", keep_trace=False))
            moved = sample(problem, Settings(levels=T, particles=L, annealing="fk", kernel="langevin", mcmc_steps=2,
                                             keep_trace=False))
            ess = [info.ess / L for info in fk.trace[1:]]
            resampled = sum(info.resampled for info in fk.trace)
            print(f"{name:>9} {kind:9} {sum(ess) / len(ess):10.3f} {min(ess):9.3f} {resampled:9d} "
                  f"{mean_error(fk, mean, cov):8.3f} {mean_error(moved, mean, cov):7.3f} "
                  f"{mean_error(flow, mean, cov):10.3f} {secs:5.1f}")


if __name__ == "__main__":
    main()
