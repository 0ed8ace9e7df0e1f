"""mini_vqa: P(yes | image, caption) for the mini world, read off what a small CNN sees.

A caption of the world's grammar means a few facts: exactly n objects of each named (colour, shape), none of any
other, all of a named size, and for a relation two single objects one left of / in front of the other. The model
reads those facts from the image, as probability distributions per (colour, shape) class:

* how many objects of the class the image shows (0-3),
* whether they are all small, all large or mixed,
* for a single object, where its centre column and its lowest row lie (16 bins each);

and :func:`caption_log_prob` composes them into log P(caption) by the grammar's meaning, treating the facts as
independent. A temperature and bias fitted on held-out data (:func:`calibrate`) turn those log-odds into a
calibrated P(yes) for a prior of one true caption to one hard negative. Because the facts are learned per class
and the composition is fixed, the judge reads captions it never saw (the held-out split) as well as training ones.

Training (``python -m poelang.stdlib.mini.vqa``) never uses the rule checker. It uses the world's ground truth
only: renders with their scene attributes (counts, sizes, mask positions) and captions, and hard negatives (the same
image, the caption wrong in exactly one thing: a count off by one, a colour, a shape, a size, a relation flipped or
its objects swapped, a phrase added or dropped). Each render is shown as the sampler shows images to the judge
(:func:`make_data`): clean; as x0_hat = x - sigma v of the render noised to sigma in (0, 0.8] and denoised by one
guided mini_flux step (what resampling ranks); or as a final image, the render noised to sigma in [0.1, 0.6] and
run to 0 by the guided flow (what the best output is picked from, with the generator's own soft edges and
textures). mini_flux is prompted by the true caption and
the labels are the render's facts, so the judge never learns to read facts through what a wrong prompt drew.

The shipped judge is two such models trained apart on two data sets and a *reader*, calibrated together
(:class:`JudgeEnsemble`; ``stdlib_experts/mini/weights/mini_vqa/training.json`` records every run). The second model
also learns each pixel's class from the render's class map (``--segment``, a head the judge does not use): that
teaches its trunk to read an object's shape where it is drawn. The reader (:func:`train_reader`) labels each pixel
with its class, learned from clean renders and their class maps, and the world's rules judge the caption on the
objects it finds: a 0/1 verdict that sees a cube drawn for a cylinder or a stray object the caption does not name,
the near misses of one caption that the per-class summaries blur. The judge's logit is
scale · (the models' mean log-odds) + bias + reader_weight · verdict, the three fitted on held-out pairs
(docs/results.md, issue 16):

    python -m poelang.stdlib.mini.vqa data --out build/vqa_data2 --images 40000 --seed 12 --threads 1 --shard I 2
    python -m poelang.stdlib.mini.vqa data --out build/vqa_data4 --images 40000 --seed 13 --threads 1 --shard I 2
    python -m poelang.stdlib.mini.vqa train --data build/vqa_data2 --minutes 40 --threads 1 --out build/judgeA
    python -m poelang.stdlib.mini.vqa train --data build/vqa_data4 --minutes 40 --threads 1 --seed 21 \
        --segment 1.0 --out build/judgeC
    python -m poelang.stdlib.mini.vqa reader --data build/vqa_data4 --minutes 12 --threads 1 --seed 42 \
        --out build/readerR2
    python -m poelang.stdlib.mini.vqa ensemble --data build/vqa_data2 build/vqa_data4 \
        --members build/judgeA build/judgeC --reader build/readerR2 --out stdlib_experts/mini/weights/mini_vqa

(I = 0, 1: one process per core; 13 minutes per data set, 40 of training per model, 12 for the reader.) ``train``,
``reader`` and ``ensemble`` hold out the last 10% of each data folder to fit the calibration and report, and save
the weights (safetensors), the config with the calibration and ``training.json``.
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

from poelang.stdlib.mini import rules, segmentation, world

WEIGHTS = Path(__file__).parent / "weights"
CLASSES = len(world.COLORS) * len(world.SHAPES)  # facts are per (colour, shape): rules.class_index - 1
BINS = 16  # position bins across the image side
MAX_COUNT = world.MAX_OBJECTS
RELATIONS = ("left of", "right of", "in front of", "behind")
SIZE_STATES = ("small", "large", "mixed")
IMPOSSIBLE = -30.0  # log P of a caption no image satisfies (one class named with two counts)

# --- captions as tensors --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def caption_spec(text: str) -> tuple:
    """(count per class, size per class (0 any, 1 small, 2 large), relations [(a, b, kind)], possible).

    Classes the caption never names must be absent (count 0): the world's captions name every object.
    ValueError if the caption is not of the world's grammar.
    """
    need = [0] * CLASSES
    size = [0] * CLASSES
    named: dict[int, int] = {}
    relations = []
    possible = True
    for clause in rules.parse_caption(text):
        phrases = [clause.subject] + ([clause.object] if clause.object else [])
        for p in phrases:
            k = rules.class_index(p.color, p.shape) - 1
            if named.get(k, p.count) != p.count:
                possible = False
            named[k] = p.count
            need[k] = p.count
            if p.size:
                wanted = 1 + world.SIZES.index(p.size)
                possible &= size[k] in (0, wanted)
                size[k] = wanted
        if clause.relation:
            a = rules.class_index(clause.subject.color, clause.subject.shape) - 1
            b = rules.class_index(clause.object.color, clause.object.shape) - 1
            relations.append((a, b, RELATIONS.index(clause.relation)))
    return tuple(need), tuple(size), tuple(relations), possible


def caption_tensors(captions: list[str]) -> dict[str, torch.Tensor]:
    specs = [caption_spec(c) for c in captions]
    rel = torch.full((len(specs), max([1, *(len(s[2]) for s in specs)]), 3), -1, dtype=torch.long)
    for i, (_, _, relations, _) in enumerate(specs):
        for r, triple in enumerate(relations):
            rel[i, r] = torch.tensor(triple)
    return {
        "text": tuple(captions),  # for the reader, which judges a caption by the world's rules
        "need": torch.tensor([s[0] for s in specs], dtype=torch.long),
        "size": torch.tensor([s[1] for s in specs], dtype=torch.long),
        "relations": rel,
        "possible": torch.tensor([s[3] for s in specs], dtype=torch.bool),
    }


def repeat_spec(spec: dict, n: int) -> dict:
    """The spec of one caption (from :func:`caption_tensors`) for a batch of n images."""
    return {k: v * n if k == "text" else v.expand(n, *v.shape[1:]) for k, v in spec.items()}


# --- hard negatives -------------------------------------------------------------------------------------------------


def _phrase_text(p: rules.Phrase) -> str:
    return world.noun_phrase(p.count, p.color, p.shape, p.size)


def _caption_text(clauses: list[rules.Clause]) -> str:
    parts = []
    for c in clauses:
        parts.append(_phrase_text(c.subject) + (f" {c.relation} {_phrase_text(c.object)}" if c.relation else ""))
    return " and ".join(parts)


NEGATIVE_KINDS = ("count", "colour", "shape", "size", "relation", "swap", "drop", "add")
# counts and relations are what the examples steer on, and relation captions are the fewer: their kinds come first
KIND_WEIGHTS = np.array([2.0, 1.0, 1.0, 1.0, 2.5, 2.5, 1.0, 1.0])


def hard_negative(text: str, rng: np.random.Generator, kind: str | None = None) -> tuple[str, str]:
    """(caption, kind): the caption wrong in exactly one thing, for the image the true caption describes.

    Kinds: a count off by one, a colour, a shape, a size (where a size is said), a relation flipped, a relation's
    objects swapped, a phrase dropped (an object left unnamed) or added (an object that is not there). Kinds are
    tried in a random order weighted by KIND_WEIGHTS (``kind`` first when given) until one applies to the caption.
    """
    from dataclasses import replace

    clauses = rules.parse_caption(text)
    order = rng.choice(NEGATIVE_KINDS, len(NEGATIVE_KINDS), replace=False, p=KIND_WEIGHTS / KIND_WEIGHTS.sum())
    for k in ([kind] if kind else []) + [str(k) for k in order]:
        if k in ("relation", "swap"):
            spots = [(ci, "subject") for ci, c in enumerate(clauses) if c.relation]
        elif k == "count":
            spots = [(ci, "subject") for ci, c in enumerate(clauses) if not c.relation]
        elif k == "size":
            spots = [(ci, role) for ci, c in enumerate(clauses) for role in ("subject", "object")
                     if getattr(c, role) and getattr(c, role).size]
        else:
            spots = [(ci, role) for ci, c in enumerate(clauses) for role in ("subject", "object") if getattr(c, role)]
        if not spots:
            continue
        ci, role = spots[int(rng.integers(len(spots)))]
        clause = clauses[ci]
        phrase = getattr(clause, role)
        new = list(clauses)
        if k == "count":
            counts = [c for c in (phrase.count - 1, phrase.count + 1) if 1 <= c <= MAX_COUNT]
            new[ci] = replace(clause, subject=replace(phrase, count=int(rng.choice(counts))))
        elif k == "colour":
            color = str(rng.choice([c for c in world.COLORS if c != phrase.color]))
            new[ci] = replace(clause, **{role: replace(phrase, color=color)})
        elif k == "shape":
            shape = str(rng.choice([s for s in world.SHAPES if s != phrase.shape]))
            new[ci] = replace(clause, **{role: replace(phrase, shape=shape)})
        elif k == "size":
            wrong = "large" if phrase.size == "small" else "small"
            new[ci] = replace(clause, **{role: replace(phrase, size=wrong)})
        elif k == "relation":
            flip = {"left of": "right of", "right of": "left of", "in front of": "behind", "behind": "in front of"}
            new[ci] = replace(clause, relation=flip[clause.relation])
        elif k == "swap":
            new[ci] = replace(clause, subject=clause.object, object=clause.subject)
        elif k == "drop" and (len(clauses) > 1 or clause.relation):
            if clause.relation:  # keep the other object of the relation
                new[ci] = rules.Clause(clause.object if role == "subject" else clause.subject)
            else:
                del new[ci]
        elif k == "add" and sum(1 + bool(c.object) for c in clauses) < MAX_COUNT + 1:
            named = {(p.color, p.shape) for c in clauses for p in (c.subject, c.object) if p}
            free = [(c, s) for c in world.COLORS for s in world.SHAPES if (c, s) not in named]
            color, shape = free[int(rng.integers(len(free)))]
            new.insert(int(rng.integers(len(new) + 1)), rules.Clause(rules.Phrase(1, color, shape)))
        else:
            continue
        return _caption_text(new), k
    raise ValueError(f"no hard negative of {text!r}")


def true_size_caption(text: str, objects: list[dict], rng: np.random.Generator) -> str:
    """The caption with a size word given to phrases whose objects share one size (so 'size' negatives apply)."""
    from dataclasses import replace

    clauses = rules.parse_caption(text)
    out = []
    for c in clauses:
        def sized(p):
            sizes = {o["size"] for o in objects if (o["color"], o["shape"]) == (p.color, p.shape)}
            return replace(p, size=next(iter(sizes))) if len(sizes) == 1 and rng.random() < 0.5 else p
        out.append(replace(c, subject=sized(c.subject), object=sized(c.object) if c.object else None))
    return _caption_text(out)


# --- the model -------------------------------------------------------------------------------------------------------


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


class MiniVQA(nn.Module):
    """Per-class facts of a 32×32 image in [-1, 1]: count, size and position logits (see the module's docstring)."""

    def __init__(self, width: int = 32, hidden: int = 256, size: int = 32, scale: float = 1.0, bias: float = 0.0,
                 segment: bool = False):
        super().__init__()
        self.config = {"width": width, "hidden": hidden, "size": size, "scale": scale, "bias": bias}
        w = width
        self.trunk = nn.Sequential(
            _conv(5, w), _conv(w, 2 * w, 2), _conv(2 * w, 2 * w), _conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))
        cells = (size // 4) ** 2
        self.mix = nn.Sequential(nn.Conv2d(4 * w, w, 1), nn.SiLU(), nn.Flatten(), nn.Linear(w * cells, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU())
        self.heads = nn.Linear(hidden, CLASSES * (MAX_COUNT + 1 + len(SIZE_STATES) + 2 * BINS))
        if segment:  # a training aid: each pixel's class from the trunk, so that it reads shapes where they are drawn
            self.config["segment"] = True
            self.segment_head = nn.Sequential(nn.Conv2d(4 * w, w, 3, padding=1), nn.SiLU(),
                                              nn.Upsample(scale_factor=4, mode="bilinear"),
                                              nn.Conv2d(w, CLASSES + 1, 3, padding=1))
        # calibration: P(yes) = sigmoid(scale * log-odds + bias), fitted after training
        self.register_buffer("calibration", torch.tensor([scale, bias]))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The trunk's feature map [B, 4w, H/4, W/4] (with row and column channels, so positions can be read)."""
        b, _, h, w = images.shape
        rows = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(b, 1, h, w)
        cols = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(b, 1, h, w)
        return self.trunk(torch.cat([images, rows, cols], 1))

    def facts(self, images: torch.Tensor, features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Log-probabilities per class: count [B, 24, 4], size [B, 24, 3], column and bottom [B, 24, 16]."""
        x = self.features(images) if features is None else features
        out = self.heads(self.mix(x)).view(x.shape[0], CLASSES, -1)
        c, s = MAX_COUNT + 1, len(SIZE_STATES)
        return {"count": F.log_softmax(out[..., :c], -1), "size": F.log_softmax(out[..., c:c + s], -1),
                "column": F.log_softmax(out[..., c + s:c + s + BINS], -1),
                "bottom": F.log_softmax(out[..., c + s + BINS:], -1)}

    def log_odds(self, images: torch.Tensor, spec: dict[str, torch.Tensor]) -> torch.Tensor:
        """Uncalibrated log P(caption) - log P(not caption), one caption per image (spec from caption_tensors)."""
        lp = caption_log_prob(self.facts(images), spec).clamp(max=-1e-6)
        return lp - torch.log(-torch.expm1(lp))

    def forward(self, images: torch.Tensor, spec: dict[str, torch.Tensor]) -> torch.Tensor:
        """Calibrated logit of P(yes)."""
        scale, bias = self.calibration
        return scale * self.log_odds(images, spec) + bias


def _relation_prob(pa: torch.Tensor, pb: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """P(a's coordinate < b's), ties counted half, from bin distributions [B, BINS]; kind 0/2 'less', 1/3 'greater'."""
    cdf_b = torch.cumsum(pb, -1)
    less = (pa * (1 - cdf_b)).sum(-1) + 0.5 * (pa * pb).sum(-1)  # a in bin i, b in a later bin (or the same, half)
    return torch.where(kind % 2 == 0, less, 1 - less)


def caption_log_prob(facts: dict[str, torch.Tensor], spec: dict[str, torch.Tensor]) -> torch.Tensor:
    """log P(caption | image) [B]: every class's count as named (0 if unnamed), sizes as named, relations hold.

    'left of' compares centre columns, 'in front of' lowest rows (nearer the camera is lower in the image).
    """
    need, size, relations = spec["need"], spec["size"], spec["relations"]
    lp = facts["count"].gather(-1, need[..., None])[..., 0].sum(-1)
    sized = size > 0
    size_lp = facts["size"].gather(-1, (size - 1).clamp(min=0)[..., None])[..., 0]
    lp = lp + torch.where(sized, size_lp, torch.zeros_like(size_lp)).sum(-1)
    rows = torch.arange(len(need))
    for r in range(relations.shape[1]):
        a, b, kind = relations[:, r, 0], relations[:, r, 1], relations[:, r, 2]
        present = a >= 0
        a, b = a.clamp(min=0), b.clamp(min=0)
        axis = torch.where((kind < 2)[:, None], facts["column"][rows, a].exp(), facts["bottom"][rows, a].exp())
        other = torch.where((kind < 2)[:, None], facts["column"][rows, b].exp(), facts["bottom"][rows, b].exp())
        # 'in front of' (kind 2) means a lower in the image: a's bottom row greater, the 'greater' side of the test
        kind_lr = torch.where(kind < 2, kind, 3 - kind)
        p = _relation_prob(axis, other, kind_lr).clamp(1e-6, 1.0)
        lp = lp + torch.where(present, p.log(), torch.zeros_like(p))
    return torch.where(spec["possible"], lp, torch.full_like(lp, IMPOSSIBLE))


# --- shipped weights -------------------------------------------------------------------------------------------------


class JudgeEnsemble(nn.Module):
    """Several MiniVQA trained apart, their log-odds averaged, and optionally a reader's verdict, calibrated as one
    judge: logit P(yes) = scale · mean log-odds + bias + reader_weight · verdict.

    Members trained from different starts disagree on the generator's ambiguous objects more than on clear ones, so
    the average ranks a caption's particles better than either alone. The reader labels each pixel with its class and
    the world's rules judge the caption on the objects it finds (1 true, 0 false): it sees a shape where it is drawn
    and a stray object the caption does not name, the near misses the members' per-class summaries blur
    (docs/results.md, issue 16)."""

    def __init__(self, members: list[MiniVQA], scale: float = 1.0, bias: float = 0.0, reader: nn.Module | None = None,
                 reader_weight: float = 0.0):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.reader = reader
        self.config = {"members": [m.config for m in members], **({"reader": reader.config} if reader else {})}
        self.register_buffer("calibration", torch.tensor([scale, bias] + ([reader_weight] if reader else [])))

    def log_odds(self, images: torch.Tensor, spec: dict[str, torch.Tensor]) -> torch.Tensor:
        """The members' mean log-odds (the reader's verdict is not in it: see :meth:`verdict`)."""
        return torch.stack([m.log_odds(images, spec) for m in self.members]).mean(0)

    def verdict(self, images: torch.Tensor, spec: dict) -> torch.Tensor:
        """1.0 where the rules find the caption true of the reader's class map, else 0.0 (0 without a reader)."""
        if self.reader is None:
            return torch.zeros(len(images))
        return torch.tensor(segmentation.verdicts(images, list(spec["text"]), self.reader), dtype=torch.float32)

    def forward(self, images: torch.Tensor, spec: dict) -> torch.Tensor:
        logit = self.calibration[0] * self.log_odds(images, spec) + self.calibration[1]
        return logit + self.calibration[2] * self.verdict(images, spec) if self.reader is not None else logit


CALIBRATION = ("scale", "bias", "reader_weight")  # the calibration's entries, in its buffer's order


def save(model: MiniVQA | JudgeEnsemble, record: dict, folder: Path | None = None) -> Path:
    from safetensors.torch import save_file

    folder = folder or WEIGHTS / "mini_vqa"
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().to(torch.float16) if v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items() if not k.endswith("calibration")}  # calibrations: config.json
    save_file(state, tmp / "model.safetensors")
    if hasattr(model, "calibration"):
        config = {**model.config, **dict(zip(CALIBRATION, (round(float(v), 5) for v in model.calibration))),
                  "kind": "facts"}
    else:  # a reader (train_reader): a segmenter, joined to a judge by ensemble
        config = {**model.config, "kind": "reader"}
    (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    (tmp / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _member(config: dict, calibrated: bool = False) -> MiniVQA:
    keys = ("width", "hidden", "size") + (("scale", "bias") if calibrated else ())
    return MiniVQA(**{k: config[k] for k in keys}, segment=config.get("segment", False))


def load(folder: Path) -> MiniVQA | JudgeEnsemble:
    """A saved judge, float32, eval mode: one MiniVQA, or an ensemble when its config lists members."""
    from safetensors.torch import load_file

    config = json.loads((Path(folder) / "config.json").read_text())
    if "members" in config:
        reader = segmentation.Segmenter(**config["reader"]) if "reader" in config else None
        model = JudgeEnsemble([_member(c) for c in config["members"]], config["scale"], config["bias"], reader,
                              config.get("reader_weight", 0.0))
    else:
        model = _member(config, calibrated=True)
    state = {k: v.float() if v.is_floating_point() else v
             for k, v in load_file(Path(folder) / "model.safetensors").items()}
    calibrations = {k: v for k, v in model.state_dict().items() if k.endswith("calibration")}
    model.load_state_dict({**state, **calibrations})
    return model.eval().requires_grad_(False)


# --- data ------------------------------------------------------------------------------------------------------------


def fact_targets(objects: list[dict], index_map: np.ndarray) -> dict[str, np.ndarray]:
    """Ground truth of one render: count and size state per class, centre column and lowest row bins of singles."""
    count = np.zeros(CLASSES, np.int64)
    sizes: dict[int, set] = {}
    column = np.full(CLASSES, -1, np.int64)
    bottom = np.full(CLASSES, -1, np.int64)
    side = index_map.shape[0]
    for i, o in enumerate(objects):
        k = rules.class_index(o["color"], o["shape"]) - 1
        count[k] += 1
        sizes.setdefault(k, set()).add(o["size"])
        rows, cols = np.nonzero(index_map == i + 1)
        if len(rows):
            column[k] = min(BINS - 1, int((cols.mean() + 0.5) / side * BINS))
            bottom[k] = min(BINS - 1, int((rows.max() + 1) / side * BINS - 1e-6))
    size = np.full(CLASSES, -1, np.int64)
    for k, s in sizes.items():
        size[k] = SIZE_STATES.index(next(iter(s))) if len(s) == 1 else 2
    column[count != 1], bottom[count != 1] = -1, -1
    return {"count": count, "size": size, "column": column, "bottom": bottom}


class GuidedFlux:
    """mini_flux's guided velocity for a batch with one prompt per row, as the sampler computes it (true_cfg)."""

    def __init__(self):
        from poelang.stdlib.codecs import PixelCodec
        from poelang.stdlib.mini.train import WEIGHTS as FLUX_WEIGHTS, load_trained
        from poelang.stdlib.mini import TRUE_CFG

        self.clip, self.t5, self.tokenizer, self.transformer = load_trained(FLUX_WEIGHTS / "mini_flux")
        self.cfg = TRUE_CFG
        self.codec = PixelCodec(2)

    @torch.no_grad()
    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, text: tuple) -> torch.Tensor:
        """The guided velocity at latents x [B, C, h, w], each row at its own sigma; text from :meth:`encode`."""
        from poelang.stdlib.codecs import image_ids, pack, unpack

        embeds, pooled = text
        b, _, h, w = x.shape
        out = self.transformer(hidden_states=pack(x).repeat(2, 1, 1), timestep=sigma.repeat(2),
                               pooled_projections=pooled, encoder_hidden_states=embeds,
                               txt_ids=torch.zeros(embeds.shape[1], 3), img_ids=image_ids(h, w), return_dict=False)[0]
        positive, negative = out.chunk(2)
        return unpack(negative + self.cfg * (positive - negative), h, w)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple:
        from poelang.stdlib.mini.train import encode_text

        return encode_text(self.clip, self.t5, self.tokenizer, list(prompts) + [""] * len(prompts))

    def _noised(self, images: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        s = sigma.view(-1, 1, 1, 1)
        return (1 - s) * self.codec.encode(images) + s * self.codec.encode(noise)

    @torch.no_grad()
    def x0_hat(self, images: torch.Tensor, sigma: torch.Tensor, prompts: list[str], noise: torch.Tensor):
        """x0_hat = x - sigma v of images noised to sigma, v the guided flow given each row's prompt."""
        x = self._noised(images, sigma, noise)
        v = self.velocity(x, sigma, self.encode(prompts))
        return self.codec.decode(x - sigma.view(-1, 1, 1, 1) * v).clamp(-1, 1)

    @torch.no_grad()
    def finish(self, images: torch.Tensor, sigma: torch.Tensor, prompts: list[str], noise: torch.Tensor,
               step: float = 0.05) -> torch.Tensor:
        """The sampler's final image from images noised to sigma: Euler steps of the guided flow down to 0."""
        x = self._noised(images, sigma, noise)
        embeds, pooled = self.encode(prompts)  # rows: the prompts, then as many empty ones (the unguided half)
        now, b = sigma.clone(), len(prompts)
        while bool((now > 0).any()):
            rows = torch.nonzero(now > 0).flatten()  # rows already at sigma = 0 are done: no velocity for them
            both = torch.cat([rows, rows + b])
            nxt = (now[rows] - step).clamp(min=0)
            v = self.velocity(x[rows], now[rows], (embeds[both], pooled[both]))
            x[rows] = x[rows] + (nxt - now[rows]).view(-1, 1, 1, 1) * v
            now[rows] = nxt
        return self.codec.decode(x).clamp(-1, 1)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


VIEWS = ("clean", "x0_hat", "final")  # what the judge is shown of a render (see make_data)


def make_data(out: Path, n: int, seed: int, views: tuple[float, float, float] = (0.2, 0.4, 0.4),
              max_sigma: float = 0.8, start_sigma: tuple[float, float] = (0.1, 0.6), batch: int = 64,
              shard: tuple[int, int] = (0, 1)) -> None:
    """``out/vqa.<i>.npz``: per render of a training-split caption, one judge input, its caption and a hard negative.

    The input is, with the probabilities ``views``: the render itself; x0_hat of the render noised to sigma in
    (0, max_sigma] and denoised by one guided mini_flux step (what resampling ranks); or the sampler's final image
    from the render noised to sigma in ``start_sigma`` and run down to 0 by the guided flow (what the best output is
    picked from, with the generator's own edges and textures). mini_flux is always prompted by the true caption,
    and every input is labelled by the render's facts: the hard negative differs in the caption only, so the judge
    never learns to read a render's facts through what a wrong prompt drew. With ``shard`` (i, k) this process makes
    every k-th batch from the i-th into ``vqa.i.npz``; ``train`` reads all shards.
    """
    rng = np.random.default_rng([seed, 17, shard[0]])
    renderer = world.get_renderer(32)
    flux = GuidedFlux()
    count = len(range(shard[0], n, shard[1]))
    rgb = np.zeros((count, 32, 32, 3), np.uint8)
    shown = np.zeros_like(rgb)
    seg = np.zeros((count, 32, 32), np.uint8)  # the render's class per pixel (0: background)
    sigmas = np.zeros(count, np.float32)
    view = np.zeros(count, np.int64)
    captions, negatives, kinds, objects, targets = [], [], [], [], []
    started = time.time()
    for start in range(0, count, batch):
        rows = slice(start, min(count, start + batch))
        for i in range(rows.start, rows.stop):
            scene, text = world._captioned(rng, "train", world.sample_scene)
            render = renderer.render(scene)
            objs = [{"color": o.color, "shape": o.shape, "size": o.size} for o in scene.objects]
            sized = true_size_caption(text, objs, rng)
            text = sized if world.split_of(sized) == "train" else text
            wrong, kind = hard_negative(text, rng)
            for _ in range(20):  # held-out captions stay unseen, as negatives too
                if world.split_of(wrong) == "train":
                    break
                wrong, kind = hard_negative(text, rng)
            rgb[i], seg[i] = render.rgb, rules.segmentation_labels(render)
            captions.append(text), negatives.append(wrong), kinds.append(kind), objects.append(json.dumps(objs))
            targets.append(fact_targets(objs, render.index_map))
            view[i] = rng.choice(3, p=views)
            sigmas[i] = (0.0, rng.uniform(0.02, max_sigma), rng.uniform(*start_sigma))[view[i]]
        images = torch.from_numpy(rgb[rows]).permute(0, 3, 1, 2).float() / 127.5 - 1
        noise = torch.from_numpy(rng.standard_normal(images.shape).astype(np.float32))
        out_images = images.clone()
        for v, make in ((1, flux.x0_hat), (2, flux.finish)):
            sel = torch.from_numpy(view[rows] == v)
            if sel.any():
                out_images[sel] = make(images[sel], torch.from_numpy(sigmas[rows])[sel],
                                       [c for c, k in zip(captions[rows], sel) if k], noise[sel])
        shown[rows] = _to_uint8(out_images)
        if (start // batch) % 20 == 0:
            print(f"data {rows.stop}/{count} ({time.time() - started:.0f} s)", flush=True)
    Path(out).mkdir(parents=True, exist_ok=True)
    stacked = {k: np.stack([t[k] for t in targets]) for k in targets[0]}
    tmp = Path(out) / f"vqa.{shard[0]}.tmp.npz"
    meta = {"n": n, "seed": seed, "views": list(views), "max_sigma": max_sigma, "start_sigma": list(start_sigma)}
    np.savez_compressed(tmp, rgb=rgb, shown=shown, seg=seg, sigma=sigmas, view=view, captions=np.array(captions),
                        negatives=np.array(negatives), kinds=np.array(kinds), objects_json=np.array(objects),
                        meta=np.array(json.dumps(meta)), **{f"target_{k}": v for k, v in stacked.items()})
    tmp.rename(Path(out) / f"vqa.{shard[0]}.npz")


def load_data(folders: list[Path]) -> dict[str, np.ndarray]:
    """Every shard of ``make_data`` under each folder, concatenated in shard order; ``part`` says which folder."""
    import re

    parts, metas = [], []
    for number, folder in enumerate(folders):
        shards = {int(m[1]): f for f in Path(folder).iterdir() if (m := re.fullmatch(r"vqa\.(\d+)\.npz", f.name))}
        for i in sorted(shards):
            part = dict(np.load(shards[i]))
            metas.append(json.loads(str(part.pop("meta"))))
            parts.append({**part, "part": np.full(len(part["captions"]), number)})
    common = [k for k in parts[0] if all(k in p for p in parts)]  # older shards have no class maps
    data = {k: np.concatenate([p[k] for p in parts]) for k in common}
    data["meta"] = np.array(json.dumps([m for i, m in enumerate(metas) if m not in metas[:i]]))
    return data


# --- training --------------------------------------------------------------------------------------------------------


def _images(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1


def _fact_loss(facts: dict, targets: dict[str, torch.Tensor]) -> torch.Tensor:
    loss = F.nll_loss(facts["count"].flatten(0, 1), targets["count"].flatten())
    for key in ("size", "column", "bottom"):
        t = targets[key].flatten()
        if (t >= 0).any():
            loss = loss + F.nll_loss(facts[key].flatten(0, 1), t, ignore_index=-1)
    return loss


def _descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor, lr: float, step: int, started: float,
             minutes: float) -> None:
    """One step down ``loss``: warm-up over 100 steps, then the rate decays linearly to zero when the time is up."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    left = max(0.0, 1 - (time.perf_counter() - started) / (minutes * 60))
    for group in optimizer.param_groups:
        group["lr"] = lr * min(1.0, (step + 1) / 100) * left
    optimizer.step()


def _split(data: dict, held_out: float) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows): the last ``held_out`` of each data folder is held out."""
    parts = data.get("part", np.zeros(len(data["captions"]), np.int64))
    train_rows, held_rows = [], []
    for p in np.unique(parts):
        rows = np.flatnonzero(parts == p)
        cut = int(len(rows) * (1 - held_out))
        train_rows.append(rows[:cut]), held_rows.append(rows[cut:])
    return np.concatenate(train_rows), np.concatenate(held_rows)


def _batch(data: dict, images: torch.Tensor, idx: np.ndarray, rng: np.random.Generator):
    """Images, captions and labels: each row's image with its true caption or its hard negative, half each."""
    which = rng.random(len(idx)) < 0.5  # True: the true caption
    text = [str(data["captions"][i]) if w else str(data["negatives"][i]) for i, w in zip(idx, which)]
    return images[idx], text, torch.from_numpy(which.astype(np.float32))


def train(data: dict, minutes: float, seed: int, batch: int = 128, lr: float = 2e-3, held_out: float = 0.1,
          caption_weight: float = 0.5, log_every: int = 100, init: Path | None = None,
          segment_weight: float = 0.0) -> tuple[MiniVQA, dict]:
    """Fact losses (counts, sizes, positions) plus the caption loss through :func:`caption_log_prob`, then calibration.

    ``init``: a judge folder to start from (fine-tuning) instead of random weights. ``segment_weight`` > 0 adds a
    per-pixel class loss on the render's class map (data made with it) through a head the judge does not use."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = _images(data["shown"])
    targets = {k: torch.from_numpy(data[f"target_{k}"]) for k in ("count", "size", "column", "bottom")}
    train_idx, held_idx = _split(data, held_out)
    if segment_weight > 0 and "seg" not in data:
        raise ValueError("segment_weight needs data with class maps (made by this version of make_data)")
    seg = torch.from_numpy(data["seg"]).long() if segment_weight > 0 else None
    model = load(init).requires_grad_(True) if init else MiniVQA(segment=segment_weight > 0)
    if isinstance(model, JudgeEnsemble):
        raise ValueError(f"{init} is an ensemble; train starts from one of its members' folders")
    if seg is not None and not hasattr(model, "segment_head"):
        raise ValueError(f"{init} was trained without the per-pixel class head; segment_weight needs a judge with it")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    started, step, losses = time.perf_counter(), 0, []
    model.train()
    while time.perf_counter() - started < minutes * 60:
        idx = rng.choice(train_idx, batch)
        x, text, label = _batch(data, images, idx, rng)
        x = x + 0.02 * torch.randn_like(x)
        features = model.features(x)
        facts = model.facts(x, features)
        fact_loss = _fact_loss(facts, {k: v[idx] for k, v in targets.items()})
        if seg is not None:
            fact_loss = fact_loss + segment_weight * F.cross_entropy(model.segment_head(features), seg[idx])
        lp = caption_log_prob(facts, caption_tensors(text)).clamp(max=-1e-6)
        odds = lp - torch.log(-torch.expm1(lp))
        caption_loss = F.binary_cross_entropy_with_logits(odds, label)
        loss = fact_loss + caption_weight * caption_loss
        _descend(optimizer, loss, lr, step, started, minutes)
        losses.append((float(fact_loss.detach()), float(caption_loss.detach())))
        step += 1
        if step % log_every == 0:
            f, c = np.mean(losses[-log_every:], 0)
            print(f"vqa step {step} facts {f:.4f} caption {c:.4f} "
                  f"({(time.perf_counter() - started) / step:.2f} s/step)", flush=True)
    model.eval()
    fitted, report = calibrate(model, data, images, held_idx, seed)
    model.calibration.copy_(torch.tensor(fitted))
    f, c = np.mean(losses[-200:], 0)
    record = {"kind": "mini_vqa", "seed": seed, "minutes": minutes, "batch": batch, "lr": lr, "steps": step,
              "final_fact_loss": round(float(f), 5), "final_caption_loss": round(float(c), 5),
              "examples": len(train_idx), "held_out": len(held_idx), **report}
    if init:
        record["init"] = str(init)
    if segment_weight > 0:
        record["segment_weight"] = segment_weight
    return model, record


READER_INPUTS = ("renders", "shown", "both")


def train_reader(data: dict, minutes: float, seed: int, batch: int = 64, lr: float = 2e-3, held_out: float = 0.1,
                 inputs: str = "renders", noise: float = 0.05) -> tuple[nn.Module, dict]:
    """The judge's reader: each pixel's class (a :class:`~poelang.stdlib.mini.segmentation.Segmenter`), learned
    from each render's class map, the world's ground truth (no checker label or weight), with Gaussian ``noise``
    added to its inputs: the clean renders (``inputs`` 'renders', ``data['rgb']``), the images the judge is shown
    ('shown': clean, x0_hat and finished, ``data['shown']``) or both (half each). The judge reads its class map
    through the world's rules (:meth:`JudgeEnsemble.verdict`). The report is on the held-out rows of
    ``data['shown']`` either way.

    Learning from clean renders ranks a caption's generated particles best (docs/results.md, issue 16): the labels of
    an x0_hat or a finished image are the render's, which the generator may have redrawn."""
    if "seg" not in data:
        raise ValueError("the reader needs data with class maps (made by this version of make_data)")
    if inputs not in READER_INPUTS:
        raise ValueError(f"inputs must be one of {READER_INPUTS}, not {inputs!r}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = _images(data["shown"])
    renders = _images(data["rgb"]) if inputs != "shown" else images
    seg = torch.from_numpy(data["seg"]).long()
    train_idx, held_idx = _split(data, held_out)
    model = segmentation.Segmenter(rules.N_CLASSES)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    started, step, losses = time.perf_counter(), 0, []
    while time.perf_counter() - started < minutes * 60:
        idx = rng.choice(train_idx, batch)
        if inputs == "both":
            x = torch.where(torch.from_numpy(rng.random(batch) < 0.5).view(-1, 1, 1, 1), renders[idx], images[idx])
        else:
            x = (renders if inputs == "renders" else images)[idx]
        loss = F.cross_entropy(model(x + noise * torch.randn_like(x)), seg[idx])
        _descend(optimizer, loss, lr, step, started, minutes)
        losses.append(float(loss.detach()))
        step += 1
        if step % 100 == 0:
            print(f"reader step {step} loss {np.mean(losses[-100:]):.4f}", flush=True)
    model.eval().requires_grad_(False)
    record = {"kind": "mini_vqa reader", "seed": seed, "minutes": minutes, "batch": batch, "lr": lr, "steps": step,
              "inputs": inputs, "noise": noise,
              "final_loss": round(float(np.mean(losses[-200:])), 5), "examples": len(train_idx),
              "held_out": len(held_idx), **_reader_report(model, data, images, held_idx)}
    return model, record


@torch.no_grad()
def _reader_report(reader: nn.Module, data: dict, images: torch.Tensor, idx: np.ndarray) -> dict:
    """Per view: pixel accuracy, and how often the rules on the reader's class map pass the true caption and the
    hard negative."""
    report = {}
    views = data["view"][idx]
    for v, name in enumerate(VIEWS):
        rows = idx[views == v]
        if not len(rows):
            continue
        maps = segmentation.class_maps(images[rows], reader)  # once: both captions are judged on the same map
        report[f"pixel_accuracy_{name}"] = round(float((maps == data["seg"][rows]).mean()), 4)
        for kind, captions in (("true", data["captions"][rows]), ("negative", data["negatives"][rows])):
            passed = segmentation.judge_maps(maps, list(map(str, captions)))
            report[f"passes_{kind}_{name}"] = round(float(np.mean(passed)), 4)
    return report


@torch.no_grad()
def _held_out_evidence(model: MiniVQA | JudgeEnsemble, data: dict, images: torch.Tensor, idx: np.ndarray, seed: int):
    """(evidence [N, 2]: log-odds and the reader's verdict (0 without one), labels [N]) on held-out pairs."""
    rng = np.random.default_rng([seed, 1])
    evidence, labels = [], []
    for start in range(0, len(idx), 256):
        rows = idx[start:start + 256]
        x, text, label = _batch(data, images, rows, rng)
        spec = caption_tensors(text)
        verdict = model.verdict(x, spec) if isinstance(model, JudgeEnsemble) else torch.zeros(len(x))
        evidence.append(torch.stack([model.log_odds(x, spec), verdict], 1))
        labels.append(label)
    return torch.cat(evidence), torch.cat(labels)


def calibrate(model: MiniVQA | JudgeEnsemble, data: dict, images: torch.Tensor, idx: np.ndarray,
              seed: int) -> tuple[list[float], dict]:
    """Platt scaling: (scale, bias[, reader_weight]) minimising the log loss of sigmoid(scale · log-odds + bias
    [+ reader_weight · verdict]) on held-out pairs; the report gives the held-out AUC per view (clean, x0_hat,
    finished)."""
    evidence, labels = _held_out_evidence(model, data, images, idx, seed)
    with_reader = getattr(model, "reader", None) is not None
    params = torch.tensor([1.0, 0.0, 0.0], requires_grad=True)
    opt = torch.optim.LBFGS([params], max_iter=200)

    def logit(p):
        return p[0] * evidence[:, 0] + p[1] + (p[2] * evidence[:, 1] if with_reader else 0.0)

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(logit(params), labels)
        loss.backward()
        return loss

    opt.step(closure)
    fitted = [float(v) for v in params.detach()[:3 if with_reader else 2]]
    p = torch.sigmoid(logit(params.detach()))
    views = torch.from_numpy(data["view"][idx])
    report = {"held_out_auc": round(auc(p.numpy(), labels.numpy()), 4),
              **{f"held_out_auc_{name}": round(auc(p[views == v].numpy(), labels[views == v].numpy()), 4)
                 for v, name in enumerate(VIEWS)},
              "held_out_log_loss": round(float(F.binary_cross_entropy(p, labels)), 4),
              "calibration_error": round(expected_calibration_error(p.numpy(), labels.numpy()), 4)}
    if with_reader:
        report["reader_weight"] = round(fitted[2], 4)
    return fitted, report


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (the probability a positive outscores a negative, ties half); nan without both."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    ranks[order] = np.arange(1, len(order) + 1)
    for v in np.unique(values):  # average ranks of ties
        tie = np.concatenate([pos, neg]) == v
        ranks[tie] = ranks[tie].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def expected_calibration_error(p: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    edges = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        sel = edges == b
        if sel.any():
            error += sel.mean() * abs(p[sel].mean() - labels[sel].mean())
    return float(error)


def ensemble(folders: list[Path], data: dict, seed: int, reader: Path | None = None) -> tuple[JudgeEnsemble, dict]:
    """The judges saved under folders (and the reader saved under ``reader``) as one, its calibration fitted on the
    held-out rows of data."""
    model = JudgeEnsemble([load(f) for f in folders], reader=segmentation.load(reader) if reader else None)
    _, held_idx = _split(data, 0.1)
    fitted, report = calibrate(model, data, _images(data["shown"]), held_idx, seed)
    model.calibration.copy_(torch.tensor(fitted))
    members = [json.loads((Path(f) / "training.json").read_text()) for f in folders]
    record = {"kind": "mini_vqa ensemble", "held_out": len(held_idx), **report, "members": members}
    if reader:
        record["reader"] = json.loads((Path(reader) / "training.json").read_text())
    return model, record


def main(argv: list[str] | None = None) -> None:
    import sys

    parser = argparse.ArgumentParser(prog="python -m poelang.stdlib.mini.vqa")
    parser.add_argument("what", choices=["data", "train", "reader", "ensemble"])
    parser.add_argument("--data", type=Path, nargs="+", default=[Path("build/vqa_data")],
                        help="data: the folder to write; train, ensemble: the folders to read")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--images", type=int, default=40000)
    parser.add_argument("--minutes", type=float, default=50.0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--shard", type=int, nargs=2, default=(0, 1), metavar=("I", "K"),
                        help="data: make every K-th batch from the I-th (one process per core)")
    parser.add_argument("--views", type=float, nargs=3, default=(0.2, 0.4, 0.4), metavar=("CLEAN", "X0_HAT", "FINAL"),
                        help="data: how often a render is shown clean, as x0_hat, as a finished image")
    parser.add_argument("--start", type=float, nargs=2, default=(0.1, 0.6), metavar=("LOW", "HIGH"),
                        help="data: the sigma a finished image starts from, uniform in [LOW, HIGH]")
    parser.add_argument("--init", type=Path, default=None, help="train: start from this judge folder")
    parser.add_argument("--segment", type=float, default=0.0, metavar="WEIGHT",
                        help="train: add a per-pixel class loss of this weight (data with class maps)")
    parser.add_argument("--inputs", choices=READER_INPUTS, default="renders",
                        help="reader: learn from the clean renders, the judge's inputs, or both")
    parser.add_argument("--noise", type=float, default=0.05, help="reader: Gaussian noise added to its inputs")
    parser.add_argument("--members", type=Path, nargs="+", default=None, help="ensemble: the judge folders to join")
    parser.add_argument("--reader", type=Path, default=None, help="ensemble: join this reader (made by 'reader') too")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "data":
        make_data(args.out or args.data[0], args.images, args.seed, tuple(args.views), start_sigma=tuple(args.start),
                  shard=tuple(args.shard))
        return
    data = load_data(args.data)
    if args.what == "ensemble":
        model, record = ensemble(args.members, data, args.seed, args.reader)
    elif args.what == "reader":
        model, record = train_reader(data, args.minutes, args.seed, inputs=args.inputs, noise=args.noise)
    else:
        model, record = train(data, args.minutes, args.seed, args.batch, args.lr, init=args.init,
                              segment_weight=args.segment)
    record["data"] = json.loads(str(data["meta"]))
    record["command"] = "python -m poelang.stdlib.mini.vqa " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps(record, indent=1))
    print("saved", save(model, record, args.out))


if __name__ == "__main__":
    main()
