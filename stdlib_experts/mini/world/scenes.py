"""Scenes: seeded objects placed where the camera sees them, kept only if their silhouettes stay apart."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from poelang.stdlib.scene.look import quat_to_matrix
from poelang.stdlib.mini.world.vocabulary import COLORS, HEIGHT_RATIO, MAX_OBJECTS, SHAPES, SIZES, SIZE_WIDTH
from poelang.stdlib.mini.world.camera import MIN_SIZE, camera_depth, focal_px, project

# Scenes


@dataclass(frozen=True)
class Obj:
    """One object standing on the ground at (x, y), turned by `yaw` radians about the vertical."""

    shape: str
    color: str
    size: str
    x: float
    y: float
    yaw: float = 0.0

    @property
    def width(self) -> float:
        return SIZE_WIDTH[self.size]

    @property
    def height(self) -> float:
        return SIZE_WIDTH[self.size] * HEIGHT_RATIO[self.shape]

    @property
    def footprint_radius(self) -> float:
        """Radius of the circle the object covers on the ground (a cube covers it at any yaw)."""
        return self.width / 2 * (math.sqrt(2) if self.shape == "cube" else 1.0)


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]


def object_pose(obj: Obj, z: float | None = None, quat: np.ndarray | None = None) -> np.ndarray:
    """4x4 pose of an object's mesh (origin at the centre of its bounding box), by default resting on the ground."""
    pose = np.eye(4)
    if quat is None:
        c, s = math.cos(obj.yaw), math.sin(obj.yaw)
        pose[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    else:
        pose[:3, :3] = quat_to_matrix(quat)
    pose[:3, 3] = (obj.x, obj.y, obj.height / 2 if z is None else z)
    return pose


@functools.lru_cache(maxsize=None)
def _local_outline(shape: str, size: str) -> np.ndarray:
    """Points on the surface of an unturned object standing at the origin whose projections bound its silhouette."""
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], 1)
    r, h = SIZE_WIDTH[size] / 2, SIZE_WIDTH[size] * HEIGHT_RATIO[shape]
    if shape == "cube":
        square = np.array([[sx, sy] for sx in (-r, r) for sy in (-r, r)])
        rings = [(square, 0.0), (square, h)]
    elif shape == "sphere":
        latitudes = np.linspace(-np.pi / 2, np.pi / 2, 9)
        rings = [(circle * r * math.cos(lat), r + r * math.sin(lat)) for lat in latitudes]
    else:
        rings = [(circle * r, 0.0), (circle * r if shape == "cylinder" else np.zeros((1, 2)), h)]
    return np.concatenate([np.column_stack([xy, np.full(len(xy), z)]) for xy, z in rings])


def _outline_points(obj: Obj, z_base: float = 0.0) -> np.ndarray:
    """The object's outline points (see _local_outline) where it stands, its bottom z_base above the ground."""
    points = _local_outline(obj.shape, obj.size)
    if obj.shape == "cube":
        c, s = math.cos(obj.yaw), math.sin(obj.yaw)
        points = points @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return points + (obj.x, obj.y, z_base)


def projected_box(obj: Obj, z_base: float = 0.0) -> np.ndarray:
    """(col0, row0, col1, row1) of the object's silhouette as fractions of the image side."""
    uv = project(_outline_points(obj, z_base))
    return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


# Placement: objects are drawn in a region of the ground that the camera sees, then kept only if their silhouettes stay
# inside the image and apart enough that each object stays recognisable and separately countable.
PLACE_Y = (-1.4, 2.6)  # ground depths objects stand at; their sideways range follows from the view
IMAGE_MARGIN = 0.04  # silhouettes keep this fraction of the image side from its border
GROUND_GAP = 0.15  # meters between footprints
MAX_BOX_OVERLAP = 0.2  # at most this fraction of the smaller silhouette box may be covered by another's
SAME_CLASS_GAP = 1.5 / MIN_SIZE  # objects of one colour and shape keep a gap in the image, so they never merge
REPEAT_PROBABILITY = 0.35  # chance that an object repeats the colour and shape of an earlier one (for counts)
PLACEMENT_RESTARTS = 30


