"""The mini world's learned readers of images: a segmenter for the rule checker, and mini_vqa.

* :class:`Segmenter` labels every pixel with background or a (colour, shape)
  class; :mod:`poelang.stdlib.mini.rules` turns that map into objects and
  judges captions by rules. This is the *checker* of the benchmarks. It trains
  in minutes on the rendered dataset (``python -m poelang.stdlib.mini.judges
  segmenter --data build/mini_data``).
* ``mini_vqa`` (:mod:`poelang.stdlib.mini.vqa`) answers "does this image show
  <caption>?" with a calibrated probability. It is the *reward* programs steer
  with (``exp(mini_vqa("..."))``), a different model trained without the
  checker's labels, so that steering cannot game the judge. Its reader is a
  :class:`Segmenter` too, trained apart on other renders: the checker's
  weights and labels never reach it, and ``benchmarks/mini_paper.py
  --recheck`` judges the outputs by a third segmenter as well.
* :class:`PatchVQA` is the first mini_vqa (image patches and caption words
  through a small transformer, trained on clean renders only), kept under
  ``stdlib_experts/mini/baselines`` as the baseline ``benchmarks/mini_judge.py``
  compares against: it could not tell a hit from a near miss on generated
  images.

Weights ship as safetensors with a JSON config.
"""
from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from poelang.stdlib.mini import segmentation
from poelang.stdlib.mini.segmentation import Segmenter

WEIGHTS = Path(__file__).parent / "weights"
BASELINES = Path(__file__).parent / "baselines"


class PatchVQA(nn.Module):
    """The first mini_vqa, P(yes | image, caption): 4×4-pixel patches and caption words, jointly encoded; the first
    token decides."""

    def __init__(self, vocab: int, dim: int = 96, layers: int = 3, text_length: int = 16, size: int = 32):
        super().__init__()
        self.config = {"vocab": vocab, "dim": dim, "layers": layers, "text_length": text_length, "size": size}
        self.patches = nn.Conv2d(3, dim, 4, stride=4)
        self.image_pos = nn.Parameter(torch.zeros(1, (size // 4) ** 2, dim))
        self.words = nn.Embedding(vocab, dim)
        self.text_pos = nn.Parameter(torch.zeros(1, text_length, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, 4, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        # pre-norm layers cannot use the nested-tensor fast path; saying so up front avoids torch's UserWarning
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 1)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        b = images.shape[0]
        img = self.patches(images).flatten(2).transpose(1, 2) + self.image_pos
        txt = self.words(ids) + self.text_pos
        tokens = torch.cat([self.cls.expand(b, -1, -1), txt, img], 1)
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool), ids == 0, torch.zeros(b, img.shape[1], dtype=torch.bool)], 1)
        return self.head(self.encoder(tokens, src_key_padding_mask=pad)[:, 0]).squeeze(-1)


# --- loading -----------------------------------------------------------------------------------------


def save(model: nn.Module, name: str, extra: dict, folder: Path | None = None) -> Path:
    from safetensors.torch import save_file

    folder = folder or WEIGHTS / name
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({**model.config, **extra}, indent=1) + "\n")
    return folder


def _patch_vqa(folder: Path) -> PatchVQA:
    """The baseline saved by :func:`save` under ``folder``, float32, eval mode."""
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text())
    model = PatchVQA(**{k: config[k] for k in ("vocab", "dim", "layers", "text_length", "size")})
    model.load_state_dict({k: v.float() for k, v in load_file(folder / "model.safetensors").items()})
    return model.eval().requires_grad_(False)


def load(name: str) -> nn.Module:
    """A judge, float32, eval mode, once per process: 'segmenter', 'mini_vqa' or the baseline 'mini_vqa_v1'."""
    if name not in _LOADED:
        if name == "mini_vqa":
            from poelang.stdlib.mini import vqa

            _LOADED[name] = vqa.load(WEIGHTS / name)
        elif name == "mini_vqa_v1":
            _LOADED[name] = _patch_vqa(BASELINES / name)
        elif name == "segmenter":
            _LOADED[name] = segmentation.load(WEIGHTS / name)
        else:
            raise KeyError(name)
    return _LOADED[name]


