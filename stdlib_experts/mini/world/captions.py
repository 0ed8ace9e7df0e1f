"""Captions: what a scene shows, stated only when the image shows it plainly."""
from __future__ import annotations

import hashlib

import numpy as np

from poelang.stdlib.mini.world.vocabulary import COUNT_WORD, PLURALS
from poelang.stdlib.mini.world.camera import project
from poelang.stdlib.mini.world.scenes import Obj, Scene, projected_box

# Captions

# A relation is only stated when the image shows it plainly: centres this far apart sideways (left/right), or ground
# contacts this far apart in depth (front/behind), as fractions of the image side, so that the rules agree with it.
SIDEWAYS_MARGIN = 0.12
DEPTH_MARGIN = 0.08


def noun_phrase(count: int, color: str, shape: str, size: str | None = None) -> str:
    """'a red cube', 'two large blue spheres'."""
    words = [COUNT_WORD[count], *([size] if size else []), color, shape if count == 1 else PLURALS[shape]]
    return " ".join(words)


def _image_center(obj: Obj) -> np.ndarray:
    return project([[obj.x, obj.y, obj.height / 2]])[0]


def _contact_row(obj: Obj) -> float:
    """Lowest image row of the silhouette: where the object meets the ground nearest the camera."""
    return float(projected_box(obj)[3])


def clear_relations(a: Obj, b: Obj) -> list[str]:
    """The relations 'a REL b' that the image shows without doubt."""
    relations = []
    du = _image_center(a)[0] - _image_center(b)[0]
    if du <= -SIDEWAYS_MARGIN:
        relations.append("left of")
    if du >= SIDEWAYS_MARGIN:
        relations.append("right of")
    dv = _contact_row(a) - _contact_row(b)
    dy = a.y - b.y
    if dv >= DEPTH_MARGIN and dy < 0:
        relations.append("in front of")
    if dv <= -DEPTH_MARGIN and dy > 0:
        relations.append("behind")
    return relations


def _groups(scene: Scene) -> dict[tuple[str, str], list[Obj]]:
    groups: dict[tuple[str, str], list[Obj]] = {}
    for obj in scene.objects:
        groups.setdefault((obj.color, obj.shape), []).append(obj)
    return groups


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A caption naming every object of the scene: noun phrases joined by 'and', one pair maybe as a relation.

    Grammar: caption := clause ("and" clause)*; clause := np | np REL np (both np of count one);
    np := ("a"|"two"|"three") [size] color shape[s]. The size word is said, at random, when a group shares one size.
    """
    phrases = []
    for (color, shape), members in _groups(scene).items():
        sizes = {m.size for m in members}
        size = next(iter(sizes)) if len(sizes) == 1 and rng.random() < 0.5 else None
        phrases.append((noun_phrase(len(members), color, shape, size), members))
    order = rng.permutation(len(phrases))
    phrases = [phrases[i] for i in order]
    singles = [i for i, (_, members) in enumerate(phrases) if len(members) == 1]
    if len(singles) >= 2 and rng.random() < 0.7:
        i, j = (singles[k] for k in rng.choice(len(singles), 2, replace=False))
        relations = clear_relations(phrases[i][1][0], phrases[j][1][0])
        if relations:
            relation = relations[rng.integers(len(relations))]
            clause = f"{phrases[i][0]} {relation} {phrases[j][0]}"
            rest = [p for k, (p, _) in enumerate(phrases) if k not in (i, j)]
            return " and ".join([clause, *rest])
    return " and ".join(p for p, _ in phrases)


def split_of(text: str) -> str:
    """'test' for the captions held out of training, else 'train'.

    A caption is held out when the first byte of the SHA-256 of its text is 0 modulo 10 (about one caption in ten, the
    same on every machine and Python version), so the benchmark can ask for captions no expert was trained on. The
    dataset writer keeps only training captions unless told otherwise.
    """
    return "test" if hashlib.sha256(text.encode()).digest()[0] % 10 == 0 else "train"


# ---------------------------------------------------------------------------------------------------------------------
