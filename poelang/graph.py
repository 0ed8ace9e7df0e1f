"""The typed expert graph: what a program means, independent of its syntax.

Pydantic models with a canonical JSON form (sorted keys, nodes in definition
order, no source positions) that golden tests pin and reviewers read as a
diff. Two programs that format to the same text, or a program and the same
graph built from Python operators, have equal graphs.
"""
from __future__ import annotations

import json
from copy import copy
from typing import Any, Literal, Union

from typing_extensions import TypeAliasType

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from poelang.infer.settings import Settings, check_rules, program_fields, resolved_output

GRAPH_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Ref(_Model):
    """A reference to another node of the graph, by id."""

    ref: str


class Quantity(_Model):
    """A number with a unit: 40% (of the canvas), 12px, 30deg."""

    value: float
    unit: Literal["%", "px", "deg"]


ArgValue = TypeAliasType("ArgValue", Union[bool, int, float, str, None, Ref, Quantity, "list[ArgValue]"])


class Domain(_Model):
    """What a sample (or a generative expert) ranges over: an image, a video or a vector of a size.

    ``shape`` is (h, w) for an image, (frames, h, w) for a video and (d,) for a
    vector; a size the checker could not know (an input file it could not
    read) is None, and taken from the input at run time.
    """

    kind: Literal["image", "video", "vector"]
    shape: list[int | None]

    def __str__(self) -> str:
        return f"{self.kind}[{','.join('?' if d is None else str(d) for d in self.shape)}]"

    def event_shape(self) -> tuple[int, ...] | None:
        """The tensor shape of one sample: vector[d] → (d,), image[h,w] → (3,h,w), video[f,h,w] → (f,3,h,w);
        None while a size is unknown (an input file the checker could not read)."""
        if None in self.shape:
            return None
        sizes = tuple(int(d) for d in self.shape)
        return {"vector": sizes, "image": (3, *sizes), "video": (sizes[0], 3, *sizes[1:])}[self.kind]


FILE_FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".mp4": "mp4", ".gif": "gif",
                ".npy": "npy", ".safetensors": "safetensors"}
"""The formats `save … to PATH` writes, by the path's suffix (a trace is a folder, see OutputNode)."""


class ValueNode(_Model):
    """A value computed before sampling: a loaded image, a box, a blurred mask, a simulation…"""

    id: str
    op: str
    args: dict[str, ArgValue]
    type: str


class ParamNode(_Model):
    """`param name = default`: a parameter of the program and the value this graph was built with."""

    id: str
    type: str
    value: ArgValue
    default: ArgValue


class ExpertNode(_Model):
    """One expert of the library with all its arguments (defaults filled in)."""

    id: str
    expert: str
    kind: Literal["generative", "simulator", "reward"]
    args: dict[str, ArgValue]
    domain: Domain | None  # None for rewards


class Factor(_Model):
    """A generative factor p_i(x_i | x_pa(i))^exponent of the product."""

    expert: str
    exponent: float = 1.0
    region: Ref | None = None
    region_kind: Literal["box", "mask"] | None = None  # crop-and-pad, or soft weighting
    parents: list[str] = Field(default_factory=list)


class Reward(_Model):
    """A discriminative factor exp(weight · r(x))."""

    expert: str
    weight: float = 1.0


class _ProgramSettings(_Model):
    """How a product is sampled; every field has a default that works.

    The fields are the program-visible subset of the engine's one schema,
    :class:`poelang.infer.settings.Settings`, under the names programs write
    in ``with { ... }`` and ``--set key=value``; ranges, descriptions and the
    rules between settings are the engine's own.
    """

    @model_validator(mode="after")
    def _rules(self):
        check_rules(_EngineView(self))
        self.output = resolved_output(self.output, self.weighting)
        return self

    def engine_view(self) -> "_EngineView":
        """These settings read under the engine's field names (for the engine's rules)."""
        return _EngineView(self)

    def engine_values(self) -> dict[str, Any]:
        """The settings under the engine's field names (``invert`` as the graph has it: a Ref or numbers)."""
        return {engine: getattr(self, name) for name, engine in PROGRAM_SETTINGS.items()}


class _EngineView:
    """Program settings read under the engine's field names, for the shared rules."""

    def __init__(self, settings: _ProgramSettings):
        self._settings = settings

    def __getattr__(self, engine_name: str) -> Any:
        return getattr(self._settings, ENGINE_TO_PROGRAM.get(engine_name, engine_name))


