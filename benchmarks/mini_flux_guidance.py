"""mini_flux's criterion against its guidance scale: the rule checker on plain samples of one-object captions.

    python benchmarks/mini_flux_guidance.py [--scales 1 2 3 4.5] [--per-caption 4] [--levels 30]

The criterion of tests/mini/test_mini_experts.py (the same captions, seeds and
Euler sampler, so the row at mini_flux's default scale is the test's figure):
for each of the 24 "a <colour> <shape>" captions, ``--per-caption`` samples of
the expert alone, no steering; success when the segmenter + rules find an
object of that colour and shape. Each scale is compared with true_cfg = 1 (no
guidance, one transformer call per step) in the same run.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from poelang.infer import flow  # noqa: E402
from poelang.interpreter import ExpertContext  # noqa: E402
from poelang.stdlib import mini_experts  # noqa: E402
from poelang.stdlib.mini import judges, rules, world  # noqa: E402


def sample(expert, n: int, levels: int, seed: int) -> torch.Tensor:
    """Plain Euler on the expert's flow from noise, as the test samples."""
    noise = torch.randn((n, expert.codec.channels, 16, 16), generator=torch.Generator().manual_seed(seed))
    return expert.codec.decode(flow.euler(expert.velocity, noise, levels))


def criterion(scale: float, per_caption: int, levels: int) -> tuple[int, int, dict, float]:
    """(hits, samples, hits by shape, seconds per sample) at one guidance scale."""
    context = ExpertContext("x", (3, 32, 32), "cpu", ROOT, (3, 32, 32), None)
    hits, total, by_shape, seconds = 0, 0, collections.Counter(), 0.0
    for color in world.COLORS:
        for shape in world.SHAPES:
            expert = mini_experts.load_mini_flux({"prompt": f"a {color} {shape}", "size": (32, 32),
                                                  "true_cfg": scale}, context)
            started = time.perf_counter()
            images = sample(expert, per_caption, levels, seed=total)
            seconds += time.perf_counter() - started
            for seg in judges.segment(images):
                ok = rules.exists(rules.facts_from_segmentation(seg), color, shape)
                hits, total, by_shape[shape] = hits + ok, total + 1, by_shape[shape] + ok
    return hits, total, by_shape, seconds / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.5])
    parser.add_argument("--per-caption", type=int, default=4)
    parser.add_argument("--levels", type=int, default=30)
    args = parser.parse_args()
    scales = [1.0] + [s for s in args.scales if s != 1.0]  # the baseline first
    rows = {s: criterion(s, args.per_caption, args.levels) for s in scales}
    base_rate, base_time = rows[1.0][0] / rows[1.0][1], rows[1.0][3]
    print(f"mini_flux alone, {rows[1.0][1]} samples of 24 one-object captions, {args.levels} Euler levels "
          f"(default true_cfg = {mini_experts.TRUE_CFG:g})")
    header = ("true_cfg", "success", "× true_cfg 1", *world.SHAPES, "time × true_cfg 1")
    table = [header]
    for s, (hits, total, by_shape, per_sample) in rows.items():
        n = total // len(world.SHAPES)
        table.append((f"{s:g}", f"{hits}/{total} = {hits / total:.2f}", f"{hits / total / base_rate:.2f}",
                      *(f"{by_shape[k]}/{n}" for k in world.SHAPES), f"{per_sample / base_time:.2f}"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())

if __name__ == "__main__":
    main()
