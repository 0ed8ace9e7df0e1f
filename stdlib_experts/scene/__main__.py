"""Warming genesis's kernel cache: ``python -m poelang.stdlib.scene --warm``."""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from poelang.stdlib.scene.bodies import Body, Camera
from poelang.stdlib.scene.look import init_genesis
from poelang.stdlib.scene.meshes import _draw
from poelang.stdlib.scene.physics import run_physics


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
        from poelang.stdlib.mini import world as mini

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
