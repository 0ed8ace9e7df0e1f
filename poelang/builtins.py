"""Builtin value functions: loading, boxes, mask algebra, simulation and rendering.

Each entry is a signature plus a typing rule (what the call returns, and the
mistakes it can see statically); the code that computes the value at run time
lives in :mod:`poelang.values` (``OPS``), imported only by ``run``.
"""
from __future__ import annotations

from pathlib import Path

from poelang.experts.spec import Bound, FunctionSpec, Param
from poelang.types import (
    CameraT, DepthT, ImageT, MaskT, ObjectT, RegionT, SimulationT, TraceT, Type, VideoT,
)



def _size(bound: Bound, param: str = "size") -> tuple[int | None, int | None]:
    value = bound.values.get(param)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        h, w = int(value[0]), int(value[1])
        if h <= 0 or w <= 0:
            bound.error(f"size must be positive, got ({h}, {w})", param)
            return (None, None)
        return (h, w)
    return (None, None)


def _file_size(bound: Bound) -> tuple[int | None, int | None]:
    """The size of an image file read from its header (cheap, no decode), if it is there; a file
    too large to decode safely (a decompression bomb) is reported here, before any run."""
    path = bound.values.get("path")
    base = bound.values.get("__dir__")
    if not isinstance(path, str):
        return (None, None)
    full = Path(base or ".") / path
    if not full.is_file():  # the checker reports missing files and non-regular ones (a FIFO would block) separately
        return (None, None)
    import warnings

    from PIL import Image

    limit = f"poelang reads at most {Image.MAX_IMAGE_PIXELS / 1e6:.0f} Mpx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # judged below, with a clear message
            with Image.open(full) as image:
                w, h = image.size
    except Image.DecompressionBombError:
        bound.error(f"{path} is too large to read (more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} Mpx; {limit})", "path")
        return (None, None)
    except Exception:  # unreadable: the run reports why, at the call
        return (None, None)
    if w * h > Image.MAX_IMAGE_PIXELS:
        bound.error(f"{path} is too large to read ({w * h / 1e6:.0f} Mpx; {limit})", "path")
        return (None, None)
    return (h, w)


def _loaded(kind):
    def result(bound: Bound) -> Type:
        h, w = _file_size(bound)
        given = _size(bound)
        return kind(*given) if given[0] is not None else kind(h, w)

    return result


def _load_video(bound: Bound) -> Type:
    h, w = _size(bound)
    frames = bound.values.get("frames")
    if isinstance(frames, (int, float)) and frames < 1:
        bound.error("frames must be at least 1", "frames")
    return VideoT(int(frames) if isinstance(frames, (int, float)) else None, h, w)


def _box(bound: Bound) -> Type:
    coords = [bound.values.get(p) for p in ("x0", "y0", "x1", "y1")]
    units = [bound.values.get(f"__unit_{p}") for p in ("x0", "y0", "x1", "y1")]
    for name, value, unit in zip(("x0", "y0", "x1", "y1"), coords, units):
        if unit == "%" and isinstance(value, (int, float)) and not 0 <= value <= 100:
            bound.error(f"{name} = {value:g}% is outside the canvas (0% to 100%)", name)
        if isinstance(value, (int, float)) and value < 0:
            bound.error(f"{name} must not be negative", name)
    for lo, hi in (("x0", "x1"), ("y0", "y1")):
        a, b = bound.values.get(lo), bound.values.get(hi)
        ua, ub = bound.values.get(f"__unit_{lo}"), bound.values.get(f"__unit_{hi}")
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and _same_unit(ua, ub) and a >= b:
            bound.error(f"empty box: {hi} must be greater than {lo}", hi)
    return RegionT()


def _same_unit(a, b) -> bool:
    return (a == "%") == (b == "%")


def _mask(bound: Bound) -> Type:
    h, w = _size(bound)
    return MaskT(h, w)


def _same_mask(bound: Bound) -> Type:
    radius = bound.values.get("radius")
    if isinstance(radius, (int, float)) and radius < 0:
        bound.error(f"a radius must not be negative, got {radius:g}", "radius")
    t = bound.types["mask"]
    return t if isinstance(t, MaskT) else MaskT()


