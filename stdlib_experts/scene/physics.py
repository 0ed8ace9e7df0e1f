"""Simulation: bodies dropped into genesis-world's rigid solver, their poses per frame."""
from __future__ import annotations

import math
import time

import numpy as np

from poelang.stdlib.scene.bodies import Body
from poelang.stdlib.scene.look import SIM_RATE, STATS, euler_to_matrix, init_genesis, matrix_to_quat


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


