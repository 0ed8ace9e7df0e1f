"""Rule-based judge of mini-world images: does a picture satisfy a caption of the closed grammar?

The judge reads a per-pixel class map over background + every (colour, shape) pair, never the pixels themselves, so
the same rules run on the ground truth of a render (`segmentation_labels`) and, later, on the output of a learned
segmenter for generated images. From the class map it extracts objects (connected regions of one class) with their
area, centroid and lowest row; sizes are judged from area and distance, which the fixed camera makes measurable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from poelang.stdlib.mini.world import (
    COLORS,
    PLURALS,
    SHAPES,
    SIZE_WIDTH,
    WORD_COUNT,
    Render,
    camera_depth,
    focal_px,
    ground_point,
)

BACKGROUND = 0
N_CLASSES = 1 + len(COLORS) * len(SHAPES)


def class_index(color: str, shape: str) -> int:
    """Label of (colour, shape) in a class map; 0 is background (ground and sky)."""
    return 1 + COLORS.index(color) * len(SHAPES) + SHAPES.index(shape)


def class_name(index: int) -> tuple[str, str]:
    """(colour, shape) of a non-background label."""
    color, shape = divmod(index - 1, len(SHAPES))
    return COLORS[color], SHAPES[shape]


def labels_from_index_map(index_map: np.ndarray, objects) -> np.ndarray:
    """Class map from an object-index map (0 background, k+1 object k), as datasets store masks."""
    lookup = np.array([BACKGROUND, *(class_index(o.color, o.shape) for o in objects)], np.int64)
    return lookup[np.asarray(index_map, np.int64)]


def segmentation_labels(render: Render) -> np.ndarray:
    """int64 (H, W) class map of a render's ground truth."""
    return labels_from_index_map(render.index_map, render.objects)


# ---------------------------------------------------------------------------------------------------------------------
# Objects from a class map


@dataclass(frozen=True)
class Fact:
    """One object seen in a class map. Coordinates are (column, row) in pixels, rows growing downwards."""

    color: str
    shape: str
    area: int
    centroid: tuple[float, float]
    bbox: tuple[int, int, int, int]  # col0, row0, col1, row1 (exclusive)
    bottom: float  # lower edge of the lowest row: where the object meets the ground nearest the camera
    width: float  # estimated width in meters (see `estimate_width`)

    @property
    def large(self) -> bool:
        return is_large(self)


def _components(seg: np.ndarray) -> np.ndarray:
    """4-connected regions of equal non-zero label: an int map, 0 for background, one id per region."""
    h, w = seg.shape
    ids = np.where(seg > 0, np.arange(1, h * w + 1).reshape(h, w), 0)
    big = h * w + 1
    while True:
        current = np.where(ids > 0, ids, big)
        best = current.copy()
        for axis, step in ((0, 1), (0, -1), (1, 1), (1, -1)):
            shifted = np.roll(current, step, axis=axis)
            same = np.roll(seg, step, axis=axis) == seg
            edge = [slice(None)] * 2
            edge[axis] = slice(0, 1) if step == 1 else slice(-1, None)
            same[tuple(edge)] = False  # no wrap-around
            best = np.where(same & (seg > 0), np.minimum(best, shifted), best)
        new = np.where(seg > 0, best, 0)
        if np.array_equal(new, ids):
            return ids
        ids = new


# Shape factor: sqrt(silhouette area) * depth / focal over the true width, for an object seen from the fixed camera.
# Measured as the mean over 1500 rendered scenes at 32 and 64 pixels, where every object stayed within 10% of it;
# it only has to split small from large, whose widths differ by SIZE_WIDTH['large'] / SIZE_WIDTH['small'] = 1.56.
SHAPE_AREA_FACTOR = {"sphere": 0.905, "cube": 1.235, "cylinder": 1.11, "cone": 0.855}
LARGE_WIDTH = math.sqrt(SIZE_WIDTH["small"] * SIZE_WIDTH["large"])


