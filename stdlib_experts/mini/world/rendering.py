"""Rendering: one GL scene with a pool of meshes, RGB, depth and segmentation passes."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from poelang.stdlib.scene import look as _look
from poelang.stdlib.mini.world.vocabulary import COLOR_RGB, GROUND_HALF_X, GROUND_RGB, GROUND_Y, HEIGHT_RATIO, MAX_OBJECTS, SHAPES, SIZES, SIZE_WIDTH, SKY_RGB
from poelang.stdlib.mini.world.camera import DEFAULT_SIZE, FAR_DEPTH, FOV_DEG, MAX_SIZE, MIN_SIZE, Z_NEAR, camera_pose
from poelang.stdlib.mini.world.scenes import Obj, Scene, object_pose

# Rendering


def pooled(pool: dict[tuple[str, str], list], objects) -> list:
    """One pooled copy per object, in order: the k-th object of a (shape, size) takes that pool's k-th copy.
    The renderer and the simulator build a pool of each shape once and pose copies instead of building scenes."""
    used: dict[tuple[str, str], int] = {}
    out = []
    for obj in objects:
        key = (obj.shape, obj.size)
        out.append(pool[key][used.get(key, 0)])
        used[key] = used.get(key, 0) + 1
    return out


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

    The GL scene is a :class:`poelang.stdlib.scene.GLScene` (the renderer of simulate() and render() too); this class
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
        nodes = pooled(self.pool, objects)
        for obj, pose, node in zip(objects, poses, nodes):
            self.gl.set_pose(node, pose)
            self.gl.set_color(node, COLOR_RGB[obj.color])
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
