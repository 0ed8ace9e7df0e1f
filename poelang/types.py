"""Static types of poelang values, and the small type language of signatures.

Sizes are part of the types (`Image[64,64]`, `Video[16,64,64]`) when they are
known statically, so the checker can reject a mask of the wrong size or a
video expert multiplied with an image expert before any model loads. `None`
in a size means "unknown", which matches anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

Dim = Optional[int]


def _dims(*dims: Dim) -> str:
    return ",".join("?" if d is None else str(d) for d in dims)


def box_pixels(coords, h: int, w: int) -> tuple[int, int, int, int]:
    """A box's (x0, y0, x1, y1) in whole pixels of an h × w canvas, from (value, unit) pairs with unit "px"
    or "%": each edge rounded on its own. The one rule for `check` and for the run's crop."""

    def resolve(coord, extent: int) -> int:
        value, unit = coord
        return int(round(value / 100 * extent)) if unit == "%" else int(round(value))

    x0, y0, x1, y1 = coords
    return resolve(x0, w), resolve(y0, h), resolve(x1, w), resolve(y1, h)


def same_dims(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> bool:
    """Sizes agree where both are known."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


@dataclass(frozen=True)
class Type:
    def __str__(self) -> str:  # pragma: no cover - every subclass overrides
        return type(self).__name__


@dataclass(frozen=True)
class AnyT(Type):
    """The type of an expression that already failed to check: matches anything, so one mistake gives one message."""

    def __str__(self) -> str:
        return "?"


@dataclass(frozen=True)
class NumberT(Type):
    def __str__(self) -> str:
        return "Number"


@dataclass(frozen=True)
class TextT(Type):
    def __str__(self) -> str:
        return "Text"


@dataclass(frozen=True)
class BoolT(Type):
    def __str__(self) -> str:
        return "Bool"


@dataclass(frozen=True)
class NoneT(Type):
    def __str__(self) -> str:
        return "None"


@dataclass(frozen=True)
class ListT(Type):
    elem: Type
    # each item's own type when the list is written out (`[a, b]`): what a builtin's rule may read of its items
    items: Optional[tuple[Type, ...]] = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"List[{self.elem}]"


@dataclass(frozen=True)
class TupleT(Type):
    items: tuple[Type, ...]

    def __str__(self) -> str:
        return "(" + ", ".join(map(str, self.items)) + ("," if len(self.items) == 1 else "") + ")"


@dataclass(frozen=True)
class ImageT(Type):
    h: Dim = None
    w: Dim = None

    def __str__(self) -> str:
        return f"Image[{_dims(self.h, self.w)}]"


@dataclass(frozen=True)
class VideoT(Type):
    f: Dim = None
    h: Dim = None
    w: Dim = None

    def __str__(self) -> str:
        return f"Video[{_dims(self.f, self.h, self.w)}]"


@dataclass(frozen=True)
class MaskT(Type):
    """A soft mask in [0, 1]; per frame when `f` is set."""

    h: Dim = None
    w: Dim = None
    f: Dim = None

    def __str__(self) -> str:
        return f"Mask[{_dims(self.f, self.h, self.w)}]" if self.f else f"Mask[{_dims(self.h, self.w)}]"


@dataclass(frozen=True)
class DepthT(Type):
    h: Dim = None
    w: Dim = None
    f: Dim = None

    def __str__(self) -> str:
        return f"Depth[{_dims(self.f, self.h, self.w)}]" if self.f else f"Depth[{_dims(self.h, self.w)}]"


@dataclass(frozen=True)
class RegionT(Type):
    """A box, in pixels or percent of the canvas."""

    def __str__(self) -> str:
        return "Region"


@dataclass(frozen=True)
class ObjectT(Type):
    """A scene object for the simulator or the renderer (sphere, cube, mesh…); its `name=` when the
    checker knows it (name_known: a constant or no name), so a scene's names are checked before it runs."""

    name: Optional[str] = field(default=None, compare=False)
    name_known: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return "Object"


@dataclass(frozen=True)
class CameraT(Type):
    def __str__(self) -> str:
        return "Camera"


@dataclass(frozen=True)
class SimulationT(Type):
    """Frames of a simulated (or rendered, f = 1) scene: `.rgb`, `.depth`, `.mask`."""

    f: Dim = None
    h: Dim = None
    w: Dim = None
    names: Optional[tuple[Optional[str], ...]] = field(default=None, compare=False)  # its objects', when known

    def __str__(self) -> str:
        return f"Simulation[{_dims(self.f, self.h, self.w)}]"


@dataclass(frozen=True)
class Domain:
    """What a generative expert samples: an image, a video or a vector of a size."""

    kind: str  # "image" | "video" | "vector"
    shape: tuple[Dim, ...]

    def __str__(self) -> str:
        return f"{self.kind}[{_dims(*self.shape)}]"

    def compatible(self, other: "Domain") -> bool:
        return self.kind == other.kind and same_dims(self.shape, other.shape)

    def value_type(self) -> Type:
        """The type of a sample drawn over this domain."""
        if self.kind == "image":
            return ImageT(*self.shape)
        if self.kind == "video":
            return VideoT(*self.shape)
        return ListT(NumberT())


@dataclass(frozen=True)
class ExpertT(Type):
    """A generative (or simulator) expert over a domain."""

    domain: Domain
    kind: str = "generative"

    def __str__(self) -> str:
        return f"Expert[{self.domain}]"


@dataclass(frozen=True)
class RewardT(Type):
    """A discriminative expert: a score per sample; a factor only as exp(reward)."""

    kinds: tuple[str, ...]  # domain kinds it can score

    def __str__(self) -> str:
        return f"Reward[{'|'.join(self.kinds)}]"


@dataclass(frozen=True)
class ProductT(Type):
    """A product of experts, what `~` samples from."""

    domain: Domain | None

    def __str__(self) -> str:
        return f"Product[{self.domain}]" if self.domain else "Product"


@dataclass(frozen=True)
class TraceT(Type):
    def __str__(self) -> str:
        return "Trace"


@dataclass(frozen=True)
class FunctionT(Type):
    name: str

    def __str__(self) -> str:
        return f"Function[{self.name}]"


@dataclass(frozen=True)
class ModuleT(Type):
    path: str

    def __str__(self) -> str:
        return f"Module[{self.path}]"


def spatial_size(t: Type) -> tuple[Dim, Dim] | None:
    """(h, w) of an image-like value, or None for other types."""
    if isinstance(t, (ImageT, MaskT, DepthT)):
        return (t.h, t.w)
    if isinstance(t, (VideoT, SimulationT)):
        return (t.h, t.w)
    return None


# --- the type language of signatures -----------------------------------------
#
# Parameter types are written as short strings in expert and builtin
# signatures: "Text", "Number", "Int", "Length" (a number, px or %), "Angle",
# "Size" (h, w), "Vec3", "Vector" (list of numbers), "Image", "Video", "Mask",
# "Depth", "Region", "Object", "List[Object]", "Camera", "Simulation", "Any";
# alternatives with "|", and "?" for "may be none".


def _numbers(*types) -> bool:
    return all(isinstance(i, (NumberT, AnyT)) for i in types)


# One small rule per simple type name: does a value of type t (with numeric unit `unit`) fit?
_RULES: dict[str, Callable[[Type, str | None], bool]] = {
    "Any": lambda t, unit: True,
    "Number": lambda t, unit: isinstance(t, NumberT) and unit in (None, "int"),
    "Int": lambda t, unit: isinstance(t, NumberT) and unit == "int",
    "Length": lambda t, unit: isinstance(t, NumberT) and unit in (None, "int", "px", "%"),
    "Angle": lambda t, unit: isinstance(t, NumberT) and unit in (None, "int", "deg"),
    "Text": lambda t, unit: isinstance(t, TextT),
    "Bool": lambda t, unit: isinstance(t, BoolT),
    "Size": lambda t, unit: isinstance(t, TupleT) and len(t.items) == 2 and _numbers(*t.items),
    "Vec3": lambda t, unit: isinstance(t, TupleT) and len(t.items) == 3 and _numbers(*t.items),
    "Vector": lambda t, unit: (isinstance(t, ListT) and _numbers(t.elem)) or (isinstance(t, TupleT) and _numbers(*t.items)),
    "Matrix": lambda t, unit: isinstance(t, ListT) and isinstance(t.elem, (ListT, TupleT, AnyT)),
    **{name: (lambda cls: lambda t, unit: isinstance(t, cls))(cls) for name, cls in {
        "Image": ImageT, "Video": VideoT, "Mask": MaskT, "Depth": DepthT, "Region": RegionT,
        "Object": ObjectT, "Camera": CameraT, "Simulation": SimulationT}.items()},
}
_WORDS = {"Int": "an integer", "Length": "a length (px or %)", "Angle": "an angle (deg)",
          "Size": "a size (h, w)", "Vec3": "a 3-vector (x, y, z)"}


@dataclass(frozen=True)
class ParamType:
    """A parameter type of a signature, parsed once when the signature is built.

    ``alternatives`` are simple names ("Length") or, for ``List[...]``, a
    nested ParamType; ``optional`` is the trailing "?" (none is accepted).
    """

    text: str
    alternatives: tuple[str | "ParamType", ...]
    optional: bool

    @classmethod
    def parse(cls, text: str) -> "ParamType":
        """Parse ``text``; ValueError for a name the type language does not have."""
        body = text.strip()
        optional = body.endswith("?")
        alternatives = []
        for part in body.rstrip("?").split("|"):
            part = part.strip()
            if part.startswith("List[") and part.endswith("]"):
                alternatives.append(cls.parse(part[5:-1]))
            elif part in _RULES:
                alternatives.append(part)
            else:
                raise ValueError(f"unknown type in signature: {part!r} (in {text!r})")
        return cls(text, tuple(alternatives), optional)

    def accepts(self, t: Type, unit: str | None = None) -> bool:
        """Whether a value of type `t` (with numeric unit `unit`) fits."""
        if isinstance(t, AnyT) or (self.optional and isinstance(t, NoneT)):
            return True
        return any(self._accepts_one(alt, t, unit) for alt in self.alternatives)

    @staticmethod
    def _accepts_one(alt, t: Type, unit: str | None) -> bool:
        if isinstance(alt, ParamType):  # List[alt]
            return isinstance(t, ListT) and (isinstance(t.elem, AnyT) or alt.accepts(t.elem))
        return _RULES[alt](t, unit)

    def describe(self) -> str:
        """In words, for messages: "a length (px or %) or an integer or none"."""
        words = [f"List[{a.text}]" if isinstance(a, ParamType) else _WORDS.get(a, a) for a in self.alternatives]
        return " or ".join(words) + (" or none" if self.optional else "")

