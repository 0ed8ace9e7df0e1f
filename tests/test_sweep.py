"""Sweeps: tables checked before anything loads, local workers, the manifest, --resume, faults.

The programs here are analytic (no weights), so a row takes a fraction of a
second and the time goes to starting worker processes (imports).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import poelang
from poelang.cli import main
from poelang.sweeps import SweepError, check_sweep
from poelang.sweeps.table import read_table

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = """\
param centre = 2.0
param label = "row"
x ~ gaussian(mean=[0.0, 0.0], std=1.0) * gaussian(mean=[centre, centre], std=1.0) with {
    levels = 8
    particles = 16
    num_samples = 16
}
save x to "x.npy"
"""

IMAGES = """\
param level = 0.5
x ~ gaussian(mean=level, size=(8, 8)) with { levels = 4, particles = 4, output = all }
save x to "x.png"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


# --- tables and checking -----------------------------------------------------------


def test_csv_cells_keep_where_they_were_typed(tmp_path):
    table = write(tmp_path, "t.csv", 'id, centre ,label\nr1,1.5,"a, b"\n\nr2, 3 ,plain text\n')
    parsed, errors = read_table(table)
    assert not errors
    [r1, r2] = parsed.rows
    assert [(c.column, c.text, c.span.line, c.span.col) for c in r1.cells] == [
        ("id", "r1", 2, 1), ("centre", "1.5", 2, 4), ("label", "a, b", 2, 9)]
    assert [(c.column, c.text, c.span.line, c.span.col) for c in r2.cells] == [
        ("id", "r2", 4, 1), ("centre", "3", 4, 5), ("label", "plain text", 4, 8)]
    assert r1.cells[1].name_span.col == 4  # ' centre ' in the header


def test_jsonl_cells_keep_where_they_were_typed(tmp_path):
    table = write(tmp_path, "t.jsonl", '{"id": "a", "centre": 1.5, "label": "x y"}\n{"centre": null}\n')
    parsed, errors = read_table(table)
    assert not errors
    a, b = parsed.rows
    assert [(c.column, c.text, c.span.col, c.verbatim) for c in a.cells] == [
        ("id", "a", 9, True), ("centre", "1.5", 23, False), ("label", "x y", 38, True)]
    assert b.cells == []  # null: the default


def test_every_bad_row_is_reported_at_once_at_its_cell(tmp_path):
    program = write(tmp_path, "p.poe", PROGRAM)
    table = write(tmp_path, "t.csv", "id,centre,particles,labl\na,1.0,4,\nb,one,4,\nc,2.0,0,\na,3.0,2,\nd,2.0,2,z\n")
    plan = check_sweep(program, table)
    assert not plan.ok
    shown = [f"{d.span.line}:{d.span.col}: {d.message}" for d in plan.diagnostics if d.severity == "error"]
    assert shown == [
        "1:21: the program has no parameter 'labl' (did you mean 'label'?); it has centre, label",
        "3:3: undefined name 'one'",
        "4:7: setting 'particles': must be ≥ 1, got 0",
        "5:1: row id 'a' is used twice",
    ]
    assert all(d.span.file == str(table) for d in plan.diagnostics)