PROGRAM_SETTINGS = program_fields()  # program name → engine field name
ENGINE_TO_PROGRAM = {engine: name for name, engine in PROGRAM_SETTINGS.items()}
_PROGRAM_TYPES = {  # where a program's value differs in kind from the engine's (tensors there, graph values here)
    "init": Literal["noise", "inversion"],
    "invert": Union[Ref, list[float], None],
}


def _program_field(name: str, engine_name: str):
    info = copy(Settings.model_fields[engine_name])
    info.json_schema_extra = None  # the engine's marker of what programs see
    return (_PROGRAM_TYPES.get(name, info.annotation), info)


SamplerSettings = create_model(
    "SamplerSettings", __base__=_ProgramSettings, __module__=__name__, __doc__=_ProgramSettings.__doc__,
    **{name: _program_field(name, engine) for name, engine in PROGRAM_SETTINGS.items()})
SETTING_NAMES = tuple(PROGRAM_SETTINGS)


class SampleNode(_Model):
    """`name ~ product with { settings }`."""

    id: str
    domain: Domain
    factors: list[Factor]
    rewards: list[Reward]
    settings: SamplerSettings


class OutputNode(_Model):
    """`save value to "path"`."""

    value: Ref
    path: str
    format: Literal["png", "jpg", "mp4", "gif", "npy", "safetensors", "trace"]
    options: dict[str, ArgValue] = Field(default_factory=dict)


class Graph(_Model):
    version: int = GRAPH_VERSION
    params: list[ParamNode] = Field(default_factory=list)
    values: list[ValueNode] = Field(default_factory=list)
    experts: list[ExpertNode] = Field(default_factory=list)
    samples: list[SampleNode] = Field(default_factory=list)
    outputs: list[OutputNode] = Field(default_factory=list)

    def to_json(self) -> str:
        """The canonical JSON: sorted keys, two-space indent, a final newline.

        A graph without parameters leaves the key out, so that the graphs of
        programs written before parameters existed read as they always did.
        """
        data = self.model_dump(mode="json", exclude={"params"} if not self.params else None)
        return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Graph":
        return cls.model_validate_json(text)

    def node(self, node_id: str) -> ValueNode | ExpertNode | SampleNode | None:
        for node in (*self.values, *self.experts, *self.samples):
            if node.id == node_id:
                return node
        return None

    def to_dot(self) -> str:
        """Graphviz: values → experts → samples, parent conditioning as dashed edges."""
        lines = ["digraph poelang {", "  rankdir=LR;", "  node [fontname=Helvetica];"]

        def refs(value: Any):
            if isinstance(value, Ref):
                yield value.ref
            elif isinstance(value, list):
                for item in value:
                    yield from refs(item)

        for v in self.values:
            lines.append(f'  "{v.id}" [shape=note, label="{v.id}\\n{v.op}: {v.type}"];')
            for arg in v.args.values():
                for r in refs(arg):
                    lines.append(f'  "{r}" -> "{v.id}";')
        for e in self.experts:
            shape = "diamond" if e.kind == "reward" else "box"
            lines.append(f'  "{e.id}" [shape={shape}, label="{e.id}\\n{e.expert} ({e.kind})"];')
            for arg in e.args.values():
                for r in refs(arg):
                    lines.append(f'  "{r}" -> "{e.id}";')
        for s in self.samples:
            lines.append(f'  "{s.id}" [shape=ellipse, style=bold, label="{s.id} ~ {s.domain}"];')
            for f in s.factors:
                label = f"^{f.exponent:g}" if f.exponent != 1 else ""
                label += f" [{f.region.ref}]" if f.region else ""
                lines.append(f'  "{f.expert}" -> "{s.id}" [label="{label.strip()}"];')
                for p in f.parents:
                    lines.append(f'  "{p}" -> "{f.expert}" [style=dashed, label="given"];')
            for r in s.rewards:
                lines.append(f'  "{r.expert}" -> "{s.id}" [label="exp({r.weight:g}·r)", style=dotted];')
        for o in self.outputs:
            lines.append(f'  "{o.path}" [shape=folder];')
            lines.append(f'  "{o.value.ref}" -> "{o.path}";')
        lines.append("}")
        return "\n".join(lines) + "\n"


def json_schema() -> str:
    return json.dumps(Graph.model_json_schema(), sort_keys=True, indent=2) + "\n"
