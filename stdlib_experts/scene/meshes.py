"""Meshes for the renderer, and drawing posed bodies into a camera."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from poelang.stdlib.scene.look import GLScene, GROUND_HALF, GROUND_RGB, SEG_STEP, Z_FAR, Z_NEAR, quat_to_matrix


if TYPE_CHECKING:  # bodies read their meshes through local_mesh when they are built
    from poelang.stdlib.scene.bodies import Body, Camera

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
            problem = _solid_problem(np.asarray(mesh.vertices, dtype=np.float64))
            if problem:
                raise ValueError(f"cannot use mesh {body.path}: {problem}")
            mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
            if Path(body.path).suffix.lower() in (".glb", ".gltf"):  # Y up → Z up: (x, y, z) → (x, -z, y)
                v = mesh.vertices
                mesh.vertices = np.stack([v[:, 0], -v[:, 2], v[:, 1]], 1)
            mesh.apply_scale(body.size)
        _MESHES[key] = mesh
    return _MESHES[key].copy()


def _solid_problem(vertices: np.ndarray) -> str | None:
    """Why the vertices cannot make a rigid body (the simulator builds its collision shape as their convex
    hull), or None."""
    if not np.isfinite(vertices).all():
        return "some vertices are NaN or infinite"
    if np.abs(vertices).max() > 1e4:
        return f"a vertex lies {np.abs(vertices).max():.3g} m from the origin; a scene is meters across (use scale=)"
    centred = vertices - vertices.mean(0)
    if len(vertices) < 4 or np.linalg.matrix_rank(centred, tol=1e-9 * max(1.0, np.abs(centred).max())) < 3:
        return "it is flat (its vertices lie in one plane); a rigid body needs volume"
    return None


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


