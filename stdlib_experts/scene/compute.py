"""The two builtins' computations: :func:`simulate` and :func:`render`."""
from __future__ import annotations

import json
import math
import time

import numpy as np

from poelang.stdlib.scene.bodies import Camera, _check_bodies, _check_size
from poelang.stdlib.scene.cache import _cached, _store, scene_key
from poelang.stdlib.scene.frames import Frames
from poelang.stdlib.scene.look import STATS, TIMINGS, euler_to_matrix, init_genesis, matrix_to_quat
from poelang.stdlib.scene.meshes import _draw
from poelang.stdlib.scene.physics import run_physics


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


