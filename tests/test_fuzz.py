"""A short seeded run of the project's fuzzer (benchmarks/check_fuzz.py): generated programs, checked and run,
end in exit 0, 1 or 2: no traceback, no hang, no file outside the output directory."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_programs_check_and_run_cleanly(capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from check_fuzz import main_fuzz
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    code = main_fuzz(["--programs", "40", "--subprocess", "0", "--grammar", "150", "--run", "15", "--seed", "0",
                      "--timeout", "60"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "files written outside the output directory: 0" in out