def estimate_width(shape: str, area: float, col: float, bottom: float, size: int) -> float:
    """Width in meters of an object whose silhouette has this area and meets the ground at (col, bottom).

    The ground point under the object gives its distance to the camera, and a silhouette's side shrinks in inverse
    proportion to distance, so sqrt(area) * depth / focal is the width up to a shape factor.
    """
    depth = camera_depth(ground_point(col, bottom, size))
    return math.sqrt(area) * depth / focal_px(size) / SHAPE_AREA_FACTOR[shape]


def facts_from_segmentation(seg: np.ndarray, min_area: int | None = None) -> list[Fact]:
    """Objects in a square class map: one per connected region of a class, regions under min_area pixels dropped.

    min_area defaults to 3 pixels at 32x32, scaled with the image area, which drops the specks a segmenter may leave.
    """
    seg = np.asarray(seg, np.int64)
    size = seg.shape[0]
    if min_area is None:
        min_area = max(1, round(3 * (size / 32) ** 2))
    regions = _components(seg)
    facts = []
    for region in np.unique(regions[regions > 0]):
        rows, cols = np.nonzero(regions == region)
        if len(rows) < min_area:
            continue
        color, shape = class_name(int(seg[rows[0], cols[0]]))
        centroid = (float(cols.mean() + 0.5), float(rows.mean() + 0.5))
        bottom = float(rows.max() + 1)
        facts.append(
            Fact(
                color=color,
                shape=shape,
                area=len(rows),
                centroid=centroid,
                bbox=(int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1),
                bottom=bottom,
                width=estimate_width(shape, len(rows), centroid[0], bottom, size),
            )
        )
    return sorted(facts, key=lambda f: (f.centroid[0], f.centroid[1]))


def facts_from_render(render: Render) -> list[Fact]:
    """Facts of a render's ground truth, through the same path a segmenter's output takes."""
    return facts_from_segmentation(segmentation_labels(render))


# ---------------------------------------------------------------------------------------------------------------------
# Rules


def matching(facts, color: str, shape: str, size: str | None = None) -> list[Fact]:
    return [
        f for f in facts if f.color == color and f.shape == shape and (size is None or is_large(f) == (size == "large"))
    ]


def count(facts, color: str, shape: str, size: str | None = None) -> int:
    return len(matching(facts, color, shape, size))


def exists(facts, color: str, shape: str, size: str | None = None) -> bool:
    return count(facts, color, shape, size) > 0


def is_large(fact: Fact) -> bool:
    return fact.width >= LARGE_WIDTH


def _pairs(facts, a, b):
    """Every (fa, fb) with fa matching description a and fb matching b; a description is (colour, shape[, size])."""
    return [(fa, fb) for fa in matching(facts, *a) for fb in matching(facts, *b) if fa is not fb]


def left_of(facts, a, b) -> bool:
    """Some object described by a has its centroid left of some object described by b."""
    return any(fa.centroid[0] < fb.centroid[0] for fa, fb in _pairs(facts, a, b))


def right_of(facts, a, b) -> bool:
    return any(fa.centroid[0] > fb.centroid[0] for fa, fb in _pairs(facts, a, b))


def in_front_of(facts, a, b) -> bool:
    """Some a meets the ground nearer the camera (lower in the image) than some b."""
    return any(fa.bottom > fb.bottom for fa, fb in _pairs(facts, a, b))


def behind(facts, a, b) -> bool:
    return any(fa.bottom < fb.bottom for fa, fb in _pairs(facts, a, b))


RELATION_RULES = {"left of": left_of, "right of": right_of, "in front of": in_front_of, "behind": behind}

# ---------------------------------------------------------------------------------------------------------------------
# Captions


@dataclass(frozen=True)
class Phrase:
    count: int
    color: str
    shape: str
    size: str | None = None


@dataclass(frozen=True)
class Clause:
    subject: Phrase
    relation: str | None = None
    object: Phrase | None = None


