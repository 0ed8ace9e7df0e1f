"""The mini world: seeded scenes of coloured primitives on a grey ground, their captions, renders and drop clips.

Small experts are trained on this world because everything about it is known: every caption word comes from a closed
vocabulary, every pixel has a ground-truth object index and depth, so generated samples can be judged by rules
(`stdlib_experts.mini.rules`) instead of by another learned model.

Rendering goes through the pyrender fork vendored by genesis-world (`genesis.ext.pyrender`): one GL scene holds a
pool of meshes per (shape, size), built once; a render only moves pool meshes into view and recolours them, which is
what makes hundreds of renders per second possible on two CPU cores. Clips simulate the fall of objects with the rigid
solver of genesis-world (one `gs.Scene`, built once, reset between clips) and render its poses with the same renderer.

Run `python -m stdlib_experts.mini.world --out DIR --images N --clips M --size 32 --seed S` to write a dataset:
DIR/images.npz holds rgb uint8 [N,H,W,3], depth float16 [N,H,W] (meters, sky = FAR_DEPTH), masks uint8 [N,H,W]
(0 background, k+1 object k), captions, split, meta (JSON) and per-scene attributes (n_objects, shape/color/size
indices padded with -1, xy, yaw, objects_json); DIR/clips.npz the same per frame, plus dropped, positions and quats.
Only captions of the training split are written unless --split says otherwise (see `split_of`).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from stdlib_experts import scene as _look  # numpy only; genesis loads lazily
from stdlib_experts.scene import init_genesis, quat_to_matrix  # noqa: F401 - public here too

# ---------------------------------------------------------------------------------------------------------------------
# Vocabulary

COLORS = ("red", "green", "blue", "yellow", "purple", "white")
# sRGB base colours, far apart in hue and brightness so that a 32-pixel render still tells them apart under shading
# (the palette of `stdlib_experts.scene`, which simulate() and render() share)
COLOR_RGB = {color: _look.COLOR_RGB[color] for color in COLORS}
SHAPES = ("sphere", "cube", "cylinder", "cone")
PLURALS = {"sphere": "spheres", "cube": "cubes", "cylinder": "cylinders", "cone": "cones"}
SIZES = ("small", "large")
# Width of an object's footprint (sphere diameter, cube edge, cylinder and cone base diameter), in meters
SIZE_WIDTH = {"small": 0.8, "large": 1.25}
# Height over width: cones are taller than wide so that their tip reads as a tip at 32 pixels
HEIGHT_RATIO = {"sphere": 1.0, "cube": 1.0, "cylinder": 1.0, "cone": 1.25}
RELATIONS = ("left of", "right of", "in front of", "behind")
COUNTS = ("one", "two", "three")
COUNT_WORD = {1: "a", 2: "two", 3: "three"}
WORD_COUNT = {"a": 1, "one": 1, "two": 2, "three": 3}
MAX_OBJECTS = 3
VOCABULARY = tuple(
    sorted(
        {"a", "and", *COUNTS, *SIZES, *COLORS, *SHAPES, *PLURALS.values()}
        | {word for relation in RELATIONS for word in relation.split()}
    )
)

GROUND_RGB = _look.GROUND_RGB
SKY_RGB = _look.SKY_RGB
# The ground slab spans y in GROUND_Y; its far edge is the horizon seen across the top of the image
GROUND_Y = (-8.0, 4.6)
GROUND_HALF_X = 8.0

# ---------------------------------------------------------------------------------------------------------------------
# Camera: fixed, looking down at TARGET at ELEVATION_DEG; x is image right, y is away from the camera, z is up

ELEVATION_DEG = 35.0
CAMERA_DISTANCE = 8.0
FOV_DEG = 28.0
TARGET = (0.0, 0.6, 0.0)
Z_NEAR = 0.5
FAR_DEPTH = 30.0  # depth of background (sky) pixels, in meters; it is also the far clip plane

DEFAULT_SIZE = 32
MIN_SIZE, MAX_SIZE = 32, 64


def _look_at_pose() -> np.ndarray:
    elevation = math.radians(ELEVATION_DEG)
    target = np.array(TARGET)
    eye = target + CAMERA_DISTANCE * np.array([0.0, -math.cos(elevation), math.sin(elevation)])
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, eye
    return pose


_CAMERA_POSE = _look_at_pose()
_WORLD_TO_CAMERA = np.linalg.inv(_CAMERA_POSE)


def camera_pose() -> np.ndarray:
    """Camera-to-world 4x4 matrix in the OpenGL convention (the camera looks along its -z axis, y up)."""
    return _CAMERA_POSE.copy()


def focal_px(size: int) -> float:
    """Focal length in pixels of a square image `size` pixels wide."""
    return (size / 2) / math.tan(math.radians(FOV_DEG) / 2)


def project(points: np.ndarray, size: int = 1) -> np.ndarray:
    """World points (N, 3) to (N, 2) image coordinates (column, row); pixel (r, c) spans [c, c+1) x [r, r+1).

    With size=1 the coordinates are fractions of the image side, which is how placement is judged for every size.
    """
    cam = np.asarray(points, float) @ _WORLD_TO_CAMERA[:3, :3].T + _WORLD_TO_CAMERA[:3, 3]
    depth = -cam[:, 2]
    f = focal_px(size)
    return np.stack([size / 2 + f * cam[:, 0] / depth, size / 2 - f * cam[:, 1] / depth], axis=1)


def ground_point(col: float, row: float, size: int) -> np.ndarray:
    """The point of the ground plane z=0 seen at image coordinates (col, row); rules use it to measure sizes."""
    pose = _CAMERA_POSE
    f = focal_px(size)
    direction = pose[:3, :3] @ np.array([(col - size / 2) / f, -(row - size / 2) / f, -1.0])
    eye = pose[:3, 3]
    t = -eye[2] / min(direction[2], -1e-6)
    return eye + t * direction


def camera_depth(point: np.ndarray) -> float:
    """Depth of a world point along the camera axis, the quantity depth images hold."""
    pose = _CAMERA_POSE
    return float(-(np.asarray(point) - pose[:3, 3]) @ pose[:3, 2])


# ---------------------------------------------------------------------------------------------------------------------
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
# Rendering


@dataclass
class Render:
    """One rendered view: RGB, depth in meters along the camera axis (sky = FAR_DEPTH) and one mask per object."""

    rgb: np.ndarray  # uint8 (H, W, 3)
    depth: np.ndarray  # float32 (H, W)
    masks: np.ndarray  # bool (K, H, W), in the order of `objects`
    objects: tuple[Obj, ...] = field(default_factory=tuple)

    @property
    def index_map(self) -> np.ndarray:
        """uint8 (H, W): 0 for background, k+1 where object k is seen."""
        index = np.zeros(self.depth.shape, np.uint8)
        for k, mask in enumerate(self.masks):
            index[mask] = k + 1
        return index


def _shape_mesh(shape: str, size: str):
    """The trimesh of a shape, centred on its bounding box, as both the renderer and the simulator use it."""
    import trimesh

    w, h = SIZE_WIDTH[size], SIZE_WIDTH[size] * HEIGHT_RATIO[shape]
    if shape == "sphere":
        return trimesh.creation.icosphere(subdivisions=3, radius=w / 2)
    if shape == "cube":
        return trimesh.creation.box(extents=(w, w, w))
    if shape == "cylinder":
        return trimesh.creation.cylinder(radius=w / 2, height=h, sections=32)
    cone = trimesh.creation.cone(radius=w / 2, height=h, sections=32)
    cone.apply_translation((0.0, 0.0, -h / 2))
    return cone


# Where unused pool meshes wait: behind the camera, so that they are clipped away
_PARKED = np.eye(4)
_PARKED[:3, 3] = (0.0, -60.0, 0.0)
# Segmentation colours: object k is drawn with red = SEG_STEP * (k + 1), the ground in green, so that the depth of
# the segmentation pass covers the ground too and agrees pixel for pixel with the masks
SEG_STEP = 40


class Renderer:
    """Renders scenes of the mini world with genesis's vendored pyrender: one GL scene and pool, built once.

    The GL scene is a :class:`stdlib_experts.scene.GLScene` (the renderer of simulate() and render() too); this class
    fills it with a pool of meshes per (shape, size), parked out of view, and a render only moves pool meshes into
    view and recolours them. Each render takes two passes: RGB (4x multisampled), then segmentation with depth,
    unsampled, so that masks and depth agree pixel for pixel.
    """

    def __init__(self, size: int = DEFAULT_SIZE):
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"size must be in {MIN_SIZE}..{MAX_SIZE}, got {size}")
        import trimesh

        self.size = size
        self.gl = _look.GLScene(size, size, camera_pose(), math.radians(FOV_DEG), Z_NEAR, FAR_DEPTH, SKY_RGB,
                                sun=self._light_pose())
        ground = trimesh.creation.box(extents=(2 * GROUND_HALF_X, GROUND_Y[1] - GROUND_Y[0], 0.02))
        ground.apply_translation((0.0, sum(GROUND_Y) / 2, -0.01))
        self.ground = self.gl.add(ground, GROUND_RGB)
        self.pool: dict[tuple[str, str], list] = {}
        for shape in SHAPES:
            for size_name in SIZES:
                mesh = _shape_mesh(shape, size_name)
                smooth = shape != "cube"
                if smooth:
                    mesh = mesh.smooth_shaded
                self.pool[(shape, size_name)] = [
                    self.gl.add(mesh, COLOR_RGB["white"], smooth=smooth, pose=_PARKED) for _ in range(MAX_OBJECTS)
                ]
        self.gl.finish()
        self._in_view: list = []

    @staticmethod
    def _light_pose() -> np.ndarray:
        """A sun high above, from the left and behind the camera, so that tops, fronts and sides shade apart."""
        return _look.sun_pose([0.45, 0.55, -1.0])  # where the light travels

    def render_posed(self, objects, poses) -> Render:
        """Render objects at explicit 4x4 poses (as a simulator gives them)."""
        if len(objects) > MAX_OBJECTS:
            raise ValueError(f"at most {MAX_OBJECTS} objects per render, got {len(objects)}")
        used: dict[tuple[str, str], int] = {}
        nodes = []
        for obj, pose in zip(objects, poses):
            key = (obj.shape, obj.size)
            node = self.pool[key][used.get(key, 0)]
            used[key] = used.get(key, 0) + 1
            self.gl.set_pose(node, pose)
            self.gl.set_color(node, COLOR_RGB[obj.color])
            nodes.append(node)
        for node in self._in_view:
            if node not in nodes:
                self.gl.set_pose(node, _PARKED)
        self._in_view = nodes
        seg_map = {node: np.array([SEG_STEP * (k + 1), 0, 0]) for k, node in enumerate(nodes)}
        seg_map[self.ground] = np.array([0, 255, 0])
        rgb, seg, depth = self.gl.render(seg_map)
        index = np.rint(seg[..., 0] / SEG_STEP).astype(np.int64)
        masks = np.stack([index == k + 1 for k in range(len(nodes))]) if nodes else np.zeros((0, *index.shape), bool)
        return Render(rgb.copy(), depth.astype(np.float32), masks, tuple(objects))

    def render(self, scene: Scene) -> Render:
        """Render a scene with every object resting on the ground."""
        return self.render_posed(scene.objects, [object_pose(o) for o in scene.objects])


_RENDERERS: dict[int, Renderer] = {}


def get_renderer(size: int = DEFAULT_SIZE) -> Renderer:
    """The process's renderer for this image size, built on first use (seconds, plus genesis's start)."""
    if size not in _RENDERERS:
        _RENDERERS[size] = Renderer(size)
    return _RENDERERS[size]


def render_scene(scene: Scene, size: int = DEFAULT_SIZE) -> Render:
    return get_renderer(size).render(scene)


def caption_facts(scene: Scene, render: Render | None = None, size: int = DEFAULT_SIZE) -> list[dict]:
    """Per object: its attributes and what its ground-truth mask shows (pixel area, centroid, bbox, lowest row)."""
    render = render if render is not None else render_scene(scene, size)
    facts = []
    for obj, mask in zip(scene.objects, render.masks):
        rows, cols = np.nonzero(mask)
        seen = len(rows) > 0
        facts.append(
            {
                "shape": obj.shape,
                "color": obj.color,
                "size": obj.size,
                "area": int(len(rows)),
                "centroid": (float(cols.mean() + 0.5), float(rows.mean() + 0.5)) if seen else None,
                "bbox": (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1) if seen else None,
                "bottom": int(rows.max()) + 1 if seen else None,
            }
        )
    return facts


# ---------------------------------------------------------------------------------------------------------------------
# Clips: objects dropped onto the ground, simulated by genesis's rigid solver

SIM_DT = 1 / 200
DROP_HEIGHT = (0.6, 1.6)  # meters between the ground and the bottom of a dropped object at the start
MIN_DROP_HEIGHT = 0.4
DROP_PROBABILITY = 0.5  # chance that each object of a scene falls (at least one always does)


@dataclass
class Clip:
    """A simulated clip: per frame RGB, depth and masks as in `Render`, with the object poses that made them."""

    rgb: np.ndarray  # uint8 (F, H, W, 3)
    depth: np.ndarray  # float32 (F, H, W)
    masks: np.ndarray  # bool (F, K, H, W)
    objects: tuple[Obj, ...]
    dropped: np.ndarray  # bool (K,): which objects started in the air
    positions: np.ndarray  # float32 (F, K, 3): centre of each object's bounding box
    quats: np.ndarray  # float32 (F, K, 4), (w, x, y, z)
    fps: int

    @property
    def index_maps(self) -> np.ndarray:
        """uint8 (F, H, W): 0 for background, k+1 where object k is seen."""
        index = np.zeros(self.depth.shape, np.uint8)
        for k in range(self.masks.shape[1]):
            index[self.masks[:, k]] = k + 1
        return index


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def _cone_file(size: str) -> str:
    """An OBJ file of the cone (genesis has no cone primitive), written once per machine."""
    directory = os.path.join(tempfile.gettempdir(), "poelang_mini_meshes")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"cone_{size}.obj")
    if not os.path.exists(path):
        partial = f"{path}.{os.getpid()}.tmp"
        _shape_mesh("cone", size).export(partial, file_type="obj")
        os.replace(partial, path)
    return path


class Simulator:
    """One genesis rigid-body scene, built once (slow: it compiles kernels), holding a parked pool of every shape.

    A clip moves pool bodies to the scene's objects, lifts the dropped ones and steps the solver, so that no clip
    pays for a build.
    """

    def __init__(self):
        init_genesis()
        import genesis as gs

        self.gs = gs
        self.scene = gs.Scene(
            sim_options=gs.options.SimOptions(dt=SIM_DT),
            rigid_options=gs.options.RigidOptions(enable_self_collision=False),
            show_viewer=False,
        )
        self.scene.add_entity(gs.morphs.Plane())
        self.pool: dict[tuple[str, str], list] = {}
        slot = 0
        for shape in SHAPES:
            for size in SIZES:
                entities = []
                for _ in range(MAX_OBJECTS):
                    park = (40.0 + 3.0 * slot, 40.0, SIZE_WIDTH[size] * HEIGHT_RATIO[shape] / 2)
                    entities.append(self.scene.add_entity(self._morph(shape, size, park)))
                    slot += 1
                self.pool[(shape, size)] = entities
        started = time.time()
        self.scene.build()
        self.build_seconds = time.time() - started

    def _morph(self, shape: str, size: str, pos):
        morphs = self.gs.morphs
        w, h = SIZE_WIDTH[size], SIZE_WIDTH[size] * HEIGHT_RATIO[shape]
        if shape == "sphere":
            return morphs.Sphere(radius=w / 2, pos=pos)
        if shape == "cube":
            return morphs.Box(size=(w, w, w), pos=pos)
        if shape == "cylinder":
            return morphs.Cylinder(radius=w / 2, height=h, pos=pos)
        return morphs.Mesh(file=_cone_file(size), pos=pos)

    def run(self, objects, start_z, frames: int, fps: int):
        """Poses (F, K, 3) and (F, K, 4) of the objects released at heights start_z (box centres), frame by frame."""
        self.scene.reset()
        used: dict[tuple[str, str], int] = {}
        entities = []
        for obj, z in zip(objects, start_z):
            key = (obj.shape, obj.size)
            entity = self.pool[key][used.get(key, 0)]
            used[key] = used.get(key, 0) + 1
            entity.set_pos(np.array([obj.x, obj.y, z]))
            entity.set_quat(_yaw_quat(obj.yaw))
            entity.zero_all_dofs_velocity()
            entities.append(entity)
        steps = max(1, round(1 / (fps * SIM_DT)))
        positions = np.zeros((frames, len(objects), 3), np.float32)
        quats = np.zeros((frames, len(objects), 4), np.float32)
        for frame in range(frames):
            if frame:
                for _ in range(steps):
                    self.scene.step()
            for k, entity in enumerate(entities):
                positions[frame, k] = entity.get_pos().cpu().numpy()
                quats[frame, k] = entity.get_quat().cpu().numpy()
        return positions, quats


_SIMULATOR: Simulator | None = None


def get_simulator() -> Simulator:
    """The process's simulator, built on first use: seconds with genesis's kernel cache warm, about 4 min cold."""
    global _SIMULATOR
    if _SIMULATOR is None:
        _SIMULATOR = Simulator()
    return _SIMULATOR


def max_drop_height(obj: Obj) -> float:
    """The greatest drop height (from DROP_HEIGHT) at which the object is still wholly in view, or 0 if none is."""
    for height in np.arange(DROP_HEIGHT[1], MIN_DROP_HEIGHT - 1e-9, -0.1):
        box = projected_box(obj, z_base=float(height))
        if box[1] >= IMAGE_MARGIN / 2:
            return float(height)
    return 0.0


def droppable(scene: Scene) -> bool:
    return any(max_drop_height(o) >= MIN_DROP_HEIGHT for o in scene.objects)


def sample_clip_scene(rng: np.random.Generator, n_objects: int | None = None) -> Scene:
    """A scene with at least one object that can start in the air and still be in view."""
    while True:
        scene = sample_scene(rng, n_objects)
        if droppable(scene):
            return scene


def simulate_clip(
    scene: Scene, rng: np.random.Generator, frames: int = 8, fps: int = 8, size: int = DEFAULT_SIZE
) -> Clip:
    """Drop some of the scene's objects (each with DROP_PROBABILITY, at least one) and film them falling and landing.

    Dropped objects start upright above their resting spot, at a height drawn from DROP_HEIGHT and lowered until they
    are in view; the others rest on the ground. ValueError if no object can start in view (see sample_clip_scene).
    """
    limits = np.array([max_drop_height(o) for o in scene.objects])
    can_drop = np.flatnonzero(limits >= MIN_DROP_HEIGHT)
    if len(can_drop) == 0:
        raise ValueError("no object of this scene can start in view above the ground")
    dropped = np.zeros(len(scene.objects), bool)
    dropped[can_drop] = rng.random(len(can_drop)) < DROP_PROBABILITY
    if not dropped.any():
        dropped[can_drop[rng.integers(len(can_drop))]] = True
    heights = np.where(dropped, np.minimum(rng.uniform(*DROP_HEIGHT, len(scene.objects)), limits), 0.0)
    start_z = [h + o.height / 2 for h, o in zip(heights, scene.objects)]
    positions, quats = get_simulator().run(scene.objects, start_z, frames, fps)
    renderer = get_renderer(size)
    renders = []
    for frame in range(frames):
        poses = []
        for k, obj in enumerate(scene.objects):
            pose = np.eye(4)
            pose[:3, :3] = quat_to_matrix(quats[frame, k])
            pose[:3, 3] = positions[frame, k]
            poses.append(pose)
        renders.append(renderer.render_posed(scene.objects, poses))
    return Clip(
        rgb=np.stack([r.rgb for r in renders]),
        depth=np.stack([r.depth for r in renders]),
        masks=np.stack([r.masks for r in renders]),
        objects=scene.objects,
        dropped=dropped,
        positions=positions,
        quats=quats,
        fps=fps,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Dataset writer

SPLITS = ("train", "test", "all")


def _scene_json(scene: Scene) -> str:
    return json.dumps([asdict(o) for o in scene.objects], separators=(",", ":"))


def _attribute_arrays(scenes: list[Scene]) -> dict[str, np.ndarray]:
    """Per-scene attributes as fixed-shape arrays padded to MAX_OBJECTS (index -1 where there is no object)."""
    n = len(scenes)
    arrays = {
        "n_objects": np.array([len(s.objects) for s in scenes], np.int8),
        "shape": np.full((n, MAX_OBJECTS), -1, np.int8),
        "color": np.full((n, MAX_OBJECTS), -1, np.int8),
        "size": np.full((n, MAX_OBJECTS), -1, np.int8),
        "xy": np.zeros((n, MAX_OBJECTS, 2), np.float32),
        "yaw": np.zeros((n, MAX_OBJECTS), np.float32),
    }
    for i, scene in enumerate(scenes):
        for k, o in enumerate(scene.objects):
            arrays["shape"][i, k] = SHAPES.index(o.shape)
            arrays["color"][i, k] = COLORS.index(o.color)
            arrays["size"][i, k] = SIZES.index(o.size)
            arrays["xy"][i, k] = (o.x, o.y)
            arrays["yaw"][i, k] = o.yaw
    arrays["objects_json"] = np.array([_scene_json(s) for s in scenes])
    return arrays


def _captioned(rng: np.random.Generator, split: str, draw) -> tuple[Scene, str]:
    """A scene from draw(rng) and its caption, drawn again until the caption belongs to `split`."""
    while True:
        scene = draw(rng)
        text = caption(scene, rng)
        if split == "all" or split_of(text) == split:
            return scene, text


def _meta(size: int, seed: int, split: str, **extra) -> np.ndarray:
    meta = {
        "size": size,
        "seed": seed,
        "split": split,
        "colors": COLORS,
        "shapes": SHAPES,
        "sizes": SIZES,
        "far_depth": FAR_DEPTH,
        "camera": {"elevation_deg": ELEVATION_DEG, "distance": CAMERA_DISTANCE, "fov_deg": FOV_DEG, "target": TARGET},
        **extra,
    }
    return np.array(json.dumps(meta))


def _save(path: str, scenes: list[Scene], captions: list[str], **arrays) -> None:
    """One dataset file: the arrays, the captions with their split, and the scenes' attributes."""
    np.savez_compressed(path, captions=np.array(captions), split=np.array([split_of(c) for c in captions]),
                        **arrays, **_attribute_arrays(scenes))


