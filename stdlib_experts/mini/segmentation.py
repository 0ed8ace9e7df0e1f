"""Reading the mini world pixel by pixel: a small U-Net labels each pixel with background or a (colour, shape)
class, and the world's rules (:mod:`poelang.stdlib.mini.rules`) judge a caption on the objects its class map shows.

Two such readers ship, trained apart: the rule checker's (:func:`poelang.stdlib.mini.judges.check`, the benchmarks'
judge of success) and mini_vqa's reader (:func:`poelang.stdlib.mini.vqa.train_reader`, part of the reward).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class Segmenter(nn.Module):
    """A two-level U-Net over 32-64 px images in [-1, 1] → class logits per pixel."""

    def __init__(self, classes: int, width: int = 32):
        super().__init__()
        self.config = {"classes": classes, "width": width}
        self.down1, self.down2 = _block(3, width), _block(width, 2 * width)
        self.mid = _block(2 * width, 2 * width)
        self.up2, self.up1 = _block(4 * width, width), _block(2 * width, width)
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down1(x)
        b = self.down2(F.avg_pool2d(a, 2))
        m = self.mid(F.avg_pool2d(b, 2))
        b = self.up2(torch.cat([b, F.interpolate(m, scale_factor=2)], 1))
        a = self.up1(torch.cat([a, F.interpolate(b, scale_factor=2)], 1))
        return self.head(a)


def load(folder: Path) -> Segmenter:
    """A segmenter saved under ``folder`` (safetensors and a JSON config), float32, eval mode."""
    from safetensors.torch import load_file

    config = json.loads((Path(folder) / "config.json").read_text())
    model = Segmenter(config["classes"], config["width"])
    model.load_state_dict({k: v.float() for k, v in load_file(Path(folder) / "model.safetensors").items()})
    return model.eval().requires_grad_(False)


@torch.no_grad()
def class_maps(images: torch.Tensor, segmenter: Segmenter) -> np.ndarray:
    """Class maps ``[B, H, W]`` of images ``[B, 3, H, W]`` in [-1, 1]."""
    return segmenter(images.float()).argmax(1).numpy()


def verdicts(images: torch.Tensor, captions: list[str], segmenter: Segmenter) -> list[bool]:
    """Whether the rules find each caption true of the objects in its image's class map."""
    return judge_maps(class_maps(images, segmenter), captions)


def judge_maps(maps: np.ndarray, captions: list[str]) -> list[bool]:
    """Whether the rules find each caption true of the objects in its class map ``[B, H, W]``."""
    from poelang.stdlib.mini import rules

    return [rules.satisfies(c, rules.facts_from_segmentation(m)) for c, m in zip(captions, maps)]
