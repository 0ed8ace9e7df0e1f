"""Scene descriptions: :class:`Body` (a sphere, a cube or a mesh file, with a pose, a velocity and a colour)
and the pinhole :class:`Camera`, validated when built.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from poelang.stdlib.scene.look import (COLOR_RGB, MAX_SIDE, MESH_SUFFIXES, SUN_DIRECTION, euler_to_matrix, objects_problem,
                                        parse_color, sun_pose)
from poelang.stdlib.scene.meshes import local_mesh


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
    problem = objects_problem([b.name for b in bodies])
    if problem:
        raise ValueError(problem)
    return bodies


