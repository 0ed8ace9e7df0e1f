"""The scene builtins: objects, cameras, simulation and rendering, registered like any plugin.

``sphere``, ``cube``, ``mesh``, ``camera``, ``simulate``, ``render`` and
``object_mask`` reach programs through the entry point ``poelang.builtins``
(see ``pyproject.toml``). Each is a :class:`FunctionSpec`: a signature, a
typing rule the checker runs (a positive size, a known colour, a mesh file the
renderer reads) and, named by its loader, the function below that computes
the value at run time with :mod:`poelang.stdlib.scene` (genesis-world),
imported only then. Importing this module imports neither torch nor genesis.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from poelang.builtins import SIMULATION_ATTRIBUTES, size_argument
from poelang.experts.spec import Bound, FunctionSpec, Param
from poelang.experts.unavailable import ExpertUnavailable
from poelang.types import CameraT, ListT, MaskT, NoneT, ObjectT, SimulationT, Type
from poelang.values import Context, Quantity

# --- typing rules ------------------------------------------------------------------------------------------------

SCENE_EXTENT = 1e4  # m: a scene is meters across; far beyond, the renderer's depth range and float32 physics fail
SCENE_SPEED = 1e3  # m/s: faster, an object leaves any scene within one frame


def _scene_object(size_param: str | None):
    """The rule of sphere/cube/mesh: a positive size, a known colour, a mesh file the renderer reads."""

    def rule(bound: Bound) -> Type:
        from poelang.stdlib.scene import MESH_SUFFIXES, parse_color  # numpy only: no genesis, no torch

        size = bound.values.get(size_param) if size_param else None
        if isinstance(size, (int, float)) and not size > 0:
            bound.error(f"{size_param} must be positive, got {size:g}", size_param)
        color = bound.values.get("color")
        if isinstance(color, str):
            try:
                parse_color(color)
            except ValueError as e:
                bound.error(str(e), "color")
        path = bound.values.get("path")
        if isinstance(path, str) and Path(path).suffix.lower() not in MESH_SUFFIXES:
            bound.error(f"a mesh is read from {', '.join(MESH_SUFFIXES)} files, not '{Path(path).suffix or path}'", "path")
        name = bound.values.get("name")
        if isinstance(name, str) and not name:
            bound.error("an object's name is not empty", "name")
        name_known = isinstance(name, str) or isinstance(bound.types.get("name"), NoneT)
        for vector, limit, unit in (("position", SCENE_EXTENT, "m"), ("velocity", SCENE_SPEED, "m/s")):
            value = bound.values.get(vector)
            numbers = [v for v in value if isinstance(v, (int, float))] if isinstance(value, (list, tuple)) else []
            if any(abs(v) > limit for v in numbers):
                bound.error(f"{vector} {max(abs(v) for v in numbers):g} {unit} is beyond the simulator's range "
                            f"(at most {limit:g} {unit} per axis)", vector)
        return ObjectT(name if isinstance(name, str) else None, name_known)

    return rule


def _camera(bound: Bound) -> Type:
    fov = bound.values.get("fov")
    if isinstance(fov, (int, float)) and not 0 < fov < 180:
        bound.error(f"fov must be between 0 and 180 degrees, got {fov:g}", "fov")
    position, lookat = bound.values.get("position"), bound.values.get("lookat")
    if isinstance(position, (tuple, list)) and isinstance(lookat, (tuple, list)) and list(position) == list(lookat):
        bound.error("the camera looks at its own position: give lookat another point", "lookat")
    return CameraT()


def _object_names(bound: Bound) -> tuple[str | None, ...] | None:
    """The names of the scene's objects (None: unnamed) when the checker sees them all, checked by the
    scene's own rule (unique, not too many); None when it cannot tell (a name computed at run time)."""
    from poelang.stdlib.scene import objects_problem  # numpy only: no genesis, no torch

    objects = bound.types.get("objects")
    items = objects.items if isinstance(objects, ListT) else None
    if items is None or not all(isinstance(t, ObjectT) and t.name_known for t in items):
        return None
    names = tuple(t.name for t in items)
    problem = objects_problem(names)
    if problem:
        bound.error(problem, "objects")
    return names


def _simulate(bound: Bound) -> Type:
    h, w = size_argument(bound)
    names = _object_names(bound)
    frames = bound.values.get("frames")
    if isinstance(frames, (int, float)) and frames < 1:
        bound.error("frames must be at least 1", "frames")
    fps = bound.values.get("fps")
    if isinstance(fps, (int, float)) and not fps > 0:
        bound.error(f"fps must be positive, got {fps:g}", "fps")
    return SimulationT(int(frames) if isinstance(frames, (int, float)) else None, h, w, names)


def _render(bound: Bound) -> Type:
    h, w = size_argument(bound)
    return SimulationT(1, h, w, _object_names(bound))


def _object_mask(bound: Bound) -> Type:
    t = bound.types.get("sim")
    name = bound.values.get("name")
    if isinstance(name, str) and not name:
        bound.error("an object's name is not empty", "name")
    if isinstance(t, SimulationT) and t.names is not None and isinstance(name, str) and name:
        from poelang.stdlib.scene import unknown_object  # numpy only

        problem = unknown_object(name, t.names)
        if problem:
            bound.error(problem, "name")
    if isinstance(t, SimulationT):
        return SIMULATION_ATTRIBUTES["mask"](t)
    return MaskT()


# --- run time ----------------------------------------------------------------------------------------------------


def _scene():
    """The scene module, or ExpertUnavailable when genesis-world is not installed."""
    import importlib.util

    if importlib.util.find_spec("genesis") is None:
        raise ExpertUnavailable("simulate() and render() need genesis-world: pip install 'poelang[world]'")
    from poelang.stdlib import scene

    return scene


