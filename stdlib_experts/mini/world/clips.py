"""Clips: objects dropped onto the ground, simulated by genesis's rigid solver."""
from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from poelang.stdlib.scene.look import init_genesis, quat_to_matrix
from poelang.stdlib.mini.world.vocabulary import HEIGHT_RATIO, MAX_OBJECTS, SHAPES, SIZES, SIZE_WIDTH
from poelang.stdlib.mini.world.camera import DEFAULT_SIZE
from poelang.stdlib.mini.world.scenes import IMAGE_MARGIN, Obj, Scene, projected_box, sample_scene
from poelang.stdlib.mini.world.rendering import _shape_mesh, get_renderer, pooled

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
        entities = pooled(self.pool, objects)
        for obj, z, entity in zip(objects, start_z, entities):
            entity.set_pos(np.array([obj.x, obj.y, z]))
            entity.set_quat(_yaw_quat(obj.yaw))
            entity.zero_all_dofs_velocity()
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
