"""The Ray backend on a local Ray (num_gpus=0: an actor that asked for a GPU here would wait
forever, so no test asks for one), and the same row giving the same bytes alone, in a local
sweep and on Ray. Ray takes about 12 s to start on two cores, once for the module."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import poelang

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent
STALL = 180  # seconds without a finished row before a test fails instead of hanging

PROGRAM = """\
param centre = 2.0
param steps = 300
x ~ gaussian(mean=[0.0, 0.0], std=1.0) * gaussian(mean=[centre, centre], std=1.0) with {
    levels = steps
    particles = 16
    num_samples = 16
}
save x to "x.npy"
"""


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}})
    yield
    ray.shutdown()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_ray_sweep_matches_the_local_sweep_and_survives_a_killed_actor(tmp_path, local_ray):
    program = tmp_path / "p.poe"
    program.write_text(PROGRAM, encoding="utf-8")
    # row b runs ~25 times longer than the others (seconds even on a fast machine), so the kill half a second
    # after it starts lands while it runs, never after it has finished
    rows = [{"id": "a", "seed": 1}, {"id": "b", "centre": 4.0, "seed": 2, "steps": 8000},
            {"id": "c", "centre": -1.0, "seed": 3}]
    killed = []

    def on_start(row_id, pid):
        if row_id == "b" and not killed:
            killed.append(pid)
            threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()

    on_ray = poelang.sweep(program, rows, tmp_path / "ray", backend="ray", workers=2, on_start=on_start,
                           stall_timeout=STALL)
    assert killed
    assert [(r["id"], r["status"]) for r in on_ray] == [("a", "ok"), ("b", "ok"), ("c", "ok")], on_ray
    lines = [json.loads(line) for line in (tmp_path / "ray" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == ["a", "b", "c"]  # the killed row, retried by Ray, once
    assert f":{killed[0]}:" not in on_ray[1]["worker"]  # finished by the restarted actor
    local = poelang.sweep(program, rows, tmp_path / "local", workers=1)
    for r, l in zip(on_ray, local):
        assert r["outputs"] == l["outputs"] == [f"{r['id']}/x.npy", f"{r['id']}/x.npy.json"]  # .json: provenance
        for output in r["outputs"]:
            assert _digest(tmp_path / "ray" / output) == _digest(tmp_path / "local" / output)


@pytest.mark.slow
def test_a_row_gives_the_same_bytes_alone_in_a_local_sweep_and_on_ray(tmp_path, local_ray):
    """A real (mini) model: the PNG of `poelang run --param … --seed` equals the sweep's, byte for byte."""
    program = ROOT / "programs" / "mini" / "captioned.poe"
    row = {"caption": "two red cubes", "seed": 5, "levels": 3, "particles": 2}
    alone = tmp_path / "alone.png"
    command = [sys.executable, "-m", "poelang", "run", str(program), "-q", "--param", "caption=two red cubes",
               "--seed", "5", "--set", "levels=3", "--set", "particles=2", "--output", str(alone)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [local] = poelang.sweep(program, [row], tmp_path / "local")
    [on_ray] = poelang.sweep(program, [row], tmp_path / "ray", backend="ray", workers=1, stall_timeout=STALL)
    assert local["outputs"] == on_ray["outputs"] == ["0001/captioned.png"]
    assert _digest(alone) == _digest(tmp_path / "local" / "0001" / "captioned.png") == _digest(
        tmp_path / "ray" / "0001" / "captioned.png")
