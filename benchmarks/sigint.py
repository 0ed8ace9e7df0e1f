"""Ctrl-C at random moments of `poelang run`: what the user sees, and what is left on disk.

    python benchmarks/sigint.py [--trials 20] [--seed 0] [--max-delay 4]

Each trial starts `poelang run` (through the console entry point,
poelang._entry:console_main) on a program that imports torch, samples a 32×32
image and writes it to 40 PNGs, and sends SIGINT after a random delay between
0 and --max-delay seconds: the imports, the sampling and the writes are all
hit. A trial is clean when it exits 130 with the last stderr line
"interrupted" (or finishes first with exit 0), shows no traceback, and leaves
exactly the files it listed as written, with no hidden temporary file. The
table compares the time from SIGINT to exit with an uninterrupted run of the
same program, measured in the same session.

An unclean trial is put in one of two phases: "interpreter startup" when the
SIGINT came before poelang's first line ran (stderr empty and killed by the
signal, before Python installs its own handler; or a traceback with no frame of
poelang's code, from ``site``, the environment's ``.pth`` files or importlib),
else "poelang". The first phase is outside poelang's reach; the second table
measures how long it lasts: the median time from spawning the interpreter to
its first line of code, bare (``-S``, no ``site``), with ``site``, and to
``poelang._entry`` imported (Ctrl-C caught from there on).
"""
from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ("x ~ gaussian(mean=0.0, size=(32, 32)) with { levels = 10, particles = 4 }\n"
           + "".join(f'save x to "x{i}.png"\n' for i in range(40)))
COMMAND = [sys.executable, "-c", "from poelang._entry import console_main; console_main()"]


def as_in_a_terminal() -> None:
    """SIGINT at its default in the child, as for a command typed at a terminal: a shell starts background
    jobs with SIGINT ignored, and a child inherits that, which would make every trial meaningless."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def trial(folder: Path, delay: float | None) -> dict:
    out_dir = folder / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.Popen([*COMMAND, "run", "-q", str(folder / "p.poe"), "-o", str(out_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=as_in_a_terminal)
    sent = None
    if delay is not None:
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        sent = time.perf_counter()
    out, err = proc.communicate(timeout=600)
    ended = time.perf_counter()
    listed = {Path(line.removeprefix("wrote ")).name for line in out.splitlines() if line.startswith("wrote ")}
    on_disk = {p.name for p in out_dir.iterdir()} if out_dir.exists() else set()
    lines = err.strip().splitlines()
    return {
        "phase": _phase(proc.returncode, err),
        "code": proc.returncode, "traceback": "Traceback" in err, "said": bool(lines) and lines[-1] == "interrupted",
        "unlisted": len(on_disk - listed), "hidden": sum(1 for name in on_disk if name.startswith(".")),
        "seconds": ended - (sent if sent is not None else started), "written": len(listed), "delay": delay,
        "stderr": err.strip()[-300:],
    }


def _phase(code: int, err: str) -> str:
    """Where an interrupt landed: before poelang's first line (the interpreter's startup) or in poelang."""
    ours = [line for line in err.splitlines() if 'File "' in line and "/poelang/" in line and "__editable__" not in line]
    if ours or code in (0, 130):
        return "poelang"
    return "interpreter startup" if (code == -signal.SIGINT and not err.strip()) or "KeyboardInterrupt" in err \
        or "Remainder of file ignored" in err else "poelang"


def startup_window(runs: int = 15) -> dict[str, float]:
    """Median ms from spawning the interpreter to its first line: bare, with site, with poelang._entry imported."""
    import statistics

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stamp = "import time; print(time.time())"
    ways = {"bare interpreter (-S)": ["-S", "-c", stamp], "with site (.pth files)": ["-c", stamp],
            "poelang._entry imported": ["-c", "from poelang._entry import console_main; " + stamp]}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, args in ways.items():
            started = time.time()
            out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env).stdout
            times[name].append((float(out) - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=4.0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="poelang_sigint_"))

    def fresh(n: int) -> Path:
        folder = work / f"t{n:02d}"
        folder.mkdir()
        (folder / "p.poe").write_text(PROGRAM, encoding="utf-8")
        return folder

    baseline = trial(fresh(99), None)
    results = [trial(fresh(n), rng.uniform(0.0, args.max_delay)) for n in range(args.trials)]
    outcomes = collections.Counter(r["code"] for r in results)
    clean = [r for r in results if not r["traceback"] and r["unlisted"] == 0 and r["hidden"] == 0
             and (r["code"] == 0 or (r["code"] == 130 and r["said"]))]
    quit_s = sorted(r["seconds"] for r in results if r["code"] == 130)
    median_quit = quit_s[len(quit_s) // 2] if quit_s else float("nan")
    print(f"seed {args.seed}, {args.trials} SIGINTs between 0 and {args.max_delay:g} s; "
          f"an uninterrupted run takes {baseline['seconds']:.1f} s (exit {baseline['code']}, {baseline['written']} files)")
    print("| trials | exit 130 | exit 0 (done first) | other exits | segfaults | tracebacks | unlisted files | hidden temp files | clean | median s to exit / full run |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    other = sum(v for k, v in outcomes.items() if k not in (0, 130))
    print(f"| {len(results)} | {outcomes[130]} | {outcomes[0]} | {other} | {outcomes[-11] + outcomes[139]} | "
          f"{sum(r['traceback'] for r in results)} | {sum(r['unlisted'] for r in results)} | "
          f"{sum(r['hidden'] for r in results)} | {len(clean)} | {median_quit / baseline['seconds']:.3f} |")
    if other:
        print("exit codes:", dict(outcomes))
    unclean = [r for r in results if r not in clean]
    in_poelang = [r for r in unclean if r["phase"] == "poelang"]
    print(f"unclean: {len(unclean) - len(in_poelang)} during the interpreter's startup (before poelang's first "
          f"line), {len(in_poelang)} in poelang")
    for r in unclean:
        print(f"not clean ({r['phase']}): SIGINT after {r['delay']:.3f} s, exit {r['code']}, stderr {r['stderr']!r}")
    window = startup_window()
    bare = window["bare interpreter (-S)"]
    print("\n| from spawn to | median ms | × bare interpreter |\n|---|---|---|")
    for name, ms in window.items():
        print(f"| {name} | {ms:.1f} | {ms / bare:.2f} |")
    return 0 if not in_poelang else 1


if __name__ == "__main__":
    sys.exit(main())
