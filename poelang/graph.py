"""The typed expert graph: what a program means, independent of its syntax.

Pydantic models with a canonical JSON form (sorted keys, nodes in definition
order, no source positions) that golden tests pin and reviewers read as a
diff. Two programs that format to the same text, or a program and the same
graph built from Python operators, have equal graphs.
"""
from __future__ import annotations

import json
from typing import Any, Literal, Union

from typing_extensions import TypeAliasType

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class ValueNode(_Model):
    """A value computed before sampling: a loaded image, a box, a blurred mask, a simulation…"""

    id: str
    op: str
    args: dict[str, ArgValue]
    type: str


class ExpertNode(_Model):
    """One expert of the library with all its arguments (defaults filled in)."""

    id: str
    expert: str
    kind: Literal["generative", "simulator", "reward"]
    args: dict[str, ArgValue]
    domain: str | None  # e.g. "image[64,64]"; None for rewards


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


class SamplerSettings(_Model):
    """How a product is sampled; every field has a default that works.

    The names are what programs write in ``with { ... }`` and what
    ``--set key=value`` overrides.
    """

    levels: int = Field(50, ge=1, le=100_000, description="annealing levels T")
    schedule: Union[Literal["linear", "flux_shift"], list[float]] = Field("linear", description="σ schedule, or σ values from 1 to 0")
    shift: Union[float, Literal["auto"]] = Field(
        "auto", description="time shift of the flux_shift schedule; auto: the first expert's (FLUX: from its token count), else 3")
    particles: int = Field(8, ge=1, le=65_536, description="particles L")
    mcmc: Literal["auto", "none", "langevin", "mala", "hmc"] = Field(
        "auto", description="MCMC kernel at each level; auto: MALA when every expert has a density, else Langevin")
    mcmc_steps: int = Field(1, ge=0, le=10_000, description="MCMC steps K per level")
    step_size: float = Field(0.5, gt=0, description="MCMC step size η/variance, relative to σ² (stable below 2)")
    leapfrog: int = Field(3, ge=1, le=1000, description="HMC leapfrog steps")
    cond_updates: int = Field(2, ge=0, le=1000, description="conditional-expert updates per level (paper Eq. 7)")
    cond_lambda: float = Field(0.1, ge=0, description="step λ of the conditional updates")
    resample: Literal["none", "multinomial", "systematic", "residual", "stratified", "median"] = Field(
        "systematic", description="resampling scheme; median: the paper's keep-the-top-half scheme")
    resample_when: Literal["always", "ess", "times"] = Field("ess", description="resample every level, under an ESS threshold, or at listed times")
    ess_threshold: float = Field(0.5, gt=0, le=1, description="resample when ESS < threshold · L")
    resample_times: list[float] = Field(default_factory=list, description="fractions of the schedule in (0, 1) to resample at")
    weighting: Literal["exact", "greedy"] = Field("exact", description="exact: telescoping weights, output drawn from the weighted particles; greedy: the paper's, output the best")
    annealing: Literal["auto", "ais", "flow", "fk"] = Field(
        "auto", description="ais: exact annealed importance weights (analytic experts); flow: the paper's Euler + MCMC path; "
                            "fk: Feynman-Kac weighted SDE, exact from velocities only")
    fk_noise: float = Field(1.0, ge=0, description="annealing = fk: the SDE's noise η (0: ODE along the velocity sum)")
    adaptive_temper: bool = Field(False, description="temper the reward weight by bisection on ESS")
    init: Literal["noise", "inversion"] = Field(
        "noise", description="start from Gaussian noise, or from the flow-ODE inversion of `invert`")
    invert: Ref | list[float] | None = Field(
        None, description="init = inversion: the image, video (or vector) the particles start from, inverted along the product's flow")
    invert_iters: int = Field(
        2, ge=0, le=100, description="fixed-point iterations per inversion step (0: plain Euler, the paper's)")
    path: Literal["joint", "autoregressive"] = Field(
        "joint", description="joint: anneal the whole canvas; autoregressive: a video chunk by chunk (paper App. C)")
    chunk: int = Field(1, ge=1, le=100_000, description="path = autoregressive: frames per chunk (latent frames with a video codec)")
    sim_updates: int = Field(
        0, ge=0, le=1000, description="gradient updates per level on the simulator experts' Gaussian loss (paper App. C: 8)")
    sim_lambda: float = Field(0.5, gt=0, le=2, description="step of the simulator updates, relative to σ²")
    seed: int = Field(0, ge=0, description="random seed: the same program and seed give the same result")
    output: Literal["auto", "best", "all", "sample"] = Field("auto", description="auto: sample for exact weighting, best for greedy")
    num_samples: int = Field(1, ge=1, description="draws from the weighted particles when output = sample")
    max_batch: int | None = Field(None, ge=1, description="split expert calls into batches of at most this many particles")

    @field_validator("resample_times")
    @classmethod
    def _times_inside(cls, times: list[float]) -> list[float]:
        for t in times:
            if not 0 < t < 1:
                raise ValueError(f"resampling time {t:g} is outside (0, 1)")
        return sorted(times)

    @field_validator("shift")
    @classmethod
    def _shift_positive(cls, shift):
        if shift != "auto" and not shift > 0:
            raise ValueError("must be positive, or auto")
        return shift

    @field_validator("schedule")
    @classmethod
    def _schedule_decreasing(cls, schedule):
        if isinstance(schedule, list):
            if len(schedule) < 2:
                raise ValueError("a σ list needs at least two values")
            if any(not 0 <= s <= 1 for s in schedule):
                raise ValueError("σ values must lie in [0, 1]")
            if any(a <= b for a, b in zip(schedule, schedule[1:])):
                raise ValueError("σ values must decrease")
        return schedule

    @model_validator(mode="after")
    def _resolve(self) -> "SamplerSettings":
        if self.output == "auto":
            self.output = "sample" if self.weighting == "exact" else "best"
        if self.resample_when == "times" and not self.resample_times:
            raise ValueError("resample_when = times needs resample_times")
        if self.resample == "median" and not self.resample_times:
            raise ValueError("resample = median (the paper's scheme) needs resample_times")
        if self.init == "inversion" and self.invert is None:
            raise ValueError("init = inversion needs invert = <the image or video to invert>")
        if self.invert is not None and self.init != "inversion":
            raise ValueError("invert is used by init = inversion; add init = inversion")
        return self


SETTING_NAMES = tuple(SamplerSettings.model_fields)


class SampleNode(_Model):
    """`name ~ product with { settings }`."""

    id: str
    domain: str
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
    values: list[ValueNode] = Field(default_factory=list)
    experts: list[ExpertNode] = Field(default_factory=list)
    samples: list[SampleNode] = Field(default_factory=list)
    outputs: list[OutputNode] = Field(default_factory=list)

    def to_json(self) -> str:
        """The canonical JSON: sorted keys, two-space indent, a final newline."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

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
