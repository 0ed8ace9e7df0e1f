"""The cache: results on disk by the SHA-256 of the scene description, and a few in memory."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from poelang.stdlib.scene.bodies import Camera
from poelang.stdlib.scene.frames import Frames
from poelang.stdlib.scene.look import SCENE_VERSION, STATS


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


