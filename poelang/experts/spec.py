"""Signatures of experts and builtin functions.

A signature is data the checker reads (parameter names, types, defaults,
domain, a one-line doc); it never imports torch. The code that runs an expert
is named by a ``"module:function"`` string and imported only by ``run``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from poelang.types import Domain, ParamType, Type


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """One parameter of a signature; its type (see :class:`poelang.types.ParamType`) is
    parsed here, so a mistake in a signature fails when its module is imported."""

    name: str
    type: str
    default: Any = REQUIRED
    doc: str = ""
    parsed: ParamType = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parsed", ParamType.parse(self.type))

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        text = f"{self.name}: {self.type}"
        if not self.required:
            text += f" = {self.default_text()}"
        return text

    def default_text(self) -> str:
        """The default as a program writes it ("" when the parameter is required)."""
        return "" if self.required else _literal(self.default)


def _literal(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        from poelang.syntax.fmt import quote

        return quote(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


@dataclass
class Bound:
    """What the checker knows about one call's arguments.

    `types` has every parameter (defaults filled in); `values` holds the
    literal Python value of an argument when it is a constant (numbers,
    strings, tuples, lists of those), else None; `units` the unit of a
    number argument as written.
    """

    types: dict[str, Type]
    values: dict[str, Any]
    errors: list[tuple[str, str | None]] = field(default_factory=list)
    units: dict[str, str | None] = field(default_factory=dict)  # a number's unit as written: "%", "px", "deg", "int"
    base_dir: Path = Path(".")  # where the program's relative paths are read from

    def error(self, message: str, param: str | None = None) -> None:
        """Report a mistake, pointing at `param`'s argument when given."""
        self.errors.append((message, param))


@dataclass(frozen=True)
class Weights:
    """A model an expert's loader reads, as its spec finds it on this machine (never downloading).

    model: what the program names (a Hugging Face id, a folder); found: where
    it is here, None when it is missing; fetch: the shell command that gets it;
    downloads: the loader will fetch a missing one itself (the user allowed it).
    """

    model: str
    found: str | None
    fetch: str
    downloads: bool = False


# given an expert's arguments (constants; None where a value is computed at run time) and the program's folder
WeightsRule = Callable[[dict[str, Any], Path], "list[Weights]"]


@dataclass(frozen=True)
class ExpertSpec:
    """One expert of the library.

    kind: "generative" (a flow model or analytic density), "simulator" (a
    Gaussian expert around simulated frames) or "reward" (a discriminative
    expert, a factor only as ``exp(reward)``).
    """

    name: str
    kind: Literal["generative", "simulator", "reward"]
    doc: str
    params: tuple[Param, ...]
    loader: str  # "module:function"; called as function(args: dict, context) at run time
    domain: Callable[[Bound], Domain] | None = None  # for generative and simulator experts
    scores: tuple[str, ...] = ("image",)  # for rewards: the domain kinds it scores
    family: str = ""
    hard: bool = False  # rewards: may return -inf (a hard constraint), so a negative weight is meaningless
    check: Callable[[Bound], None] | None = None  # more argument checks (a closed vocabulary, say)
    weights: WeightsRule | None = None  # the models the loader will read, for `check --weights` and before a run

    def signature(self) -> str:
        return f"{self.name}(" + ", ".join(p.describe() for p in self.params) + ")"

    def load_function(self) -> Callable:
        return load(self.loader)


@dataclass(frozen=True)
class FunctionSpec:
    """A builtin value function (load_image, box, blur, simulate, …): its signature,
    its typing rule (what a call returns, and the mistakes it can see statically)
    and the code that computes the value at run time, named by ``loader``."""

    name: str
    doc: str
    params: tuple[Param, ...]
    result: Callable[[Bound], Type]
    loader: str  # "module:function"; called as function(context, **args) at run time
    progress: str = ""  # a builtin slow enough for a progress line of its own: the verb it starts with

    def signature(self) -> str:
        return f"{self.name}(" + ", ".join(p.describe() for p in self.params) + ")"

    def load_function(self) -> Callable:
        return load(self.loader)


def load(loader: str) -> Callable:
    """The function a ``"module:function"`` string names (imported now, at run time)."""
    module, _, attr = loader.partition(":")
    return getattr(importlib.import_module(module), attr)


# --- helpers for domain rules --------------------------------------------------


def size_of(bound: Bound, *params: str, size_param: str = "size") -> tuple[int | None, int | None]:
    """(h, w) from the first spatial argument whose size is known, else from `size_param`."""
    from poelang.types import spatial_size

    for name in params:
        size = spatial_size(bound.types.get(name)) if name in bound.types else None
        if size and size[0] is not None:
            return size
    value = bound.values.get(size_param)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    return (None, None)


def image_domain(*params: str, size_param: str = "size") -> Callable[[Bound], Domain]:
    """A domain rule: an image the size of the first known spatial argument, else `size`."""

    def rule(bound: Bound) -> Domain:
        return Domain("image", size_of(bound, *params, size_param=size_param))

    return rule


def video_domain(*params: str, frames_param: str = "frames", size_param: str = "size") -> Callable[[Bound], Domain]:
    """A domain rule for video experts: frames × the size of the first known spatial argument."""
    def rule(bound: Bound) -> Domain:
        frames = None
        for name in params:
            t = bound.types.get(name)
            if getattr(t, "f", None) is not None:
                frames = t.f
                break
        if frames is None and isinstance(bound.values.get(frames_param), (int, float)):
            frames = int(bound.values[frames_param])
        h, w = size_of(bound, *params, size_param=size_param)
        return Domain("video", (frames, h, w))

    return rule
