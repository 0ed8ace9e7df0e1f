"""Fuzz `poelang check` with token-level mutations of the example programs.

    python benchmarks/check_fuzz.py [--programs 1000] [--seed 0] [--subprocess 50]

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
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def check_in_process(path: Path) -> tuple[int | None, str | None]:
    """(exit code, None) or (None, traceback text) for `poelang check path`."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["check", str(path)])
    except BaseException:  # noqa: BLE001 - anything escaping main is a bug
        return None, traceback.format_exc()
    return code, None


def check_subprocess(path: Path) -> tuple[int, str | None]:
    proc = subprocess.run([sys.executable, "-m", "poelang", "check", str(path)], capture_output=True, text=True,
                          cwd=path.parent, timeout=120)
    if "Traceback (most recent call last)" in proc.stderr:
        return proc.returncode, proc.stderr
    return proc.returncode, None


def main_fuzz(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subprocess", type=int, default=50, help="how many to also run with python -m poelang")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    sources = [(p, p.read_text(encoding="utf-8")) for p in PROGRAMS]
    work = Path(tempfile.mkdtemp(prefix="poelang_fuzz_"))
    # the examples' layout, so relative paths (assets, imports) resolve as in programs/
    for folder in {p.parent.name for p, _ in sources}:
        (work / folder).mkdir(exist_ok=True)
    shutil.copytree(ROOT / "programs" / "assets", work / "assets")

    codes: collections.Counter = collections.Counter()
    sub_codes: collections.Counter = collections.Counter()
    tracebacks: list[tuple[Path, str]] = []
    sub_tracebacks: list[tuple[Path, str]] = []
    cases: list[Path] = []
    start = time.perf_counter()
    for n in range(args.programs):
        original, text = rng.choice(sources)
        path = work / original.parent.name / f"fuzz_{n:04d}.poe"
        path.write_text(mutate(text, rng), encoding="utf-8")
        cases.append(path)
        code, tb = check_in_process(path)
        if tb is not None:
            tracebacks.append((path, tb))
            codes["traceback"] += 1
        else:
            codes[code] += 1
    in_process_s = time.perf_counter() - start

    start = time.perf_counter()
    for path in rng.sample(cases, min(args.subprocess, len(cases))):
        code, tb = check_subprocess(path)
        sub_codes[code] += 1
        if tb is not None:
            sub_tracebacks.append((path, tb))
    sub_s = time.perf_counter() - start

    def row(name: str, counts: collections.Counter, total: int, tbs: int, seconds: float) -> str:
        other = sum(v for k, v in counts.items() if k not in (0, 1, "traceback"))
        return f"| {name:<26} | {total:>8} | {counts[0]:>6} | {counts[1]:>6} | {other:>11} | {tbs:>10} | {seconds:>7.1f} |"

    print(f"seed {args.seed}, mutations of {len(sources)} example programs")
    print("| run                        | programs | exit 0 | exit 1 | other exits | tracebacks | seconds |")
    print("|----------------------------|----------|--------|--------|-------------|------------|---------|")
    print(row("in-process cli.main", codes, args.programs, len(tracebacks), in_process_s))
    print(row("subprocess python -m", sub_codes, sum(sub_codes.values()), len(sub_tracebacks), sub_s))
    for path, tb in (tracebacks + sub_tracebacks)[:5]:
        print(f"\n--- {path}\n{path.read_text(encoding='utf-8')}\n{tb}")
    if args.keep or tracebacks or sub_tracebacks:
        print(f"\nprograms kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if tracebacks or sub_tracebacks else 0


if __name__ == "__main__":
    sys.exit(main_fuzz())