_LOADED: dict[str, nn.Module] = {}


def load_segmenter(folder: Path) -> Segmenter:
    """A segmenter saved under ``folder`` (another than the checker's, e.g. one trained with another seed)."""
    return segmentation.load(Path(folder))


@functools.lru_cache(maxsize=1)
def tokenizer():
    from poelang.stdlib.mini.world import VOCABULARY
    from poelang.stdlib.wordlevel import make_tokenizer

    return make_tokenizer(VOCABULARY, 16)


def caption_ids(captions: list[str]) -> torch.Tensor:
    return tokenizer()(captions, padding="max_length", max_length=16, truncation=True, return_tensors="pt").input_ids


def segment(images: torch.Tensor, segmenter: Segmenter | None = None) -> np.ndarray:
    """Class maps ``[B, H, W]`` of images ``[B, 3, H, W]`` in [-1, 1] (by the checker's segmenter by default)."""
    return segmentation.class_maps(images, segmenter or load("segmenter"))


def check(images: torch.Tensor, captions: list[str] | str, segmenter: Segmenter | None = None) -> list[bool]:
    """The rule checker on generated images: segment, extract objects, judge each caption by rules. Another
    ``segmenter`` makes a twin checker (how reproducible the checker's verdicts are)."""
    captions = [captions] * len(images) if isinstance(captions, str) else captions
    return segmentation.verdicts(images, captions, segmenter or load("segmenter"))


# --- training ----------------------------------------------------------------------------------------


def _images(data) -> torch.Tensor:
    return torch.from_numpy(data["rgb"]).permute(0, 3, 1, 2).float() / 127.5 - 1


def _fit(name: str, model: nn.Module, batch_loss, minutes: float, lr: float) -> nn.Module:
    """AdamW on ``batch_loss(model)`` for ``minutes``; returns the model in eval mode."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    started, step = time.perf_counter(), 0
    while time.perf_counter() - started < minutes * 60:
        loss = batch_loss(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % 100 == 0:
            print(f"{name} step {step} loss {float(loss.detach()):.4f}", flush=True)
    return model.eval()


def _noisy(images: torch.Tensor, idx) -> torch.Tensor:
    """A batch with a little noise: generated images are not as clean as renders."""
    return images[idx] + 0.05 * torch.randn(len(idx), 3, *images.shape[-2:])


def train_segmenter(data: dict, minutes: float, seed: int, batch: int = 64) -> Segmenter:
    from poelang.stdlib.mini import rules

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = _images(data)
    objects = [json.loads(s) for s in data["objects_json"]]
    lookup = [np.array([0] + [rules.class_index(o["color"], o["shape"]) for o in objs]) for objs in objects]
    labels = torch.from_numpy(np.stack([lk[m] for lk, m in zip(lookup, data["masks"])])).long()

    def batch_loss(model):
        idx = torch.from_numpy(rng.integers(0, len(images), batch))
        return F.cross_entropy(model(_noisy(images, idx)), labels[idx])

    return _fit("segmenter", Segmenter(rules.N_CLASSES), batch_loss, minutes, lr=2e-3)


def main(argv: list[str] | None = None) -> None:
    from poelang.stdlib.mini.train import load_dataset

    parser = argparse.ArgumentParser(prog="python -m poelang.stdlib.mini.judges")
    parser.add_argument("what", choices=["segmenter"])
    parser.add_argument("--data", type=Path, default=Path("build/mini_data"))
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="save here instead of the checker's weights (e.g. a twin trained with another seed)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    model = train_segmenter(data, args.minutes, args.seed)
    print("saved", save(model, "segmenter", {"seed": args.seed, "minutes": args.minutes, "data": str(args.data)},
                        args.out))


if __name__ == "__main__":
    main()