def test_a_bad_row_stops_the_sweep_before_any_model_loads(tmp_path, capsys):
    table = write(tmp_path, "t.csv", "caption,seed\ntwo red cubes,1\nthree dogs,2\n")
    out = tmp_path / "out"
    code = main(["sweep", str(ROOT / "programs" / "mini" / "captioned.poe"), str(table), "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{table}:3:1: error: 'dogs' not in the mini experts' vocabulary" in err
    assert "nothing was run" in err
    assert not out.exists()
    assert "poelang.stdlib.flux" not in sys.modules or not _flux_loaded()


def _flux_loaded() -> bool:
    from poelang.stdlib import hub

    return any("mini_flux" in str(key) for key in hub._CACHE)


def test_rows_from_python_are_checked_too(tmp_path):
    program = write(tmp_path, "p.poe", PROGRAM)
    with pytest.raises(SweepError) as e:
        poelang.sweep(program, [{"centre": 1.0}, {"centre": "far"}], tmp_path / "out")
    assert "<rows>:2:" in e.value.render() and "undefined name 'far'" in e.value.render()


# --- running -------------------------------------------------------------------------


def test_local_sweep_manifest_outputs_gallery_and_progress(tmp_path):
    program = write(tmp_path, "p.poe", PROGRAM)
    rows = [{"id": "near", "centre": 0.5, "seed": 1}, {"id": "far", "centre": 6.0, "seed": 2, "label": "b"},
            {"centre": 2.0, "particles": 8}]
    seen = []
    records = poelang.sweep(program, rows, tmp_path / "out", workers=2, callback=lambda p: seen.append(
        (p.finished, p.total, p.failed)))
    assert [r["id"] for r in records] == ["near", "far", "0003"]
    assert all(r["status"] == "ok" for r in records), records
    near, far, third = records
    assert near["params"] == {"centre": 0.5, "label": "row"} and far["params"]["label"] == "b"
    assert (near["seed"], far["seed"], third["seed"], third["settings"]) == (1, 2, 0, {"particles": 8})
    assert near["program_hash"] == far["program_hash"] and near["row_hash"] != far["row_hash"]
    assert near["poelang"] == poelang.__version__ and near["seconds"] > 0
    import numpy as np

    means = [np.load(tmp_path / "out" / r["outputs"][0]).mean() for r in records]
    # 16 correlated draws at 8 levels: over seeds 0-11 the mean's spread is ≈ 0.25-0.3 and, at centre 6,
    # the few levels pull it towards the prior by ≈ 0.5 (2.53 against 3.0); 0.9 keeps the rows apart
    assert means[0] == pytest.approx(0.25, abs=0.9) and means[1] == pytest.approx(3.0, abs=0.9)
    assert sorted(seen) == [(1, 3, 0), (2, 3, 0), (3, 3, 0)]
    assert sorted(manifest(tmp_path / "out"), key=lambda r: r["row"]) == records
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "<script>" in page and "near" in page and "far" in page and "http" not in page


def test_every_sample_of_an_image_save_is_written_numbered(tmp_path):
    program = write(tmp_path, "p.poe", IMAGES)
    [record] = poelang.sweep(program, [{"id": "r"}], tmp_path / "out")
    assert record["outputs"] == [f"r/x-{i}.png" for i in range(4)]


def test_a_failing_row_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    program = write(tmp_path, "p.poe", 'param image = "a.png"\nbg = load_image(image, size=(8, 8))\n'
                                       'x ~ gaussian(mean=0.0, size=(8, 8)) with { levels = 2, particles = 2 }\n'
                                       'save x to "x.png"\nsave bg to "bg.png"\n')
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / "a.png")
    table = write(tmp_path, "t.csv", "id,image\nok,a.png\nmissing,b.png\nagain,a.png\n")
    out = tmp_path / "out"
    code = main(["sweep", str(program), str(table), "-o", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 1
    records = {r["id"]: r for r in manifest(out)}
    assert records["ok"]["status"] == records["again"]["status"] == "ok"
    assert records["missing"]["status"] == "failed"
    assert "b.png" in records["missing"]["error"] and "error:" in records["missing"]["error"]
    assert "2 of 3 rows ok" in captured.out and "row missing failed" in captured.err


@pytest.mark.slow
def test_resume_skips_rows_done_with_the_same_program_and_row(tmp_path):
    program = write(tmp_path, "p.poe", PROGRAM)
    table = write(tmp_path, "t.csv", "id,centre\na,1.0\nb,2.0\n")
    out = tmp_path / "out"
    assert main(["sweep", str(program), str(table), "-o", str(out), "-q"]) == 0
    assert main(["sweep", str(program), str(table), "-o", str(out), "-q", "--resume"]) == 0
    assert len(manifest(out)) == 2  # nothing ran again
    write(tmp_path, "t.csv", "id,centre\na,1.0\nb,2.5\n")  # b changed
    assert main(["sweep", str(program), str(table), "-o", str(out), "-q", "--resume"]) == 0
    assert [r["id"] for r in manifest(out)] == ["a", "b", "b"]
    write(tmp_path, "p.poe", PROGRAM.replace("levels = 8", "levels = 9"))  # the program changed: everything again
    assert main(["sweep", str(program), str(table), "-o", str(out), "-q", "--resume"]) == 0
    assert len(manifest(out)) == 5


# --- faults ----------------------------------------------------------------------------


SLOW = PROGRAM.replace("levels = 8", "levels = 400")


def test_a_worker_killed_mid_row_is_replaced_and_its_row_appears_once(tmp_path):
    program = write(tmp_path, "p.poe", SLOW)
    killed = []

    def on_start(row_id, pid):
        if row_id == "b" and not killed:
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)  # as soon as it holds the row: no race with a fast machine finishing it

    records = poelang.sweep(program, [{"id": "a"}, {"id": "b", "centre": 3.0}, {"id": "c"}], tmp_path / "out",
                            workers=1, on_start=on_start)
    assert killed
    assert [(r["id"], r["status"]) for r in records] == [("a", "ok"), ("b", "ok"), ("c", "ok")]
    lines = manifest(tmp_path / "out")
    assert sorted(r["id"] for r in lines) == ["a", "b", "c"]  # each exactly once
    b = next(r for r in lines if r["id"] == "b")
    assert b["attempt"] == 2 and str(killed[0]) not in b["worker"]


def test_ctrl_c_then_resume_runs_only_the_remaining_rows(tmp_path):
    program = write(tmp_path, "p.poe", SLOW)
    table = write(tmp_path, "t.csv", "id,centre\n" + "".join(f"r{i},{i}.0\n" for i in range(6)))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "poelang", "sweep", str(program), str(table), "-o", str(out), "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # SIGINT as a terminal delivers it: a shell starts background jobs (`pytest &`) with SIGINT ignored, and an
    # ignored signal stays ignored across exec, so the child is given the default disposition back
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not ((out / "manifest.jsonl").exists() and manifest(out)):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)  # what the terminal sends to the whole group on Ctrl-C
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "--resume" in err
    first = [r["id"] for r in manifest(out)]
    assert 1 <= len(first) < 6
    resumed = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    ids = [r["id"] for r in manifest(out)]
    assert sorted(ids) == [f"r{i}" for i in range(6)]  # every row once
    assert ids[:len(first)] == first


def test_the_example_table_checks():
    plan = check_sweep(ROOT / "programs" / "mini" / "captioned.poe", ROOT / "programs" / "mini" / "captioned_rows.csv")
    assert plan.ok, plan.render()
    assert [j.id for j in plan.jobs] == ["red-cubes-1", "red-cubes-2", "blue-sphere", "green-cones"]
