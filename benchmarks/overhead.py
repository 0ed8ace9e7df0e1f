"""Interpreter overhead: `poelang` against a hand-written loop making the same expert calls.

Every expert call is given a fixed artificial cost (a sleep standing in for a
network's forward pass), so the ratio measures what poelang adds around the
calls: parsing, checking, binding, the sampler's bookkeeping, resampling.

    python benchmarks/overhead.py [--cost-ms 5] [--particles 16] [--levels 50]

Prints a table and the ratio poelang / hand loop (goal: ≤ 1.05 at L = 16, T = 50).
"""
from __future__ import annotations

import argparse
import time

import torch

import poelang
from poelang.stdlib.analytic import GaussianFlow

PROGRAM = """
a = gaussian(mean=[0.0, 0.0])
b = gaussian(mean=[2.0, 2.0], std=0.5)
x ~ a * b with {{
    levels = {levels}
    particles = {particles}
    annealing = flow
    mcmc = langevin
    mcmc_steps = 1
    resample = none
    seed = 0
}}
"""


def run_poelang(levels: int, particles: int, cost: float) -> tuple[float, int]:
    calls = 0
    original = GaussianFlow.velocity

    def slow_velocity(self, x, sigma):
        nonlocal calls
        calls += 1
        time.sleep(cost)
        return original(self, x, sigma)

    GaussianFlow.velocity = slow_velocity
    try:
        start = time.perf_counter()
        program = poelang.parse(PROGRAM.format(levels=levels, particles=particles))
        program.run()
        return time.perf_counter() - start, calls
    finally:
        GaussianFlow.velocity = original


def run_hand_loop(levels: int, particles: int, cost: float, calls: int) -> float:
    """The same number of velocity calls, with the bare Euler + Langevin arithmetic around them."""
    a = GaussianFlow(torch.zeros(2), var=1.0)
    b = GaussianFlow(torch.full((2,), 2.0), var=0.25)
    experts = [a, b]
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    x = torch.randn(particles, 2, generator=generator, dtype=torch.float64)
    sigmas = torch.linspace(1, 0, levels + 1, dtype=torch.float64)
    made = 0

    def velocity(x, s):
        nonlocal made
        total = 0
        for expert in experts:
            if made >= calls:
                break
            made += 1
            time.sleep(cost)
            total = total + expert.velocity(x, torch.full((particles,), float(s), dtype=torch.float64))
        return total / len(experts)

    for t in range(levels):
        s0, s1 = sigmas[t], sigmas[t + 1]
        x = x + (s1 - s0) * velocity(x, s0)
        if s1 > 0:
            v = velocity(x, s1)
            score = -(x + (1 - s1) * v) / s1
            eta = 0.5 * s1**2 / 2
            x = x + eta * score + (2 * eta) ** 0.5 * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    while made < calls:  # the engine may make a few more calls (e.g. the final x0_hat)
        velocity(x, sigmas[-2])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost-ms", type=float, default=5.0)
    parser.add_argument("--particles", type=int, default=16)
    parser.add_argument("--levels", type=int, default=50)
    args = parser.parse_args()
    cost = args.cost_ms / 1000
    run_poelang(3, args.particles, 0.0)  # warm up imports and the parser
    poe_time, calls = run_poelang(args.levels, args.particles, cost)
    hand_time = run_hand_loop(args.levels, args.particles, cost, calls)
    print(f"{'':24} {'seconds':>9} {'expert calls':>13}")
    print(f"{'poelang (parse+run)':24} {poe_time:9.3f} {calls:13d}")
    print(f"{'hand-written loop':24} {hand_time:9.3f} {calls:13d}")
    print(f"{'floor (calls × cost)':24} {calls * cost:9.3f}")
    print(f"ratio poelang / hand loop: {poe_time / hand_time:.3f}  (L={args.particles}, T={args.levels}, cost {args.cost_ms} ms/call)")


if __name__ == "__main__":
    main()
