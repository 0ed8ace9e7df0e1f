"""The training script: a few seconds of each mode on synthetic data, and the record it leaves."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("diffusers")

from safetensors.torch import load_file  # noqa: E402

from poelang.stdlib.mini import train  # noqa: E402


@pytest.fixture
def data_dir(tmp_path):
    rng = np.random.default_rng(0)
    n = 8
    np.savez(tmp_path / "images.npz", rgb=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
             captions=np.array(["a red cube", "two blue spheres"] * (n // 2)),
             objects_json=np.array(["[]"] * n), depth=rng.uniform(2, 8, (n, 32, 32)).astype(np.float32),
             masks=np.zeros((n, 32, 32), np.uint8))
    return tmp_path


def _files(folder, sub):
    """A component folder's content: tensors by name, configs without the library versions that wrote them
    (those change with every release of transformers/diffusers and say nothing about the weights)."""
    return {p.name: _content(p) for p in (folder / sub).iterdir()}


def _content(path):
    if path.suffix == ".safetensors":
        return {name: tensor.numpy().tobytes() for name, tensor in load_file(path).items()}
    if path.suffix == ".json":
        return {k: v for k, v in json.loads(path.read_text()).items() if not k.endswith("_version")}
    return path.read_bytes()


def test_a_new_transformer_on_kept_encoders_then_a_resumed_run_are_both_recorded(data_dir, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["flux", "--data", str(data_dir), "--minutes", "0.03", "--batch", "4", "--threads", "1"]
    train.main([*common, "--keep-encoders", "--drop-captions", "0.5", "--out", str(first)])
    train.main([*common, "--resume", "--decay", "--lr", "5e-4", "--base", str(first), "--out", str(second)])

    record = json.loads((second / "training.json").read_text())
    runs = record["runs"]
    assert [r["resumed"] for r in runs] == [False, True] and runs[0]["keep_encoders"] and runs[1]["decay"]
    assert runs[0]["drop_captions"] == 0.5 and runs[1]["lr"] == 5e-4
    assert all(r["steps"] > 0 for r in runs) and record["steps"] == sum(r["steps"] for r in runs)
    assert record["minutes"] == pytest.approx(0.06)
    # the text encoders are never trained in these modes: the shipped fill/depth/video experts stay valid
    for sub in ("text_encoder", "text_encoder_2"):
        assert _files(second, sub) == _files(train.WEIGHTS / "mini_flux", sub)
    assert _files(second, "transformer") != _files(first, "transformer")


def test_old_records_without_a_run_list_read_as_one_run(tmp_path):
    (tmp_path / "training.json").write_text(json.dumps({"kind": "flux", "seed": 0, "minutes": 60.0, "steps": 4311,
                                                        "final_loss": 0.0477}))
    assert train.runs_of(tmp_path) == [{"kind": "flux", "seed": 0, "minutes": 60.0, "steps": 4311, "final_loss": 0.0477}]