def _box_overlap(a: np.ndarray, b: np.ndarray, pad: float = 0.0) -> float:
    """Area of the intersection of boxes a and b (each padded by `pad`) over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 2 * pad
    h = min(a[3], b[3]) - max(a[1], b[1]) + 2 * pad
    if w <= 0 or h <= 0:
        return 0.0
    area = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / area


def _fits(obj: Obj, placed: list[Obj]) -> bool:
    """Whether obj is inside the view and clear of every object already placed, on the ground and in the image."""
    for other in placed:
        if math.hypot(obj.x - other.x, obj.y - other.y) < obj.footprint_radius + other.footprint_radius + GROUND_GAP:
            return False
    box = projected_box(obj)
    if box[0] < IMAGE_MARGIN or box[1] < IMAGE_MARGIN or box[2] > 1 - IMAGE_MARGIN or box[3] > 1 - IMAGE_MARGIN:
        return False
    for other in placed:
        other_box = projected_box(other)
        if _box_overlap(box, other_box) > MAX_BOX_OVERLAP:
            return False
        same_class = (obj.color, obj.shape) == (other.color, other.shape)
        if same_class and _box_overlap(box, other_box, pad=SAME_CLASS_GAP / 2) > 0:
            return False
    return True


def _draw_attributes(rng: np.random.Generator, earlier: list[tuple[str, str, str]]) -> tuple[str, str, str]:
    """(shape, colour, size) at random, sometimes repeating an earlier object's colour and shape to make counts."""
    if earlier and rng.random() < REPEAT_PROBABILITY:
        shape, color, _ = earlier[rng.integers(len(earlier))]
    else:
        shape, color = SHAPES[rng.integers(len(SHAPES))], COLORS[rng.integers(len(COLORS))]
    return shape, color, SIZES[rng.integers(len(SIZES))]


def _place(rng: np.random.Generator, attributes, placed: list[Obj], attempts: int = 60) -> Obj | None:
    """The object at a random free spot in view, or None if `attempts` spots were all taken or out of view."""
    for _ in range(attempts):
        y = rng.uniform(*PLACE_Y)
        # x only where the image's side margins can hold the object at this distance
        half_width = (0.5 - IMAGE_MARGIN) * camera_depth((0.0, y, 0.0)) / focal_px(1) - SIZE_WIDTH[attributes[2]] / 2
        x, yaw = rng.uniform(-half_width, half_width), rng.uniform(0, math.pi / 2)
        candidate = Obj(*attributes, float(x), float(y), float(yaw))
        if _fits(candidate, placed):
            return candidate
    return None


def sample_scene(rng: np.random.Generator, n_objects: int | None = None) -> Scene:
    """A scene of 1-3 objects (n_objects if given) on the ground, all in view, none overlapping another.

    Attributes are drawn first and kept through up to PLACEMENT_RESTARTS searches for free spots, so that large
    objects, harder to fit, are not much rarer than small ones.
    """
    n = int(rng.integers(1, MAX_OBJECTS + 1)) if n_objects is None else n_objects
    if not 1 <= n <= MAX_OBJECTS:
        raise ValueError(f"n_objects must be in 1..{MAX_OBJECTS}, got {n}")
    while True:
        attributes: list[tuple[str, str, str]] = []
        for _ in range(n):
            attributes.append(_draw_attributes(rng, attributes))
        for _restart in range(PLACEMENT_RESTARTS):
            placed: list[Obj] = []
            for drawn in attributes:
                obj = _place(rng, drawn, placed)
                if obj is None:
                    break
                placed.append(obj)
            if len(placed) == n:
                return Scene(tuple(placed))


# ---------------------------------------------------------------------------------------------------------------------
