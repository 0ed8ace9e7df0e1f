"""The command line, through `poelang.cli.main([...])` and as a real subprocess.

Exit codes: 0 success, 1 diagnostics (or a failed run), 2 usage errors.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from poelang.cli import main

ROOT = Path(__file__).resolve().parent.parent
TILTED = ROOT / "programs" / "analytic" / "tilted.poe"
GAUSSIAN = ROOT / "programs" / "analytic" / "gaussian_product.poe"

THREE_MISTAKES = """\
prior = gaussian(mean=[0.0, 0.0])
tilt = quadratic(centre=[1.0, 1.0])
x ~ prior * exp(tilt) with {
    particles = 0
}
save x to "x.mp3"
"""

HEADLINE = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.+)$")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def program(tmp_path):
    def write(text: str, name: str = "p.poe") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --- check ---------------------------------------------------------------------


def test_check_ok_exits_0(capsys):
    code, out, err = run_cli(capsys, "check", TILTED, GAUSSIAN)
    assert code == 0, err
    assert f"{TILTED}: ok" in out and f"{GAUSSIAN}: ok" in out


def test_check_three_mistakes_gives_three_located_errors_with_carets(capsys, program):
    path = program(THREE_MISTAKES)
    code, out, err = run_cli(capsys, "check", path)
    assert code == 1
    assert "ok" not in out
    lines = err.splitlines()
    heads = [(i, HEADLINE.match(line)) for i, line in enumerate(lines)]
    heads = [(i, m) for i, m in heads if m]
    assert len(heads) == 3, err
    assert [(int(m["line"]), int(m["col"])) for _, m in heads] == [(2, 18), (4, 17), (6, 11)]
    assert all(m["file"] == str(path) for _, m in heads)
    assert "'centre'" in heads[0][1]["message"] and "did you mean 'center'" in heads[0][1]["message"]
    assert "particles" in heads[1][1]["message"]
    assert "'.mp3'" in heads[2][1]["message"]
    source = THREE_MISTAKES.splitlines()
    for i, m in heads:  # each headline is followed by its source line and a caret under the column
        line, col = int(m["line"]), int(m["col"])
        assert lines[i + 1] == f"{line:>5} | {source[line - 1]}"
        caret = lines[i + 2]
        assert caret.startswith("      | ")
        assert caret[len("      | "):].index("^") == col - 1
    assert "Traceback" not in err


def test_check_reports_every_file_and_fails_if_one_fails(capsys, program):
    bad = program("x ~ prir\n", "bad.poe")
    code, out, err = run_cli(capsys, "check", TILTED, bad)
    assert code == 1
    assert f"{bad}:1:5: error: undefined name 'prir'" in err


def test_check_diamond_import_is_ok(capsys, program):
    # two files import a third: its bindings are loaded once, not reported as defined twice
    program("prior = gaussian(mean=[0.0, 0.0])\n", "common.poe")
    program('import "common.poe"\nleft = gaussian(mean=[1.0, 0.0])\n', "a.poe")
    program('import "common.poe"\nright = gaussian(mean=[0.0, 1.0])\n', "b.poe")
    main_file = program('import "a.poe"\nimport "b.poe"\nx ~ prior * left * right\n', "main.poe")
    code, out, err = run_cli(capsys, "check", main_file)
    assert code == 0, err


def test_check_a_failed_import_is_reported_once(capsys, program):
    program("prior = gaussian(mean=[0.0, 0.0]\n", "broken.poe")
    main_file = program('import "broken.poe"\nx ~ prior\n', "main.poe")
    code, out, err = run_cli(capsys, "check", main_file)
    assert code == 1
    assert err.count("error:") == 1, err  # no cascade: 'prior' is not also "undefined"
    assert "broken.poe:1:17: error: unexpected end of file: '(' is never closed" in err


def test_check_missing_file_is_a_diagnostic(capsys, tmp_path):
    code, out, err = run_cli(capsys, "check", tmp_path / "nope.poe")
    assert code == 1
    assert "error: cannot read file" in err and "Traceback" not in err


def test_check_binary_file_is_a_diagnostic(capsys, tmp_path):
    path = tmp_path / "binary.poe"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    code, out, err = run_cli(capsys, "check", path)
    assert code == 1
    assert "error: cannot read file" in err


def test_check_syntax_error_exits_1(capsys, program):
    code, out, err = run_cli(capsys, "check", program('x ~ flux(prompt="a cat)\n'))
    assert code == 1
    assert ":1:17: error: unterminated string" in err


# --- usage errors exit 2 ------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["check"],  # missing argument
    ["bogus"],  # no such command
    ["check", "--bogus-option", "x.poe"],
    ["graph", "--json", "--dot", str(TILTED)],  # exclusive options
    ["run", str(TILTED), "--set", "particles"],  # --set without '='
])
def test_usage_errors_exit_2(capsys, argv):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err


def test_help_exits_0(capsys):
    code, out, err = run_cli(capsys, "--help")
    assert code == 0
    for command in ("run", "check", "fmt", "graph", "repl", "experts"):
        assert command in out


# --- graph -----------------------------------------------------------------------


def test_graph_json(capsys):
    code, out, err = run_cli(capsys, "graph", "--json", TILTED)
    assert code == 0, err
    graph = json.loads(out)
    assert [s["id"] for s in graph["samples"]] == ["x"]
    assert {e["expert"] for e in graph["experts"]} >= {"gaussian", "quadratic", "halfspace"}
    default_code, default_out, _ = run_cli(capsys, "graph", TILTED)
    assert default_code == 0 and default_out == out  # JSON is the default


def test_graph_dot(capsys):
    code, out, err = run_cli(capsys, "graph", "--dot", TILTED)
    assert code == 0, err
    assert out.lstrip().startswith("digraph")
    assert "prior" in out and out.rstrip().endswith("}")


def test_graph_of_a_bad_program_exits_1(capsys, program):
    code, out, err = run_cli(capsys, "graph", program("x ~ 3\n"))
    assert code == 1
    assert out == ""
    assert "nothing to sample" in err


# --- fmt -----------------------------------------------------------------------------

MESSY = "prior=gaussian( mean = [0.0,0.0] )   # the prior\nx ~ prior^0.5 with {levels=3, particles = 2}\n"
TIDY = "prior = gaussian(mean=[0.0, 0.0])  # the prior\nx ~ prior^0.5 with {\n    levels = 3\n    particles = 2\n}\n"


def test_fmt_check_exit_codes(capsys, program):
    messy = program(MESSY, "messy.poe")
    tidy = program(TIDY, "tidy.poe")
    code, out, err = run_cli(capsys, "fmt", "--check", tidy)
    assert code == 0 and out == ""
    code, out, err = run_cli(capsys, "fmt", "--check", messy, tidy)
    assert code == 1
    assert out == f"would reformat {messy}\n"
    assert messy.read_text(encoding="utf-8") == MESSY  # --check writes nothing


def test_fmt_rewrites_in_place_and_is_idempotent(capsys, program):
    messy = program(MESSY)
    code, out, err = run_cli(capsys, "fmt", messy)
    assert code == 0, err
    assert out == f"reformatted {messy}\n"
    assert messy.read_text(encoding="utf-8") == TIDY
    code, out, err = run_cli(capsys, "fmt", messy)
    assert code == 0 and out == ""
    assert sorted(p.name for p in messy.parent.iterdir()) == [messy.name]  # no temporary files left


def test_fmt_leaves_a_file_with_a_syntax_error_unchanged(capsys, program):
    text = "prior=gaussian( mean = [0.0,0.0] )\nx ~ prior * * prior\n"
    path = program(text)
    before = path.stat().st_mtime_ns
    code, out, err = run_cli(capsys, "fmt", path)
    assert code == 1
    assert f"{path}:2:13: error: unexpected '*'" in err
    assert path.read_text(encoding="utf-8") == text
    assert path.stat().st_mtime_ns == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_fmt_writes_through_a_rename(capsys, program, monkeypatch):
    # atomic: the new text is written to a temporary file that replaces the original in one step
    import poelang.outputs

    path = program(MESSY)
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((Path(src).parent, Path(dst)))
        assert Path(dst).read_text(encoding="utf-8") == MESSY  # the original is intact until the rename
        real_replace(src, dst)

    monkeypatch.setattr(poelang.outputs.os, "replace", spy)
    code, out, err = run_cli(capsys, "fmt", path)
    assert code == 0, err
    assert renames == [(path.parent, path)]
    assert path.read_text(encoding="utf-8") == TIDY


def test_fmt_missing_file_exits_1(capsys, tmp_path):
    code, out, err = run_cli(capsys, "fmt", tmp_path / "nope.poe")
    assert code == 1
    assert "cannot read file" in err


# --- experts ---------------------------------------------------------------------------


def test_experts_lists_the_registry(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = run_cli(capsys, "experts")
    assert code == 0
    for name in ("gaussian", "flux_fill", "vqascore", "wan_t2v"):
        assert re.search(rf"\b{name}\b", out), name


def test_experts_one_expert(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = run_cli(capsys, "experts", "flux_fill")
    assert code == 0
    assert "prompt" in out and "mask" in out


def test_experts_unknown_name_suggests(capsys):
    code, out, err = run_cli(capsys, "experts", "gausian")
    assert code == 1
    assert "no expert or builtin 'gausian' (did you mean 'gaussian'?)" in err


# --- --set ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, message", [
    ("particles=@@", "<--set particles>:1:13: error: unexpected character '@'"),
    ("particles=0", "setting 'particles': must be ≥ 1, got 0"),
    ("partcles=3", "unknown setting 'partcles' (did you mean 'particles'?)"),
    ("mcmc=langevn", "did you mean 'langevin'?"),
])
def test_set_with_a_bad_value_is_a_diagnostic(capsys, value, message):
    # the program is checked with the override before anything runs, so this loads no model
    code, out, err = run_cli(capsys, "run", TILTED, "--set", value)
    assert code == 1
    assert message in err
    assert "Traceback" not in err
    assert out == ""


# --- a real subprocess ------------------------------------------------------------------------


def _python_m_poelang(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "poelang", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_subprocess_help_lists_every_command():
    proc = _python_m_poelang("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "check", "fmt", "graph", "repl", "experts"):
        assert re.search(rf"\b{command}\b", proc.stdout), command


def test_subprocess_check_exit_codes(tmp_path):
    bad = tmp_path / "bad.poe"
    bad.write_text(THREE_MISTAKES, encoding="utf-8")
    ok = _python_m_poelang("check", str(TILTED))
    assert ok.returncode == 0 and "ok" in ok.stdout
    failed = _python_m_poelang("check", "bad.poe", cwd=tmp_path)
    assert failed.returncode == 1
    assert len(re.findall(r"^bad\.poe:\d+:\d+: error: ", failed.stderr, re.M)) == 3
    assert "Traceback" not in failed.stderr
    usage = _python_m_poelang("check")
    assert usage.returncode == 2


@pytest.mark.skipif(shutil.which("poelang") is None, reason="console script not installed")
def test_console_script():
    proc = subprocess.run(["poelang", "check", str(TILTED)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --- examples ----------------------------------------------------------------------


def test_examples_list_and_copy(capsys, tmp_path):
    import poelang

    code, out, err = run_cli(capsys, "examples")
    assert code == 0, err
    assert "quickstart.poe" in out.splitlines() and "analytic/tilted.poe" in out.splitlines()
    code, out, err = run_cli(capsys, "examples", "copy", str(tmp_path / "ex"))
    assert code == 0, err
    assert (tmp_path / "ex" / "quickstart.poe").is_file() and (tmp_path / "ex" / "assets" / "living_room.png").is_file()
    # the copies check where they are: their relative asset paths still resolve
    assert poelang.load(tmp_path / "ex" / "mini" / "insert_object.poe").ok
    code, out, err = run_cli(capsys, "examples", "copy", str(tmp_path / "ex"))
    assert code == 1 and "exist already" in err and "--force" in err
    assert run_cli(capsys, "examples", "copy", str(tmp_path / "ex"), "--force")[0] == 0
    assert run_cli(capsys, "examples", "nonsense")[0] == 2


def test_the_wheel_ships_the_library_the_examples_the_grammar_and_the_typing_marker():
    """setup.py's package list: stdlib_experts/ becomes poelang.stdlib with its weights, programs/ becomes
    poelang._examples with every program and asset, and nothing installs as a top-level package but poelang."""
    import json
    import subprocess
    import sys
    from fnmatch import fnmatch

    # in a subprocess: importing setuptools in the test process would disturb distutils for later tests
    code = ("import json, runpy, sys; from unittest import mock; captured = {}\n"
            "with mock.patch('setuptools.setup', lambda **kw: captured.update(kw)):\n"
            "    runpy.run_path('setup.py')\n"
            "json.dump(captured, sys.stdout)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    captured = json.loads(proc.stdout)
    assert "poelang._examples" in captured["packages"] and "poelang._examples.analytic" in captured["packages"]
    assert captured["package_dir"] == {"poelang.stdlib": "stdlib_experts", "poelang._examples": "programs"}
    assert {p.split(".")[0] for p in captured["packages"]} == {"poelang"}
    assert "poelang.stdlib.mini" in captured["packages"] and "poelang.stdlib.scene" in captured["packages"]
    assert "py.typed" in captured["package_data"]["poelang"]
    grammar = {p.relative_to(ROOT / "poelang") for p in (ROOT / "poelang" / "grammar").iterdir()}
    assert {"grammar/poelang.lark", "grammar/poelang.tables"} <= {str(p) for p in grammar}
    assert all(any(fnmatch(str(p), pat) for pat in captured["package_data"]["poelang"]) for p in grammar)
    shipped = {p.relative_to(ROOT / "programs") for p in (ROOT / "programs").rglob("*") if p.is_file()}
    patterns = captured["package_data"]["poelang._examples"]
    assert all(any(fnmatch(str(p), pat) or fnmatch(p.name, pat) for pat in patterns) for p in shipped)
    weights = {p.relative_to(ROOT / "stdlib_experts") for p in (ROOT / "stdlib_experts" / "mini" / "weights").rglob("*")
               if p.is_file()}
    patterns = captured["package_data"]["poelang.stdlib"]
    assert weights and all(any(fnmatch(str(p), pat) for pat in patterns) for p in weights)
