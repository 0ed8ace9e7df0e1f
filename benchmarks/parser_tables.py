"""A cold `check` with the shipped LALR tables against building the parser from the grammar, in the same run.

    python benchmarks/parser_tables.py [--runs 5] [--lines 200]

Each run is a fresh interpreter timing its first ``poelang.load`` of a generated program (the one
tests/test_check_speed.py times) after ``import poelang``: CPU time (``process_time``), best of the runs,
alternating the two ways so that both see the same machine. "grammar" hides the tables, as a stale file would.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

TIMED = """
import json, sys, time
import poelang
from poelang.syntax import tables
if sys.argv[2] == "grammar":
    tables.TABLES_PATH = tables.TABLES_PATH.with_suffix(".absent")
started, cpu = time.perf_counter(), time.process_time()
program = poelang.load(sys.argv[1])
print(json.dumps({"ok": program.ok, "cpu": time.process_time() - cpu, "wall": time.perf_counter() - started}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=200)
    args = parser.parse_args()
    from test_check_speed import big_program

    best = {"tables": [float("inf")] * 2, "grammar": [float("inf")] * 2}
    with tempfile.TemporaryDirectory() as folder:
        program = Path(folder) / "big.poe"
        program.write_text(big_program(args.lines), encoding="utf-8")
        for _ in range(args.runs):
            for way in best:
                done = subprocess.run([sys.executable, "-c", TIMED, str(program), way], capture_output=True,
                                      text=True, check=True, cwd=ROOT)
                result = json.loads(done.stdout)
                assert result["ok"], "the generated program should check"
                best[way] = [min(best[way][0], result["cpu"]), min(best[way][1], result["wall"])]
    print(f"first check of a {args.lines}-line program in a fresh process, best of {args.runs}")
    print(f"{'parser from':<22}{'CPU ms':>8}{'wall ms':>9}")
    for way, label in (("tables", "the shipped tables"), ("grammar", "the grammar (Lark)")):
        print(f"{label:<22}{best[way][0] * 1000:>8.0f}{best[way][1] * 1000:>9.0f}")
    print(f"ratio tables / grammar (CPU): {best['tables'][0] / best['grammar'][0]:.2f}")


if __name__ == "__main__":
    main()
