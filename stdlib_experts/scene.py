"""Rigid-body simulation and posed-asset rendering with genesis-world: what `simulate(…)` and `render(…)` compute.

A scene is a list of :class:`Body` (a sphere, a cube or a mesh file, with a pose, a velocity and a colour) on a
ground plane at z = 0 under a sky, filmed by a pinhole :class:`Camera`. :func:`simulate` drops the bodies into
genesis-world's rigid solver, one ``gs.Scene`` per scene description, and renders each frame's poses;
:func:`render` renders the bodies where they stand, with no physics. Both return :class:`Frames`: RGB, depth and
one mask per body, per frame.

Rendering goes through the pyrender fork vendored by genesis (:class:`GLScene`, which the mini world's renderer
uses too): an RGB pass (multisampled), then a segmentation pass with depth (not sampled), so that masks and depth
agree pixel for pixel. The look is the mini world's: the same palette, grey ground, sky and sun, so that a
simulated "red" ball is the red the mini experts were trained on.

Results are cached on disk by the SHA-256 of the scene description (bodies, mesh file contents, camera, frames,
fps, size, this module's version and genesis's): ``$POELANG_CACHE/simulations/<sha>.npz`` (default
``~/.cache/poelang``), written atomically, so a second run of a program neither builds a genesis scene nor even
imports genesis. Mistakes a user can make (a missing mesh file, a negative radius, an unknown colour) raise
ValueError or FileNotFoundError with a message that says what is wrong; the interpreter shows them as diagnostics.

Conventions: meters, z up; rotations are extrinsic x-y-z Euler angles in degrees (genesis's and scipy's); the
camera's ``fov`` is vertical, in degrees. Quaternions are (w, x, y, z).

Run ``python -m stdlib_experts.scene --warm`` once per machine (CI does) to compile genesis's kernels into its cache
(``~/.cache/quadrants``, ``~/.cache/genesis``): minutes cold, seconds afterwards.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# Bump when anything that changes the pixels or the physics changes: old cache entries stop matching.
SCENE_VERSION = 1

# ---------------------------------------------------------------------------------------------------------------------
# The look, shared with the mini world

COLOR_RGB = {  # sRGB in [0, 1]; the mini world's six colours first (its captions' vocabulary)
    "red": (0.86, 0.07, 0.07),
    "green": (0.08, 0.66, 0.12),
    "blue": (0.10, 0.25, 0.95),
    "yellow": (0.97, 0.85, 0.05),
    "purple": (0.58, 0.12, 0.78),
    "white": (0.96, 0.96, 0.96),
    "black": (0.05, 0.05, 0.05),
    "gray": (0.50, 0.50, 0.50),
    "grey": (0.50, 0.50, 0.50),
    "orange": (0.96, 0.45, 0.05),
    "brown": (0.45, 0.26, 0.10),
    "pink": (0.96, 0.50, 0.70),
    "cyan": (0.05, 0.80, 0.85),
}
GROUND_RGB = (0.50, 0.50, 0.50)
SKY_RGB = (0.62, 0.78, 0.93)
AMBIENT = 0.38
SUN_INTENSITY = 2.6
SUN_DIRECTION = (0.45, 0.55, -1.0)  # where the light travels, in the camera's (right, forward, up) frame

SIM_RATE = 200  # solver steps per second, at least (a whole number of steps per frame)
GROUND_HALF = 100.0  # the ground plane drawn is a 200 m square
Z_NEAR = 0.05
Z_FAR = 200.0  # also the depth of sky pixels
MAX_BODIES = 31  # segmentation colours are SEG_STEP * (k + 1) in the red channel
SEG_STEP = 8
MAX_SIDE = 4096
MESH_SUFFIXES = (".obj", ".stl", ".ply", ".glb", ".gltf")

STATS = {"simulated": 0, "rendered": 0, "disk_hits": 0, "memory_hits": 0, "genesis_builds": 0}
"""Counters for this process: scenes simulated or rendered, cache hits, genesis scenes built (tests read them)."""
TIMINGS: dict[str, float] = {}
"""Seconds of the last scene computed: genesis's start (first time in a process), build, physics, rendering."""