def _simulate(bound: Bound) -> Type:
    h, w = _size(bound)
    frames = bound.values.get("frames")
    if isinstance(frames, (int, float)) and frames < 1:
        bound.error("frames must be at least 1", "frames")
    fps = bound.values.get("fps")
    if isinstance(fps, (int, float)) and not fps > 0:
        bound.error(f"fps must be positive, got {fps:g}", "fps")
    return SimulationT(int(frames) if isinstance(frames, (int, float)) else None, h, w)


def _render(bound: Bound) -> Type:
    h, w = _size(bound)
    return SimulationT(1, h, w)


def _object_mask(bound: Bound) -> Type:
    t = bound.types.get("sim")
    name = bound.values.get("name")
    if isinstance(name, str) and not name:
        bound.error("an object's name is not empty", "name")
    if isinstance(t, SimulationT):
        return SIMULATION_ATTRIBUTES["mask"](t)
    return MaskT()


_MESH_SUFFIXES = (".obj", ".stl", ".ply", ".glb", ".gltf")  # what stdlib_experts.scene reads


def _scene_object(size_param: str | None):
    """The rule of sphere/cube/mesh: a positive size, a known colour, a mesh file the renderer reads."""

    def rule(bound: Bound) -> Type:
        size = bound.values.get(size_param) if size_param else None
        if isinstance(size, (int, float)) and not size > 0:
            bound.error(f"{size_param} must be positive, got {size:g}", size_param)
        color = bound.values.get("color")
        if isinstance(color, str):
            from stdlib_experts.scene import parse_color  # pure Python: no genesis, no torch

            try:
                parse_color(color)
            except ValueError as e:
                bound.error(str(e), "color")
        path = bound.values.get("path")
        if isinstance(path, str) and Path(path).suffix.lower() not in _MESH_SUFFIXES:
            bound.error(f"a mesh is read from {', '.join(_MESH_SUFFIXES)} files, not '{Path(path).suffix or path}'", "path")
        name = bound.values.get("name")
        if isinstance(name, str) and not name:
            bound.error("an object's name is not empty", "name")
        return ObjectT()

    return rule


def _camera(bound: Bound) -> Type:
    fov = bound.values.get("fov")
    if isinstance(fov, (int, float)) and not 0 < fov < 180:
        bound.error(f"fov must be between 0 and 180 degrees, got {fov:g}", "fov")
    position, lookat = bound.values.get("position"), bound.values.get("lookat")
    if isinstance(position, (tuple, list)) and isinstance(lookat, (tuple, list)) and list(position) == list(lookat):
        bound.error("the camera looks at its own position: give lookat another point", "lookat")
    return CameraT()


def _frame(bound: Bound) -> Type:
    t = bound.types["video"]
    index = bound.values.get("index")
    if isinstance(t, VideoT):
        if isinstance(index, (int, float)) and t.f is not None and not -t.f <= index < t.f:
            bound.error(f"frame {index:g} is out of range for a video of {t.f} frames", "index")
        return ImageT(t.h, t.w)
    if isinstance(t, (MaskT, DepthT)):
        return type(t)(t.h, t.w)
    return ImageT()


_LOAD_PARAMS = (Param("path", "Text", doc="file path, relative to the program"),
                Param("size", "Size?", None, "resize to (h, w)"))