def _number(value: Any, what: str, unit: str | None = None) -> float:
    """A plain number, or a Quantity in `unit` (angles: degrees, with or without `deg`)."""
    if isinstance(value, Quantity):
        if value.unit not in (None, unit):
            raise ValueError(f"{what} takes {'degrees' if unit == 'deg' else 'a plain number'}, not {value.unit}")
        return float(value.value)
    return float(value)


def _vec3(value: Any, what: str, unit: str | None = None) -> tuple[float, float, float]:
    items = list(value)
    if len(items) != 3:
        raise ValueError(f"{what} must be three numbers (x, y, z)")
    return tuple(_number(v, what, unit) for v in items)  # type: ignore[return-value]


def sphere(ctx: Context, radius, position, velocity, color, name=None):
    return _scene().Body.sphere(_number(radius, "radius"), _vec3(position, "position"),
                                _vec3(velocity, "velocity"), color, name)


def cube(ctx: Context, size, position, rotation, velocity, color, name=None):
    return _scene().Body.cube(_number(size, "size"), _vec3(position, "position"), _vec3(rotation, "rotation", "deg"),
                              _vec3(velocity, "velocity"), color, name)


def mesh(ctx: Context, path, scale, position, rotation, velocity, name=None, color="white"):
    return _scene().Body.mesh(ctx.base_dir / path, _number(scale, "scale"), _vec3(position, "position"),
                              _vec3(rotation, "rotation", "deg"), _vec3(velocity, "velocity"), color, name)


def camera(ctx: Context, position, lookat, fov):
    return _scene().Camera(_vec3(position, "position"), _vec3(lookat, "lookat"), _number(fov, "fov", "deg"))


def simulate(ctx: Context, objects, camera, frames, fps, size):
    scene = _scene()
    return _backend(lambda: scene.simulate(objects, camera, int(frames), float(fps), (int(size[0]), int(size[1]))))


def render(ctx: Context, objects, camera, size):
    scene = _scene()
    return _backend(lambda: scene.render(objects, camera, (int(size[0]), int(size[1]))))


def _backend(work):
    """Run genesis (and trimesh, qhull, the renderer under it): their own exception types for a scene they
    cannot handle become a ValueError, which the run reports at the call, never a traceback."""
    try:
        return work()
    except (ValueError, FileNotFoundError, ExpertUnavailable, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - a third-party backend's errors are many and undocumented
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"the simulator could not handle this scene ({type(e).__name__}: {first})") from None


def object_mask(ctx: Context, sim, name):
    return sim.object_mask(name)


# --- the specs ---------------------------------------------------------------------------------------------------

_HERE = __name__

BUILTINS = [
    FunctionSpec(
        "sphere", "a sphere for the simulator or the renderer (meters; position is its centre)",
        (Param("radius", "Number", 0.1), Param("position", "Vec3", (0.0, 0.0, 0.5)), Param("velocity", "Vec3", (0.0, 0.0, 0.0)),
         Param("color", "Text", "red", "a colour name or #rrggbb"), Param("name", "Text?", None, "name of its mask")),
        _scene_object("radius"), f"{_HERE}:sphere",
    ),
    FunctionSpec(
        "cube", "a cube for the simulator or the renderer (size: its edge; rotation: x-y-z Euler angles)",
        (Param("size", "Number", 0.1), Param("position", "Vec3", (0.0, 0.0, 0.5)), Param("rotation", "Vec3", (0.0, 0.0, 0.0)),
         Param("velocity", "Vec3", (0.0, 0.0, 0.0)), Param("color", "Text", "red"), Param("name", "Text?", None)),
        _scene_object("size"), f"{_HERE}:cube",
    ),
    FunctionSpec(
        "mesh", "a mesh asset (.obj, .stl, .ply, .glb, .gltf) for the simulator or the renderer, in one colour",
        (Param("path", "Text"), Param("scale", "Number", 1.0), Param("position", "Vec3", (0.0, 0.0, 0.0)),
         Param("rotation", "Vec3", (0.0, 0.0, 0.0)), Param("velocity", "Vec3", (0.0, 0.0, 0.0)), Param("name", "Text?", None),
         Param("color", "Text", "white")),
        _scene_object("scale"), f"{_HERE}:mesh",
    ),
    FunctionSpec(
        "camera", "a pinhole camera at position looking at lookat, z up; fov is vertical",
        (Param("position", "Vec3", (1.5, 0.0, 1.0)), Param("lookat", "Vec3", (0.0, 0.0, 0.2)), Param("fov", "Angle", 40.0)),
        _camera, f"{_HERE}:camera",
    ),
    FunctionSpec(
        "simulate", "rigid-body simulation of objects on a ground plane (genesis-world): .rgb, .depth, .mask per frame",
        (Param("objects", "List[Object]"), Param("camera", "Camera"), Param("frames", "Int", 16),
         Param("fps", "Number", 8), Param("size", "Size", (64, 64))),
        _simulate, f"{_HERE}:simulate", progress="simulating",
    ),
    FunctionSpec(
        "render", "posed objects rendered into a camera (graphics engine): .rgb, .depth, .mask",
        (Param("objects", "List[Object]"), Param("camera", "Camera"), Param("size", "Size", (64, 64))),
        _render, f"{_HERE}:render", progress="rendering",
    ),
    FunctionSpec(
        "object_mask", "the mask of one named object of a simulation or a render (per frame)",
        (Param("sim", "Simulation"), Param("name", "Text")),
        _object_mask, f"{_HERE}:object_mask",
    ),
]
