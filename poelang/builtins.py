"""The core builtin value functions: loading files, boxes, mask algebra, frames, traces.

Each is a :class:`FunctionSpec`: a signature plus a typing rule (what the call
returns, and the mistakes it can see statically) and a loader naming the code
that computes the value at run time in :mod:`poelang.values`, imported only by
``run``. Libraries add builtins the same way, through the entry point group
``poelang.builtins`` (the standard library's scene builtins:
:mod:`poelang.stdlib.scene_builtins`); the registry holds them all.
"""
from __future__ import annotations

from pathlib import Path

from poelang.experts.spec import Bound, FunctionSpec, Param
from poelang.types import DepthT, ImageT, MaskT, RegionT, TraceT, Type, VideoT



def size_argument(bound: Bound, param: str = "size") -> tuple[int | None, int | None]:
    """The (h, w) a size argument gives, (None, None) when not a constant; a non-positive size is an error."""
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
    if not isinstance(path, str):
        return (None, None)
    full = bound.base_dir / path
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
        given = size_argument(bound)
        return kind(*given) if given[0] is not None else kind(h, w)

    return result


def _load_video(bound: Bound) -> Type:
    h, w = size_argument(bound)
    frames = bound.values.get("frames")
    if isinstance(frames, (int, float)) and frames < 1:
        bound.error("frames must be at least 1", "frames")
    return VideoT(int(frames) if isinstance(frames, (int, float)) else None, h, w)


def _box(bound: Bound) -> Type:
    coords = [bound.values.get(p) for p in ("x0", "y0", "x1", "y1")]
    units = [bound.units.get(p) for p in ("x0", "y0", "x1", "y1")]
    for name, value, unit in zip(("x0", "y0", "x1", "y1"), coords, units):
        if unit == "%" and isinstance(value, (int, float)) and not 0 <= value <= 100:
            bound.error(f"{name} = {value:g}% is outside the canvas (0% to 100%)", name)
        if isinstance(value, (int, float)) and value < 0:
            bound.error(f"{name} must not be negative", name)
    for lo, hi in (("x0", "x1"), ("y0", "y1")):
        a, b = bound.values.get(lo), bound.values.get(hi)
        ua, ub = bound.units.get(lo), bound.units.get(hi)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and _same_unit(ua, ub) and a >= b:
            bound.error(f"empty box: {hi} must be greater than {lo}", hi)
    return RegionT()


def _same_unit(a, b) -> bool:
    return (a == "%") == (b == "%")


def _mask(bound: Bound) -> Type:
    h, w = size_argument(bound)
    return MaskT(h, w)


def _same_mask(bound: Bound) -> Type:
    radius = bound.values.get("radius")
    if isinstance(radius, (int, float)) and radius < 0:
        bound.error(f"a radius must not be negative, got {radius:g}", "radius")
    t = bound.types["mask"]
    return t if isinstance(t, MaskT) else MaskT()


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

CORE_BUILTINS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in [
        FunctionSpec("load_image", "an RGB image from a file", _LOAD_PARAMS, _loaded(ImageT), "poelang.values:load_image"),
        FunctionSpec("load_mask", "a mask from a grayscale file (white = 1)", _LOAD_PARAMS, _loaded(MaskT), "poelang.values:load_mask"),
        FunctionSpec("load_depth", "a depth map from a grayscale file", _LOAD_PARAMS, _loaded(DepthT), "poelang.values:load_depth"),
        FunctionSpec(
            "load_video", "frames of a video file",
            _LOAD_PARAMS + (Param("frames", "Int?", None, "number of frames to read"),),
            _load_video, "poelang.values:load_video", progress="reading",
        ),
        FunctionSpec(
            "box", "a rectangle x0, y0 (top left) to x1, y1, in pixels or percent of the canvas",
            tuple(Param(n, "Length") for n in ("x0", "y0", "x1", "y1")), _box, "poelang.values:box",
        ),
        FunctionSpec(
            "box_mask", "a mask of the given size that is 1 inside a region",
            (Param("region", "Region"), Param("size", "Size")), _mask, "poelang.values:box_mask",
        ),
        FunctionSpec("blur", "a Gaussian-blurred (soft) mask", (Param("mask", "Mask"), Param("radius", "Length")), _same_mask, "poelang.values:blur"),
        FunctionSpec("dilate", "a mask grown by a radius", (Param("mask", "Mask"), Param("radius", "Length")), _same_mask, "poelang.values:dilate"),
        FunctionSpec("erode", "a mask shrunk by a radius", (Param("mask", "Mask"), Param("radius", "Length")), _same_mask, "poelang.values:erode"),
        FunctionSpec(
            "frame", "one frame of a video (or of per-frame masks and depths)",
            (Param("video", "Video|Mask|Depth"), Param("index", "Int")), _frame, "poelang.values:frame",
        ),
        FunctionSpec("trace", "the per-level trace of a sample, saved as a directory", (Param("sample", "Image|Video|Vector"),),
                     lambda b: TraceT(), "poelang.values:trace"),
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
