"""Command-line conventions: --version, completion, run --json, fmt - and --diff, `experts` lookups,
and the provenance every written output carries."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from poelang import provenance
from poelang.cli import main
from poelang.program import load

ROOT = Path(__file__).resolve().parent.parent
TILTED = ROOT / "programs" / "analytic" / "tilted.poe"
SMALL = ["--set", "particles=8", "--set", "levels=4"]

IMAGE_PROGRAM = f"""\
x ~ gaussian(mean=0.0, size=(8, 8)) with {{
    particles = 2
    levels = 3
    seed = 7
}}
clip = load_video("{ROOT / 'programs' / 'assets' / 'ball.gif'}", size=(8, 8), frames=3)
v ~ simulator(target=clip) with {{
    particles = 2
    levels = 3
    seed = 7
}}
save x to "x.png"
save v to "v.gif"
save x to "x.safetensors"
save trace(x) to "x_trace"
"""


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out == f"poelang {provenance.version()}\n"


def test_shell_completion_completes_command_names():
    env = dict(os.environ, _POELANG_COMPLETE="complete_bash", COMP_WORDS="poelang r", COMP_CWORD="1")
    proc = subprocess.run([sys.executable, "-m", "poelang"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["run", "repl"]


def test_run_json_is_the_only_thing_on_stdout(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "run", "--json", TILTED, "--seed", "3", *SMALL)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["outputs"] == ["tilted.npy", "tilted.npy.json"]
    x = summary["samples"]["x"]
    assert x["seed"] == 3 and x["settings"]["particles"] == 8 and x["plan"]["kernel"]
    assert x["seconds"] > 0 and summary["seconds"] >= x["seconds"]
    assert summary["program_sha256"] == provenance.program_hash(load(TILTED, overrides={
        "seed": "3", "particles": "8", "levels": "4"}).graph)


def test_fmt_reads_stdin_and_writes_stdout(monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("x~gaussian(mean=[1.0,2.0])   # kept\n"))
    code, out, _ = cli(capsys, "fmt", "-")
    assert code == 0 and out == "x ~ gaussian(mean=[1.0, 2.0])  # kept\n"


def test_fmt_diff_prints_a_unified_diff_and_changes_nothing(tmp_path, capsys):
    path = tmp_path / "p.poe"
    path.write_text("x~gaussian(mean=1.0)\n")
    code, out, _ = cli(capsys, "fmt", "--diff", path)
    assert code == 1
    assert f"--- a/{path}\n+++ b/{path}\n" in out and "-x~gaussian(mean=1.0)\n+x ~ gaussian(mean=1.0)\n" in out
    assert path.read_text() == "x~gaussian(mean=1.0)\n"
    assert cli(capsys, "fmt", "--diff", TILTED)[:2] == (0, "")


def test_experts_escapes_markup_and_writes_defaults_as_poelang(capsys):
    code, out, _ = cli(capsys, "experts", "flux")
    assert code == 0
    assert "FLUX.1 [dev]" in out
    assert '"bfloat16"' in out and "'bfloat16'" not in out
    assert "none" in out and "None" not in out
    assert "hf download black-forest-labs/FLUX.1-dev" in out or "installed at" in out


def test_experts_looks_up_builtins(capsys):
    for name in ("box", "load_image", "simulate"):
        code, out, _ = cli(capsys, "experts", name)
        assert code == 0 and f"{name} (builtin)" in out
    code, _, err = cli(capsys, "experts", "boxx")
    assert code == 1 and "did you mean 'box'" in err


def test_experts_list_says_whether_weights_are_installed(capsys):
    code, out, _ = cli(capsys, "experts")
    assert code == 0
    row = next(line for line in out.splitlines() if "mini_vqa(" in line)
    assert "installed" in row


def test_a_graph_json_is_refused_with_a_reason(tmp_path, capsys):
    graph = tmp_path / "x.graph.json"
    graph.write_text(load(TILTED).graph.to_json())
    code, _, err = cli(capsys, "run", graph)
    assert code == 1 and "not graph JSON" in err and "Traceback" not in err


# --- provenance -------------------------------------------------------------------------


def test_outputs_of_poelang_run_carry_version_program_hash_seed_and_settings(tmp_path, monkeypatch, capsys):
    from safetensors import safe_open

    program = tmp_path / "p.poe"
    program.write_text(IMAGE_PROGRAM)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "run", "-q", program, "--set", "levels=4")
    assert code == 0, err
    expected_hash = provenance.program_hash(load(program, overrides={"levels": "4"}).graph)

    def check(record: dict) -> None:
        assert record["poelang"] == provenance.version()
        assert record["program"] == "p.poe" and record["program_sha256"] == expected_hash
        assert record["seed"] == 7 and record["settings"]["levels"] == 4 and record["settings"]["particles"] == 2

    with Image.open(tmp_path / "x.png") as png:
        check(json.loads(png.text["poelang"]))
        assert png.text["Software"] == f"poelang {provenance.version()}"
    with Image.open(tmp_path / "v.gif") as gif:
        comment = gif.info["comment"].decode()
        assert comment.startswith("fps=8 poelang=")
        record = json.loads(comment.removeprefix("fps=8 poelang="))
        assert record["sample"] == "v"
        check(record)
    with safe_open(str(tmp_path / "x.safetensors"), "pt") as f:
        check(json.loads(f.metadata()["poelang"]))
    check(json.loads((tmp_path / "x_trace" / "trace.json").read_text())["provenance"])


def test_npy_gets_a_json_sidecar_and_a_rerun_writes_the_same_bytes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli(capsys, "run", "-q", TILTED, *SMALL)[0] == 0
    first = {p: (tmp_path / p).read_bytes() for p in ("tilted.npy", "tilted.npy.json")}
    record = json.loads(first["tilted.npy.json"])
    assert record["sample"] == "x" and record["seed"] == 0
    assert cli(capsys, "run", "-q", TILTED, *SMALL)[0] == 0
    assert first == {p: (tmp_path / p).read_bytes() for p in first}