_SHAPE_WORDS = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURALS.items()}}
_PHRASE = re.compile(
    rf"^(?P<count>{'|'.join(WORD_COUNT)}) (?:(?P<size>small|large) )?(?P<color>{'|'.join(COLORS)}) "
    rf"(?P<shape>{'|'.join(_SHAPE_WORDS)})$"
)
_RELATION = re.compile(r" (left of|right of|in front of|behind) ")


def _phrase(text: str) -> Phrase:
    match = _PHRASE.match(text)
    if match is None:
        raise ValueError(f"not a noun phrase of the mini-world grammar: {text!r}")
    count = WORD_COUNT[match["count"]]
    shape_word = match["shape"]
    if (count == 1) != (shape_word in SHAPES):
        raise ValueError(f"count and number disagree in {text!r}")
    return Phrase(count, match["color"], _SHAPE_WORDS[shape_word], match["size"])


def parse_caption(text: str) -> list[Clause]:
    """Clauses of a caption: clause ('and' clause)*, clause := phrase [relation phrase]; ValueError if off-grammar."""
    clauses = []
    for part in text.strip().lower().split(" and "):
        pieces = _RELATION.split(part)
        if len(pieces) == 1:
            clauses.append(Clause(_phrase(pieces[0])))
        elif len(pieces) == 3:
            subject, relation, obj = _phrase(pieces[0]), pieces[1], _phrase(pieces[2])
            if subject.count != 1 or obj.count != 1:
                raise ValueError(f"relations hold between single objects: {part!r}")
            clauses.append(Clause(subject, relation, obj))
        else:
            raise ValueError(f"one relation per clause: {part!r}")
    return clauses


def _phrase_fault(phrase: Phrase, facts) -> str | None:
    """Why the phrase does not hold: not exactly `count` objects of its colour and shape, or not all of its size."""
    found = matching(facts, phrase.color, phrase.shape)
    if len(found) != phrase.count:
        return "too many" if len(found) > phrase.count else "missing"
    if phrase.size is not None and not all(is_large(f) == (phrase.size == "large") for f in found):
        return "size"
    return None


FAULTS = ("missing", "too many", "size", "relation", "unnamed")  # what first_fault may answer


def first_fault(caption: str, facts, exhaustive: bool = True) -> str | None:
    """Why the objects `facts` describe make the caption false (one of FAULTS, the first the rules meet), or None.

    Counts are exact ('two red cubes' is false with three). With `exhaustive` (the default, as the world's captions
    name every object), an object of a colour and shape the caption never names also makes it false ('unnamed').
    """
    named = set()
    for clause in parse_caption(caption):
        phrases = [clause.subject] + ([clause.object] if clause.object else [])
        for p in phrases:
            fault = _phrase_fault(p, facts)
            if fault:
                return fault
        named.update((p.color, p.shape) for p in phrases)
        if clause.relation is not None:
            a = (clause.subject.color, clause.subject.shape)
            b = (clause.object.color, clause.object.shape)
            if not RELATION_RULES[clause.relation](facts, a, b):
                return "relation"
    if exhaustive and any((f.color, f.shape) not in named for f in facts):
        return "unnamed"
    return None


def satisfies(caption: str, facts, exhaustive: bool = True) -> bool:
    """Whether the objects `facts` describe make the caption true (:func:`first_fault` finds nothing)."""
    return first_fault(caption, facts, exhaustive) is None


__all__ = [
    "BACKGROUND",
    "N_CLASSES",
    "Clause",
    "Fact",
    "Phrase",
    "FAULTS",
    "behind",
    "class_index",
    "class_name",
    "count",
    "estimate_width",
    "exists",
    "facts_from_render",
    "facts_from_segmentation",
    "first_fault",
    "in_front_of",
    "is_large",
    "labels_from_index_map",
    "left_of",
    "matching",
    "parse_caption",
    "right_of",
    "satisfies",
    "segmentation_labels",
]
