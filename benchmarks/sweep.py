"""24 rows of a mini-expert program three ways: 24 `poelang run` processes, `poelang sweep` (local), and on Ray.

    python benchmarks/sweep.py [--rows 24] [--workers 1] [--threads 1] [--levels 3] [--particles 2]

Each row is programs/mini/captioned.poe with its own caption and seed, at tiny
settings so that the whole benchmark takes a few minutes on a shared CPU. The
baseline is what a shell loop does: one `poelang run --param … --seed …` per
row, each paying the imports and the model loading again. The two sweeps
start their workers once (local processes; Ray actors on a Ray the sweep
starts itself, its start-up included). Every way is a real command, timed by
wall clock, one after the other, with the same torch threads per process
(OMP_NUM_THREADS and the sweeps' --threads), so the ratios measure the
workers, not a thread count; the table gives each time and its ratio, and
checks that the three give byte-identical PNGs row by row.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "programs" / "mini" / "captioned.poe"
COUNTS = ["one", "two", "three"]
COLOURS = ["red", "blue", "green", "yellow"]
SHAPES = [("cube", "cubes"), ("sphere", "spheres"), ("cone", "cones"), ("cylinder", "cylinders")]


def captions(n: int) -> list[str]:
    combos = itertools.cycle(itertools.product(COUNTS, COLOURS, SHAPES))
    return [f"{count} {colour} {shape[0] if count == 'one' else shape[1]}"
            for count, colour, shape in itertools.islice(combos, 0, n * 7, 7)]


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--workers", type=int, default=1, help="workers of each sweep (processes / Ray actors)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every process and worker")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--particles", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="poelang-sweep-bench-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": str(args.threads)}
    poelang = [sys.executable, "-m", "poelang"]
    rows = [{"id": f"r{i:02d}", "caption": c, "seed": i, "levels": args.levels, "particles": args.particles}
            for i, c in enumerate(captions(args.rows))]
    table = work / "rows.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    print(f"{len(rows)} rows of {PROGRAM.relative_to(ROOT)} (levels {args.levels}, particles {args.particles}), "
          f"sweeps with {args.workers} worker(s), {args.threads} torch thread(s) each, {os.cpu_count()} CPUs; in {work}",
          flush=True)
    separate = 0.0
    for row in rows:
        separate += timed(poelang + ["run", str(PROGRAM), "-q", "--param", f"caption={row['caption']}",
                                     "--seed", str(row["seed"]), "--set", f"levels={row['levels']}",
                                     "--set", f"particles={row['particles']}", "--output", str(work / "runs" / f"{row['id']}.png")],
                          env)
    print(f"  separate processes: {separate:.1f} s", flush=True)
    sweep = poelang + ["sweep", str(PROGRAM), str(table), "-q", "--workers", str(args.workers),
                       "--threads", str(args.threads)]
    local = timed(sweep + ["-o", str(work / "local")], env)
    print(f"  local sweep: {local:.1f} s", flush=True)
    on_ray = timed(sweep + ["-o", str(work / "ray"), "--backend", "ray"], env)
    print(f"  Ray sweep: {on_ray:.1f} s", flush=True)

    same = sum(digest(work / "runs" / f"{r['id']}.png") == digest(work / "local" / r["id"] / "captioned.png")
               == digest(work / "ray" / r["id"] / "captioned.png") for r in rows)
    print()
    print(f"| way | wall clock (s) | per row (s) | ratio |")
    print(f"|---|---|---|---|")
    print(f"| {len(rows)} × `poelang run` | {separate:.1f} | {separate / len(rows):.2f} | 1.00 (baseline) |")
    print(f"| `poelang sweep` (local) | {local:.1f} | {local / len(rows):.2f} | {local / separate:.2f} × separate |")
    print(f"| `poelang sweep --backend ray` | {on_ray:.1f} | {on_ray / len(rows):.2f} | {on_ray / local:.2f} × local |")
    print()
    print(f"byte-identical PNGs (separate = local = Ray): {same} of {len(rows)} rows")
    shutil.rmtree(work)
    if same != len(rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