BUILTINS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in [
        FunctionSpec("load_image", "an RGB image from a file", _LOAD_PARAMS, _loaded(ImageT)),
        FunctionSpec("load_mask", "a mask from a grayscale file (white = 1)", _LOAD_PARAMS, _loaded(MaskT)),
        FunctionSpec("load_depth", "a depth map from a grayscale file", _LOAD_PARAMS, _loaded(DepthT)),
        FunctionSpec(
            "load_video", "frames of a video file",
            _LOAD_PARAMS + (Param("frames", "Int?", None, "number of frames to read"),),
            _load_video,
        ),
        FunctionSpec(
            "box", "a rectangle x0, y0 (top left) to x1, y1, in pixels or percent of the canvas",
            tuple(Param(n, "Length") for n in ("x0", "y0", "x1", "y1")), _box,
        ),
        FunctionSpec(
            "box_mask", "a mask of the given size that is 1 inside a region",
            (Param("region", "Region"), Param("size", "Size")), _mask,
        ),
        FunctionSpec("blur", "a Gaussian-blurred (soft) mask", (Param("mask", "Mask"), Param("radius", "Length")), _same_mask),
        FunctionSpec("dilate", "a mask grown by a radius", (Param("mask", "Mask"), Param("radius", "Length")), _same_mask),
        FunctionSpec("erode", "a mask shrunk by a radius", (Param("mask", "Mask"), Param("radius", "Length")), _same_mask),
        FunctionSpec(
            "frame", "one frame of a video (or of per-frame masks and depths)",
            (Param("video", "Video|Mask|Depth"), Param("index", "Int")), _frame,
        ),
        FunctionSpec(
            "sphere", "a sphere for the simulator or the renderer (meters; position is its centre)",
            (Param("radius", "Number", 0.1), Param("position", "Vec3", (0.0, 0.0, 0.5)), Param("velocity", "Vec3", (0.0, 0.0, 0.0)),
             Param("color", "Text", "red", "a colour name or #rrggbb"), Param("name", "Text?", None, "name of its mask")),
            _scene_object("radius"),
        ),
        FunctionSpec(
            "cube", "a cube for the simulator or the renderer (size: its edge; rotation: x-y-z Euler angles)",
            (Param("size", "Number", 0.1), Param("position", "Vec3", (0.0, 0.0, 0.5)), Param("rotation", "Vec3", (0.0, 0.0, 0.0)),
             Param("velocity", "Vec3", (0.0, 0.0, 0.0)), Param("color", "Text", "red"), Param("name", "Text?", None)),
            _scene_object("size"),
        ),
        FunctionSpec(
            "mesh", "a mesh asset (.obj, .stl, .ply, .glb, .gltf) for the simulator or the renderer, in one colour",
            (Param("path", "Text"), Param("scale", "Number", 1.0), Param("position", "Vec3", (0.0, 0.0, 0.0)),
             Param("rotation", "Vec3", (0.0, 0.0, 0.0)), Param("velocity", "Vec3", (0.0, 0.0, 0.0)), Param("name", "Text?", None),
             Param("color", "Text", "white")),
            _scene_object("scale"),
        ),
        FunctionSpec(
            "camera", "a pinhole camera at position looking at lookat, z up; fov is vertical",
            (Param("position", "Vec3", (1.5, 0.0, 1.0)), Param("lookat", "Vec3", (0.0, 0.0, 0.2)), Param("fov", "Angle", 40.0)),
            _camera,
        ),
        FunctionSpec(
            "simulate", "rigid-body simulation of objects on a ground plane (genesis-world): .rgb, .depth, .mask per frame",
            (Param("objects", "List[Object]"), Param("camera", "Camera"), Param("frames", "Int", 16),
             Param("fps", "Number", 8), Param("size", "Size", (64, 64))),
            _simulate,
        ),
        FunctionSpec(
            "render", "posed objects rendered into a camera (graphics engine): .rgb, .depth, .mask",
            (Param("objects", "List[Object]"), Param("camera", "Camera"), Param("size", "Size", (64, 64))),
            _render,
        ),
        FunctionSpec(
            "object_mask", "the mask of one named object of a simulation or a render (per frame)",
            (Param("sim", "Simulation"), Param("name", "Text")),
            _object_mask,
        ),
        FunctionSpec("trace", "the per-level trace of a sample, saved as a directory", (Param("sample", "Image|Video|Vector"),),
                     lambda b: TraceT()),
    ]
}

# Attributes of simulation results: name → type rule.
SIMULATION_ATTRIBUTES = {
    "rgb": lambda t: VideoT(t.f, t.h, t.w) if t.f != 1 else ImageT(t.h, t.w),
    "depth": lambda t: DepthT(t.h, t.w, t.f if t.f != 1 else None),
    "mask": lambda t: MaskT(t.h, t.w, t.f if t.f != 1 else None),
}



def input_file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as an input, or None. Inputs are regular files only:
    a FIFO, a terminal or a device would block a read (or never end)."""
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file not found"
    except (OSError, ValueError) as e:  # a NUL byte, a name too long, no permission
        return getattr(e, "strerror", None) or str(e)
    if stat.S_ISDIR(mode):
        return "it is a directory"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe or a device)"
    return None