def parse_color(text: str) -> tuple[float, float, float]:
    """A colour name of :data:`COLOR_RGB` or ``#rrggbb`` as sRGB in [0, 1]; ValueError otherwise."""
    key = text.strip().lower()
    if key in COLOR_RGB:
        return COLOR_RGB[key]
    if key.startswith("#") and len(key) == 7:
        try:
            return tuple(int(key[i:i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            pass
    raise ValueError(f"unknown colour '{text}'; use #rrggbb or one of {', '.join(COLOR_RGB)}")


# ---------------------------------------------------------------------------------------------------------------------
# Genesis and its renderer

_GENESIS_READY = False


def init_genesis() -> None:
    """Initialise genesis once per process on the CPU backend (its renderer and solvers need it)."""
    global _GENESIS_READY
    if _GENESIS_READY:
        return
    import genesis as gs

    if not getattr(gs, "_initialized", False):
        from poelang.progress import verbose_logging

        # No seed: genesis would reseed the global random, numpy and torch generators of the whole process.
        # Its level also sets the native quadrants logger's, which otherwise writes compiler notes such as
        # "[W …] frontend_ir.cpp … loop_config" straight to fd 2: only with -v do they show
        gs.init(backend=gs.cpu, logging_level="warning" if verbose_logging() else "error")
    _GENESIS_READY = True


def quat_to_matrix(quat) -> np.ndarray:
    """Rotation matrix of a (w, x, y, z) quaternion, genesis's convention."""
    w, x, y, z = np.asarray(quat, float) / np.linalg.norm(quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def euler_to_matrix(degrees) -> np.ndarray:
    """Extrinsic x-y-z Euler angles in degrees (rotate about x, then the fixed y, then the fixed z)."""
    ax, ay, az = (math.radians(float(a)) for a in degrees)
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of a rotation matrix (Shepperd's method), w >= 0."""
    m = np.asarray(r, float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2 * math.sqrt(1 + trace)
        q = [s / 4, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax([m[0, 0], m[1, 1], m[2, 2]]))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2 * math.sqrt(max(1 + m[i, i] - m[j, j] - m[k, k], 1e-12))
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = s / 4
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.array(q)
    return q if q[0] >= 0 else -q


def sun_pose(direction) -> np.ndarray:
    """The 4x4 pose of a directional light travelling along `direction` (world frame)."""
    z = -np.asarray(direction, float) / np.linalg.norm(direction)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = x, np.cross(z, x), z
    return pose


class GLScene:
    """A pyrender scene drawn by genesis's vendored JIT renderer: meshes, one camera, one sun.

    Add meshes with :meth:`add`, then :meth:`finish` (uploads them), then move and recolour them and :meth:`render`.
    The fork reads node poses at every render but material colours only when meshes are added, so :meth:`set_color`
    writes the base colour into its table (``JITRenderer.pbr_mat``) as well as into the material.
    """

    def __init__(self, height: int, width: int, camera_pose: np.ndarray, yfov: float, znear: float, zfar: float,
                 background=SKY_RGB, sun: np.ndarray | None = None, ambient: float = AMBIENT,
                 sun_intensity: float = SUN_INTENSITY):
        init_genesis()
        from genesis.ext import pyrender

        self.height, self.width = int(height), int(width)
        self._camera = (np.asarray(camera_pose, float), float(yfov), float(znear), float(zfar))
        self._sun = sun_pose(SUN_DIRECTION) if sun is None else sun
        self._sun_intensity = sun_intensity
        self.scene = pyrender.Scene(ambient_light=np.full(3, ambient), bg_color=(*background, 1.0))
        self._offscreen = None

    @staticmethod
    def material(rgb):
        from genesis.ext import pyrender

        return pyrender.MetallicRoughnessMaterial(baseColorFactor=(*rgb, 1.0), metallicFactor=0.0, roughnessFactor=0.9)

    def add(self, mesh, rgb, smooth: bool = True, pose: np.ndarray | None = None):
        """Add a trimesh in one colour; returns its node."""
        from genesis.ext import pyrender

        node_mesh = pyrender.Mesh.from_trimesh(mesh, material=self.material(rgb), smooth=smooth)
        return self.scene.add(node_mesh) if pose is None else self.scene.add(node_mesh, pose=pose)

    def finish(self) -> "GLScene":
        """Add the camera and the sun, create the GL context and upload every mesh."""
        from genesis.ext import pyrender
        from genesis.ext.pyrender.jit_render import JITRenderer

        pose, yfov, znear, zfar = self._camera
        camera = pyrender.PerspectiveCamera(yfov=yfov, znear=znear, zfar=zfar, aspectRatio=self.width / self.height)
        self.scene.add(camera, pose=pose)
        self.scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=self._sun_intensity), pose=self._sun)
        self._jit = JITRenderer(self.scene, [], [], np.zeros((1, 3)))
        try:
            self._offscreen = pyrender.OffscreenRenderer()
        except Exception as e:  # no EGL/OSMesa: a machine problem the user must fix, not a poelang bug
            from poelang.experts.unavailable import ExpertUnavailable

            raise ExpertUnavailable(f"no OpenGL context to render with ({type(e).__name__}: {e}); on a machine "
                                    "without a display set PYOPENGL_PLATFORM=egl or osmesa") from None
        self._target = pyrender.Renderer(self.width, self.height, self._jit)
        self.render({})  # uploads the meshes, so that the primitive table below is final
        self._row = {
            node: self._jit._primitive_index[node.mesh.primitives[0]] for node in self.scene.mesh_nodes
        }
        return self

    def set_pose(self, node, pose) -> None:
        self.scene.set_pose(node, np.asarray(pose, float))

    def set_color(self, node, rgb) -> None:
        self._jit.pbr_mat[self._row[node], :3] = rgb
        node.mesh.primitives[0].material.baseColorFactor = (*rgb, 1.0)

    def render(self, seg_map: dict):
        """(rgb uint8 [h,w,3], seg uint8 [h,w,3], depth float32 [h,w]); seg_map: node → segmentation colour."""
        self._offscreen.make_current()
        try:
            (rgb,) = self._offscreen.render(self.scene, self._target, rgb=True, skip_markers=True)
            self._offscreen._seg_node_map = seg_map
            seg, depth = self._offscreen.render(
                self.scene, self._target, rgb=False, seg=True, depth=True, skip_markers=True
            )
        finally:
            self._offscreen.make_uncurrent()
        return rgb, seg, depth

    def close(self) -> None:
        """Free the GL context and everything uploaded to it."""
        if self._offscreen is None:
            return
        self._offscreen.make_current()
        try:
            self._target.delete()
        finally:
            self._offscreen.make_uncurrent()
            self._offscreen.delete()
            self._offscreen = None


# ---------------------------------------------------------------------------------------------------------------------
# Scene descriptions


def _vec3(value, what: str) -> tuple[float, float, float]:
    try:
        x, y, z = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be three numbers (x, y, z), got {value!r}") from None
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise ValueError(f"{what} must be finite, got ({x:g}, {y:g}, {z:g})")
    return (x, y, z)


@dataclass(frozen=True)
class Body:
    """One rigid object: a sphere (size = radius), a cube (size = edge) or a mesh file (size = scale).

    A primitive's position is its centre; a mesh's is the origin of its file's coordinates (glTF files are Y-up and
    turned Z-up, as genesis does). ``path`` is absolute; ``digest`` the SHA-256 of the file, part of the cache key.
    """

    shape: str
    size: float
    position: tuple[float, float, float] = (0.0, 0.0, 0.5)
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    color: tuple[float, float, float] = COLOR_RGB["red"]
    name: str | None = None
    path: str | None = None
    digest: str | None = None

    def __post_init__(self):
        if self.shape not in ("sphere", "cube", "mesh"):
            raise ValueError(f"unknown body shape '{self.shape}'")
        what = {"sphere": "radius", "cube": "size", "mesh": "scale"}[self.shape]
        if not (math.isfinite(self.size) and self.size > 0):
            raise ValueError(f"a {self.shape}'s {what} must be positive, got {self.size:g}")
        for name in ("position", "rotation", "velocity"):
            object.__setattr__(self, name, _vec3(getattr(self, name), name))
        if self.shape == "mesh" and self.path is None:
            raise ValueError("a mesh needs a file path")

    @classmethod
    def sphere(cls, radius, position=(0.0, 0.0, 0.5), velocity=(0.0, 0.0, 0.0), color="red", name=None) -> "Body":
        return cls("sphere", float(radius), position, (0.0, 0.0, 0.0), velocity, parse_color(color), name)

    @classmethod
    def cube(cls, size, position=(0.0, 0.0, 0.5), rotation=(0.0, 0.0, 0.0), velocity=(0.0, 0.0, 0.0),
             color="red", name=None) -> "Body":
        return cls("cube", float(size), position, rotation, velocity, parse_color(color), name)

    @classmethod
    def mesh(cls, path, scale=1.0, position=(0.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0), velocity=(0.0, 0.0, 0.0),
             color="white", name=None) -> "Body":
        """FileNotFoundError when the file is missing, ValueError when it is no mesh poelang can read."""
        full = Path(path)
        if not full.is_file():
            raise FileNotFoundError(f"mesh file not found: {path}")
        if full.suffix.lower() not in MESH_SUFFIXES:
            raise ValueError(f"cannot read mesh {path}: use one of {', '.join(MESH_SUFFIXES)}")
        digest = hashlib.sha256(full.read_bytes()).hexdigest()
        body = cls("mesh", float(scale), position, rotation, velocity, parse_color(color), name,
                   str(full.resolve()), digest)
        local_mesh(body)  # read it now, so that a broken file is an error here, not in the simulator
        return body

    def pose(self) -> np.ndarray:
        """4x4 world pose of its initial position and rotation."""
        pose = np.eye(4)
        pose[:3, :3] = euler_to_matrix(self.rotation)
        pose[:3, 3] = self.position
        return pose

    def describe(self) -> dict:
        """What identifies it in a cache key (the file's contents, not its path)."""
        d = asdict(self)
        d.pop("path")
        return d


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at ``position`` looking at ``lookat``, z up, with a vertical field of view in degrees."""

    position: tuple[float, float, float] = (1.5, 0.0, 1.0)
    lookat: tuple[float, float, float] = (0.0, 0.0, 0.2)
    fov: float = 40.0

    def __post_init__(self):
        object.__setattr__(self, "position", _vec3(self.position, "camera position"))
        object.__setattr__(self, "lookat", _vec3(self.lookat, "camera lookat"))
        if not 0 < self.fov < 180:
            raise ValueError(f"the camera's fov must be between 0 and 180 degrees, got {self.fov:g}")
        if np.linalg.norm(np.subtract(self.lookat, self.position)) < 1e-9:
            raise ValueError("the camera looks at its own position: give lookat another point")

    def pose(self) -> np.ndarray:
        """Camera-to-world 4x4 matrix in the OpenGL convention (the camera looks along its -z axis, y up)."""
        eye = np.array(self.position)
        forward = np.subtract(self.lookat, eye)
        forward /= np.linalg.norm(forward)
        up = np.array([0.0, 0.0, 1.0]) if abs(forward[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        pose = np.eye(4)
        pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, np.cross(right, forward), -forward, eye
        return pose

    def project(self, points, height: int, width: int) -> np.ndarray:
        """World points (N, 3) → (N, 2) image coordinates (column, row); pixel (r, c) spans [c, c+1) × [r, r+1)."""
        world_to_camera = np.linalg.inv(self.pose())
        cam = np.asarray(points, float) @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
        depth = -cam[:, 2]
        f = (height / 2) / math.tan(math.radians(self.fov) / 2)
        return np.stack([width / 2 + f * cam[:, 0] / depth, height / 2 - f * cam[:, 1] / depth], axis=1)

    def sun(self) -> np.ndarray:
        """The sun's pose: high above, from behind the camera's left shoulder (:data:`SUN_DIRECTION`)."""
        forward = np.subtract(self.lookat, self.position)
        forward[2] = 0.0
        if np.linalg.norm(forward) < 1e-6:  # looking straight down: "forward" is the image's up
            forward = self.pose()[:3, 1].copy()
            forward[2] = 0.0
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        a, b, c = SUN_DIRECTION
        return sun_pose(a * right + b * forward + np.array([0.0, 0.0, c]))


def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (h, w), got {size!r}") from None
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise ValueError(f"size must be between 1 and {MAX_SIDE} pixels a side, got ({h}, {w})")
    return h, w


def _check_bodies(bodies) -> tuple[Body, ...]:
    bodies = tuple(bodies)
    if len(bodies) > MAX_BODIES:
        raise ValueError(f"at most {MAX_BODIES} objects per scene, got {len(bodies)}")
    names = [b.name for b in bodies if b.name is not None]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"two objects are named '{repeated[0]}': names must be unique to tell their masks apart")
    return bodies


# ---------------------------------------------------------------------------------------------------------------------
# Results


@dataclass
class Frames:
    """Rendered frames of a scene, as stored: rgb uint8 [F,H,W,3], depth in meters [F,H,W] (sky = Z_FAR), masks
    bool [F,K,H,W] in the order of the bodies, their names, and their poses (positions [F,K,3], quats [F,K,4]).

    The attributes the language sees are torch tensors: :attr:`rgb` [F,3,H,W] in [-1, 1], :attr:`depth` [F,H,W]
    (inverse depth in [0, 1], near is bright, as depth experts read it), :attr:`mask` [F,H,W] (every object) and
    :meth:`object_mask`. A single frame (``render``, or ``simulate`` with one frame) drops the F axis.
    """

    rgb_u8: np.ndarray
    metric_depth: np.ndarray
    masks: np.ndarray
    names: tuple
    positions: np.ndarray
    quats: np.ndarray
    fps: float = 0.0
    key: str = ""
    _tensors: dict = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        f, h, w = self.metric_depth.shape
        names = ", ".join(str(n) for n in self.names) or "none"
        return f"Frames({f} frame{'s' if f != 1 else ''} of {h}×{w}, objects: {names}, key {self.key[:12]})"

    @property
    def single(self) -> bool:
        return self.rgb_u8.shape[0] == 1

    def _out(self, t):
        return t[0] if self.single else t

    def _tensor(self, name, make):
        if name not in self._tensors:
            self._tensors[name] = make()
        return self._tensors[name]

    @property
    def rgb(self):
        import torch

        return self._tensor("rgb", lambda: self._out(
            torch.from_numpy(self.rgb_u8.copy()).permute(0, 3, 1, 2).float() / 127.5 - 1))

    @property
    def depth(self):
        import torch

        return self._tensor("depth", lambda: self._out(torch.from_numpy(inverse_depth(self.metric_depth))))

    @property
    def mask(self):
        import torch

        return self._tensor("mask", lambda: self._out(torch.from_numpy(self.masks.any(1).astype(np.float32))))

    def object_mask(self, name: str):
        """The mask of the object called `name` ([F,H,W], or [H,W] for one frame)."""
        import torch

        if name not in self.names:
            known = ", ".join(f"'{n}'" for n in self.names if n is not None)
            raise ValueError(f"no object named '{name}' in this scene" + (f"; its objects are {known}" if known else
                                                                            "; give objects a name= to ask for their masks"))
        k = self.names.index(name)
        return self._out(torch.from_numpy(self.masks[:, k].astype(np.float32)))

    def arrays(self) -> dict:
        return {"rgb": self.rgb_u8, "depth": self.metric_depth, "masks": self.masks,
                "names": np.array(json.dumps(list(self.names))), "positions": self.positions, "quats": self.quats,
                "fps": np.array(self.fps)}

    @classmethod
    def from_arrays(cls, data, key: str = "") -> "Frames":
        return cls(np.asarray(data["rgb"]), np.asarray(data["depth"]), np.asarray(data["masks"]),
                   tuple(json.loads(str(data["names"]))), np.asarray(data["positions"]), np.asarray(data["quats"]),
                   float(data["fps"]), key)


def inverse_depth(depth: np.ndarray) -> np.ndarray:
    """Depth in meters → inverse depth in [0, 1]: 1 at the nearest point of the clip, 0 at the sky (Z_FAR)."""
    d = np.clip(depth.astype(np.float32), Z_NEAR, Z_FAR)
    near = float(d.min()) if d.size else Z_NEAR
    if near >= Z_FAR * 0.999:
        return np.zeros_like(d)
    return ((1 / d - 1 / Z_FAR) / (1 / near - 1 / Z_FAR)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------------
# Meshes for the renderer


_MESHES: dict = {}


def local_mesh(body: Body):
    """The body's trimesh in its own frame (a copy): an icosphere, a box, or the file's mesh (scaled, Z up)."""
    import trimesh

    key = (body.shape, body.size, body.digest)
    if key not in _MESHES:
        if body.shape == "sphere":
            mesh = trimesh.creation.icosphere(subdivisions=3, radius=body.size)
        elif body.shape == "cube":
            mesh = trimesh.creation.box(extents=(body.size,) * 3)
        else:
            try:
                mesh = trimesh.load(body.path, force="mesh")
            except Exception as e:  # trimesh raises many kinds for a bad file
                raise ValueError(f"cannot read mesh {body.path}: {e}") from None
            if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
                raise ValueError(f"cannot read mesh {body.path}: it has no triangles")
            mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
            if Path(body.path).suffix.lower() in (".glb", ".gltf"):  # Y up → Z up: (x, y, z) → (x, -z, y)
                v = mesh.vertices
                mesh.vertices = np.stack([v[:, 0], -v[:, 2], v[:, 1]], 1)
            mesh.apply_scale(body.size)
        _MESHES[key] = mesh
    return _MESHES[key].copy()


def _ground_mesh():
    import trimesh

    ground = trimesh.creation.box(extents=(2 * GROUND_HALF, 2 * GROUND_HALF, 0.02))
    ground.apply_translation((0.0, 0.0, -0.01))
    return ground


def _pose(position, quat) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = quat_to_matrix(quat)
    pose[:3, 3] = position
    return pose


def _draw(bodies: tuple[Body, ...], camera: Camera, size: tuple[int, int], positions: np.ndarray,
          quats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render every frame of the poses: rgb [F,H,W,3], metric depth [F,H,W], masks [F,K,H,W]."""
    h, w = size
    gl = GLScene(h, w, camera.pose(), math.radians(camera.fov), Z_NEAR, Z_FAR, sun=camera.sun())
    try:
        ground = gl.add(_ground_mesh(), GROUND_RGB)
        nodes = [gl.add(local_mesh(b), b.color, smooth=b.shape != "cube") for b in bodies]
        gl.finish()
        seg_map = {node: np.array([SEG_STEP * (k + 1), 0, 0]) for k, node in enumerate(nodes)}
        seg_map[ground] = np.array([0, 255, 0])
        frames = positions.shape[0]
        rgb = np.zeros((frames, h, w, 3), np.uint8)
        depth = np.zeros((frames, h, w), np.float32)
        masks = np.zeros((frames, len(bodies), h, w), bool)
        for f in range(frames):
            for k, node in enumerate(nodes):
                gl.set_pose(node, _pose(positions[f, k], quats[f, k]))
            color, seg, z = gl.render(seg_map)
            index = np.rint(seg[..., 0] / SEG_STEP).astype(np.int64)
            rgb[f] = color[..., :3]
            depth[f] = np.where(z > 0, z, Z_FAR)
            for k in range(len(bodies)):
                masks[f, k] = index == k + 1
        return rgb, depth, masks
    finally:
        gl.close()


# ---------------------------------------------------------------------------------------------------------------------
# Simulation


def _morph(gs, body: Body):
    quat = tuple(matrix_to_quat(euler_to_matrix(body.rotation)))
    if body.shape == "sphere":
        return gs.morphs.Sphere(radius=body.size, pos=body.position, quat=quat)
    if body.shape == "cube":
        return gs.morphs.Box(size=(body.size,) * 3, pos=body.position, quat=quat)
    return gs.morphs.Mesh(file=body.path, scale=body.size, pos=body.position, quat=quat)


def _steps_per_frame(fps: float) -> int:
    return max(1, math.ceil(SIM_RATE / fps))


def run_physics(bodies: tuple[Body, ...], frames: int, fps: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Poses (positions [F,K,3], quats [F,K,4]) of the bodies released with their velocities, on the ground plane.

    One genesis scene per call (seconds when genesis's kernel cache is warm); frame 0 is the initial state. Returns
    the poses and the seconds the build took.
    """
    init_genesis()
    import genesis as gs

    steps = _steps_per_frame(fps)
    scene = gs.Scene(
        sim_options=gs.options.SimOptions(dt=1.0 / (fps * steps)),
        rigid_options=gs.options.RigidOptions(enable_self_collision=False),
        show_viewer=False,
    )
    try:
        scene.add_entity(gs.morphs.Plane())
        try:
            entities = [scene.add_entity(_morph(gs, b)) for b in bodies]
        except gs.GenesisException as e:
            raise ValueError(f"genesis cannot load the scene: {e}") from None
        started = time.perf_counter()
        scene.build()
        build_seconds = time.perf_counter() - started
        STATS["genesis_builds"] += 1
        for body, entity in zip(bodies, entities):
            if any(body.velocity):
                entity.set_dofs_velocity(np.array([*body.velocity, 0.0, 0.0, 0.0]))
        positions = np.zeros((frames, len(bodies), 3), np.float32)
        quats = np.zeros((frames, len(bodies), 4), np.float32)
        for f in range(frames):
            if f:
                for _ in range(steps):
                    scene.step()
            for k, entity in enumerate(entities):
                positions[f, k] = entity.get_pos().cpu().numpy()
                quats[f, k] = entity.get_quat().cpu().numpy()
        if not (np.isfinite(positions).all() and np.isfinite(quats).all()):
            raise ValueError("the simulation diverged (objects overlapping at the start, or too fast?)")
        return positions, quats, build_seconds
    finally:
        destroy = getattr(scene, "destroy", None)
        if destroy is not None:
            try:
                destroy()
            except Exception:  # pragma: no cover - best effort; the scene is garbage either way
                pass


# ---------------------------------------------------------------------------------------------------------------------
# The cache


def cache_dir() -> Path:
    """``$POELANG_CACHE/simulations``, else ``$XDG_CACHE_HOME/poelang/simulations`` (``~/.cache``), read now."""
    root = os.environ.get("POELANG_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "poelang")
    return Path(root) / "simulations"


def _genesis_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("genesis-world")
    except metadata.PackageNotFoundError:
        return "none"


def scene_key(kind: str, bodies, camera: Camera, size, frames: int = 1, fps: float = 0.0) -> str:
    """SHA-256 of everything the frames depend on."""
    description = {
        "version": SCENE_VERSION, "genesis": _genesis_version(), "kind": kind, "size": list(size),
        "frames": int(frames), "fps": float(fps), "camera": asdict(camera),
        "bodies": [b.describe() for b in bodies],
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


_MEMORY: dict[str, Frames] = {}
MEMORY_ENTRIES = 8  # scenes kept in memory per process (the oldest goes first; the disk keeps them all)


def _remember(key: str, frames: Frames) -> Frames:
    _MEMORY.pop(key, None)
    _MEMORY[key] = frames
    while len(_MEMORY) > MEMORY_ENTRIES:
        del _MEMORY[next(iter(_MEMORY))]
    return frames


def _cached(key: str) -> Frames | None:
    if key in _MEMORY:
        STATS["memory_hits"] += 1
        return _MEMORY[key]
    path = cache_dir() / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                frames = Frames.from_arrays(data, key)
        except Exception:  # a damaged entry: compute it again and overwrite it
            return None
        STATS["disk_hits"] += 1
        return _remember(key, frames)
    return None


def _store(key: str, arrays: dict) -> Frames:
    """Write the entry atomically (a temporary file beside it, then one rename) and return what was written."""
    folder = cache_dir()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npz", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buffer.getvalue())
            os.replace(tmp, folder / f"{key}.npz")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:  # a read-only cache: the result is still good, only not kept
        pass
    buffer.seek(0)
    with np.load(buffer) as data:  # the same bytes a later run will read, so both runs see identical values
        frames = Frames.from_arrays(data, key)
    return _remember(key, frames)


def clear_memory() -> None:
    """Forget the frames held in this process (the disk cache stays)."""
    _MEMORY.clear()


# ---------------------------------------------------------------------------------------------------------------------
# The two builtins


def simulate(bodies, camera: Camera, frames: int = 16, fps: float = 8, size=(64, 64)) -> Frames:
    """Simulate the bodies falling onto the ground plane and film `frames` frames at `fps` (cached on disk)."""
    bodies = _check_bodies(bodies)
    size = _check_size(size)
    if int(frames) != frames or frames < 1:
        raise ValueError(f"frames must be a whole number of at least 1, got {frames}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps:g}")
    key = scene_key("simulate", bodies, camera, size, int(frames), float(fps))
    hit = _cached(key)
    if hit is not None:
        return hit
    TIMINGS.clear()
    started = time.perf_counter()
    init_genesis()
    TIMINGS["genesis_start"] = time.perf_counter() - started
    started = time.perf_counter()
    positions, quats, TIMINGS["build"] = run_physics(bodies, int(frames), float(fps))
    TIMINGS["physics"] = time.perf_counter() - started - TIMINGS["build"]
    started = time.perf_counter()
    rgb, depth, masks = _draw(bodies, camera, size, positions, quats)
    TIMINGS["render"] = time.perf_counter() - started
    STATS["simulated"] += 1
    return _store(key, {"rgb": rgb, "depth": depth, "masks": masks, "names": np.array(json.dumps([b.name for b in bodies])),
                        "positions": positions, "quats": quats, "fps": np.array(float(fps))})


def render(bodies, camera: Camera, size=(64, 64)) -> Frames:
    """The bodies where they stand (no physics), seen by the camera: one frame (cached on disk)."""
    bodies = _check_bodies(bodies)
    size = _check_size(size)
    key = scene_key("render", bodies, camera, size)
    hit = _cached(key)
    if hit is not None:
        return hit
    positions = np.array([[b.position for b in bodies]], np.float32).reshape(1, len(bodies), 3)
    quats = np.array([[matrix_to_quat(euler_to_matrix(b.rotation)) for b in bodies]], np.float32).reshape(1, len(bodies), 4)
    TIMINGS.clear()
    started = time.perf_counter()
    init_genesis()
    TIMINGS["genesis_start"] = time.perf_counter() - started
    started = time.perf_counter()
    rgb, depth, masks = _draw(bodies, camera, size, positions, quats)
    TIMINGS["render"] = time.perf_counter() - started
    STATS["rendered"] += 1
    return _store(key, {"rgb": rgb, "depth": depth, "masks": masks, "names": np.array(json.dumps([b.name for b in bodies])),
                        "positions": positions, "quats": quats, "fps": np.array(0.0)})


# ---------------------------------------------------------------------------------------------------------------------
# Warming genesis's kernel cache


def warm(world: bool = True) -> dict:
    """Build and step a scene with every kind of body (and the mini world's simulator), caching nothing of ours.

    Compiles genesis's kernels into its on-disk cache, so that later processes build scenes in seconds.
    """
    import trimesh

    timings = {}
    started = time.perf_counter()
    init_genesis()
    timings["init"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "wedge.obj")
        trimesh.creation.cone(radius=0.1, height=0.2, sections=16).export(path, file_type="obj")
        bodies = (Body.sphere(0.1, (0.0, 0.0, 0.5), (0.2, 0.0, 0.0)), Body.cube(0.15, (0.4, 0.0, 0.3), (0, 0, 30)),
                  Body.mesh(path, 1.0, (-0.4, 0.0, 0.4)))
        started = time.perf_counter()
        positions, quats, build = run_physics(bodies, 4, 8)
        timings["build"] = build
        timings["simulate"] = time.perf_counter() - started
        started = time.perf_counter()
        _draw(bodies, Camera(), (32, 32), positions, quats)
        timings["render"] = time.perf_counter() - started
    if world:
        from stdlib_experts.mini import world as mini

        started = time.perf_counter()
        mini.get_simulator()
        timings["mini_world_simulator"] = time.perf_counter() - started
    return timings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="genesis-world scenes for poelang's simulate() and render().")
    parser.add_argument("--warm", action="store_true", help="compile genesis's kernels into its on-disk cache")
    parser.add_argument("--no-world", action="store_true", help="with --warm: skip the mini world's simulator")
    args = parser.parse_args(argv)
    if not args.warm:
        parser.print_help()
        return
    started = time.perf_counter()
    timings = warm(world=not args.no_world)
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    print(f"genesis kernel cache warm in {time.perf_counter() - started:.1f} s ({parts})")


if __name__ == "__main__":
    main()