def write_images(path: str, n: int, size: int, seed: int, split: str = "train") -> float:
    """Write n captioned renders to `path` (.npz); returns renders per second."""
    rng = np.random.default_rng([seed, 0])
    renderer = get_renderer(size)
    rgb = np.zeros((n, size, size, 3), np.uint8)
    depth = np.zeros((n, size, size), np.float16)
    masks = np.zeros((n, size, size), np.uint8)
    scenes, captions = [], []
    started = time.time()
    for i in range(n):
        scene, text = _captioned(rng, split, sample_scene)
        render = renderer.render(scene)
        rgb[i], depth[i], masks[i] = render.rgb, render.depth, render.index_map
        scenes.append(scene)
        captions.append(text)
    rate = n / max(time.time() - started, 1e-9)
    _save(path, scenes, captions, rgb=rgb, depth=depth, masks=masks, meta=_meta(size, seed, split))
    return rate


def write_clips(path: str, m: int, size: int, seed: int, split: str = "train", frames: int = 8, fps: int = 8) -> float:
    """Write m captioned drop clips to `path` (.npz); returns seconds per clip."""
    rng = np.random.default_rng([seed, 1])
    get_simulator()
    rgb = np.zeros((m, frames, size, size, 3), np.uint8)
    depth = np.zeros((m, frames, size, size), np.float16)
    masks = np.zeros((m, frames, size, size), np.uint8)
    dropped = np.zeros((m, MAX_OBJECTS), bool)
    positions = np.zeros((m, frames, MAX_OBJECTS, 3), np.float32)
    quats = np.zeros((m, frames, MAX_OBJECTS, 4), np.float32)
    scenes, captions = [], []
    started = time.time()
    for i in range(m):
        scene, text = _captioned(rng, split, sample_clip_scene)
        clip = simulate_clip(scene, rng, frames=frames, fps=fps, size=size)
        k = len(scene.objects)
        rgb[i], depth[i], masks[i] = clip.rgb, clip.depth, clip.index_maps
        dropped[i, :k], positions[i, :, :k], quats[i, :, :k] = clip.dropped, clip.positions, clip.quats
        scenes.append(scene)
        captions.append(text)
    seconds = (time.time() - started) / max(m, 1)
    _save(path, scenes, captions, rgb=rgb, depth=depth, masks=masks, dropped=dropped, positions=positions, quats=quats,
          meta=_meta(size, seed, split, frames=frames, fps=fps, sim_dt=SIM_DT))
    return seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write a mini-world dataset: DIR/images.npz and DIR/clips.npz.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--clips", type=int, default=0)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument(
        "--split", choices=SPLITS, default="train", help="keep captions of this split only (see split_of)"
    )
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.images:
        rate = write_images(os.path.join(args.out, "images.npz"), args.images, args.size, args.seed, args.split)
        print(f"{args.images} images at {rate:.0f} renders/s -> {os.path.join(args.out, 'images.npz')}")
    if args.clips:
        seconds = write_clips(
            os.path.join(args.out, "clips.npz"), args.clips, args.size, args.seed, args.split, args.frames, args.fps
        )
        print(f"{args.clips} clips at {seconds:.2f} s/clip -> {os.path.join(args.out, 'clips.npz')}")


if __name__ == "__main__":
    main()
