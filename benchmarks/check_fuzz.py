"""Fuzz `poelang check` and `run`: token mutations of the examples, and generated programs.

    python benchmarks/check_fuzz.py [--programs 1000] [--seed 0] [--subprocess 50]
    python benchmarks/check_fuzz.py --programs 0 --subprocess 0 --grammar 10000 --run 1000

Generated programs come from benchmarks/program_generator.py (grammar-aware:
a typed environment, every statement form of docs/language.md, inputs from a
corpus of good and broken files: 16-bit, float, empty, truncated, a folder, a
FIFO, a decompression bomb, /dev/null). A hang is a program that takes longer
than --timeout seconds. The table compares each kind's time per program with
checking the shipped examples in the same run.

Each mutated program (tokens deleted, duplicated, swapped, random punctuation,
keywords, numbers and strings inserted, the text truncated) is written to a
temporary folder next to copies of the examples' assets and checked with the
command line in-process (`poelang.cli.main(["check", path])`); a sample is
also checked end to end with a real `python -m poelang check` subprocess.
A traceback is any exception escaping `main`, or a subprocess whose stderr
shows one. The program prints a table and exits 1 if there was a traceback.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import io
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from poelang.cli import main  # noqa: E402

PROGRAMS = sorted((ROOT / "programs").rglob("*.poe"))

TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"?'  # strings (maybe unterminated)
    r"|#[^\n]*"  # comments
    r"|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:%|px|deg)?"  # numbers
    r"|[A-Za-z_][A-Za-z0-9_]*"  # names and keywords
    r"|\n|[ \t]+|."  # newlines, spaces, single characters
)
PUNCTUATION = list("()[]{},=~*/+-^|&!.%#\\:;@$'`?<>") + ["\n", "\t", "\u00e9", "\u263a", "\x00", "\r"]
KEYWORDS = ["import", "save", "to", "with", "given", "as", "true", "false", "none", "exp", "trace",
            "gaussian", "flux", "flux_fill", "flux_depth", "vqascore", "wan_t2v", "box", "box_mask", "blur",
            "mask", "x", "prior", "particles", "levels", "resample", "median", "seed"]
NUMBERS = ["0", "1", "-1", "2.5", ".5", "1e309", "1e-400", "50%", "150%", "12px", "30deg", "99999999999999999999",
           "0.0", "3", "65537", "-0.0"]
STRINGS = ['"x"', '"a.png"', '"out.mp4"', '"trace"', '"\\q"', '"', '"\\u{110000}"', '"\\u{41}"', '""',
           '"../../../etc/passwd"', '"programs/analytic/tilted.poe"', '"x.poe"']


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text)


def mutate(text: str, rng: random.Random, rounds: int | None = None) -> str:
    """Apply 1-4 random token-level mutations to program text."""
    tokens = tokenize(text)
    for _ in range(rounds or rng.randint(1, 4)):
        if not tokens:
            tokens = [rng.choice(KEYWORDS)]
        op = rng.choice(["delete", "delete", "duplicate", "swap", "insert", "insert", "insert", "replace", "truncate"])
        i = rng.randrange(len(tokens))
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap":
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op in ("insert", "replace"):
            pool = rng.choice([PUNCTUATION, KEYWORDS, NUMBERS, STRINGS])
            new = rng.choice(pool)
            if op == "insert":
                tokens.insert(i, new)
            else:
                tokens[i] = new
        else:  # truncate, at a token or in the middle of one
            cut = "".join(tokens)[: rng.randrange(len("".join(tokens)) + 1)]
            tokens = tokenize(cut) if cut else []
    return "".join(tokens)


class Hang(BaseException):
    """A program that took longer than --timeout seconds (a read that blocks, say)."""


def _alarm(signum, frame):
    raise Hang


def in_process(args: list[str], timeout: float) -> tuple[int | None, str | None]:
    """(exit code, None), (None, traceback text) or (None, "hang") for `poelang ARGS`, in this process."""
    err = io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
    except Hang:
        return None, "hang"
    except BaseException:  # noqa: BLE001 - anything escaping main is a bug
        return None, traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if "Traceback (most recent call last)" in err.getvalue():
        return None, err.getvalue()
    return code, None


def check_in_process(path: Path, timeout: float = 60.0) -> tuple[int | None, str | None]:
    """(exit code, None) or (None, traceback text) for `poelang check path`."""
    return in_process(["check", str(path)], timeout)


def check_subprocess(path: Path) -> tuple[int, str | None]:
    proc = subprocess.run([sys.executable, "-m", "poelang", "check", str(path)], capture_output=True, text=True,
                          cwd=path.parent, timeout=120)
    if "Traceback (most recent call last)" in proc.stderr:
        return proc.returncode, proc.stderr
    return proc.returncode, None


class Tally:
    """Outcomes of one kind of run: exit codes, tracebacks, hangs, time."""

    def __init__(self, name: str):
        self.name, self.codes, self.failures, self.seconds = name, collections.Counter(), [], 0.0

    def add(self, path: Path, code: int | None, problem: str | None) -> None:
        if problem == "hang":
            self.codes["hang"] += 1
            self.failures.append((path, "hang"))
        elif problem is not None:
            self.codes["traceback"] += 1
            self.failures.append((path, problem))
        else:
            self.codes[code] += 1

    @property
    def total(self) -> int:
        return sum(self.codes.values())

    def row(self, baseline_ms: float) -> str:
        c = self.codes
        other = sum(v for k, v in c.items() if k not in (0, 1, 2, "traceback", "hang"))
        ms = 1000 * self.seconds / max(self.total, 1)
        return (f"| {self.name:<30} | {self.total:>8} | {c[0]:>6} | {c[1]:>6} | {c[2]:>6} | {other:>5} | "
                f"{c['traceback']:>10} | {c['hang']:>5} | {ms:>10.1f} | {ms / baseline_ms:>8.1f} |")


def _timed(tally: Tally, work):
    start = time.perf_counter()
    work()
    tally.seconds = time.perf_counter() - start


def main_fuzz(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=1000, help="token mutations of the examples, checked")
    parser.add_argument("--grammar", type=int, default=0, help="generated programs (benchmarks/program_generator.py), checked")
    parser.add_argument("--run", type=int, default=0, help="generated programs in run mode (analytic, levels <= 3), run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subprocess", type=int, default=50, help="how many mutations to also run with python -m poelang")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a program counts as a hang")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    from program_generator import ProgramGenerator, make_corpus

    rng = random.Random(args.seed)
    sources = [(p, p.read_text(encoding="utf-8")) for p in PROGRAMS]
    work = Path(tempfile.mkdtemp(prefix="poelang_fuzz_"))
    # the examples' layout, so relative paths (assets, imports) resolve as in programs/
    for folder in {p.parent.name for p, _ in sources}:
        (work / folder).mkdir(exist_ok=True)
    shutil.copytree(ROOT / "programs" / "assets", work / "assets")
    corpus = make_corpus(work / "gen")
    outside_before = set(Path("/tmp").glob("poelang-fuzz-*"))

    baseline = Tally("baseline: the examples, as shipped")
    mutated = Tally("check: token mutations")
    subprocesses = Tally("check: mutations, python -m")
    generated = Tally("check: generated programs")
    runs = Tally("run -q: generated (levels <= 3)")
    cases: list[Path] = []

    def check_examples() -> None:
        for original, _ in sources:
            baseline.add(original, *check_in_process(original, args.timeout))

    def check_mutations() -> None:
        for n in range(args.programs):
            original, text = rng.choice(sources)
            path = work / original.parent.name / f"fuzz_{n:05d}.poe"
            path.write_text(mutate(text, rng), encoding="utf-8")
            cases.append(path)
            mutated.add(path, *check_in_process(path, args.timeout))

    def check_subprocesses() -> None:
        for path in rng.sample(cases, min(args.subprocess, len(cases))):
            code, tb = check_subprocess(path)
            subprocesses.add(path, code, tb)

    def check_generated() -> None:
        generator = ProgramGenerator(random.Random(args.seed + 1), corpus)
        for n in range(args.grammar):
            text = generator.program()
            if rng.random() < 0.1:
                text = mutate(text, rng, rounds=1)
            path = work / "gen" / f"check_{n:05d}.poe"
            path.write_text(text, encoding="utf-8")
            generated.add(path, *check_in_process(path, args.timeout))

    def run_generated() -> None:
        generator = ProgramGenerator(random.Random(args.seed + 2), corpus, run_mode=True)
        for n in range(args.run):
            path = work / "gen" / f"run_{n:05d}.poe"
            path.write_text(generator.program(), encoding="utf-8")
            runs.add(path, *in_process(["run", "-q", str(path), "-o", str(work / "gen" / "out")], args.timeout))

    tallies = [baseline]
    _timed(baseline, check_examples)
    for tally, work_fn, wanted in ((mutated, check_mutations, args.programs), (subprocesses, check_subprocesses, args.subprocess),
                                   (generated, check_generated, args.grammar), (runs, run_generated, args.run)):
        if wanted:
            _timed(tally, work_fn)
            tallies.append(tally)
    escaped = sorted(set(Path("/tmp").glob("poelang-fuzz-*")) - outside_before)

    baseline_ms = 1000 * baseline.seconds / max(baseline.total, 1)
    print(f"seed {args.seed}; baseline: `check` of the {len(sources)} example programs, {baseline_ms:.1f} ms each")
    print("| run                            | programs | exit 0 | exit 1 | exit 2 | other | tracebacks | hangs | ms/program | × baseline |")
    print("|--------------------------------|----------|--------|--------|--------|-------|------------|-------|------------|------------|")
    for tally in tallies:
        print(tally.row(baseline_ms))
    print(f"files written outside the output directory: {len(escaped)}")
    failures = [f for t in tallies for f in t.failures]
    for path, tb in failures[:5]:
        print(f"\n--- {path}\n{path.read_text(encoding='utf-8')}\n{tb}")
    if args.keep or failures:
        print(f"\nprograms kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures or escaped else 0


if __name__ == "__main__":
    sys.exit(main_fuzz())
