"""Binds a checked graph to experts and the inference engine, and writes outputs.

graph → values (poelang.values) → experts (registry loaders) → a
:class:`poelang.infer.Problem` per sample → :func:`poelang.infer.sample` →
files. The engine knows nothing of the language; this module is the only
place where the two meet. Failures the user can cause (a missing file, an
expert that cannot load, a sampler that loses every particle) become a
:class:`RunError` pointing at the statement, never a traceback.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from poelang import graph as g
from poelang import values as V
from poelang.diagnostics import Diagnostic, PoeError, Span
from poelang.experts.registry import default_registry
from poelang.experts.unavailable import ExpertUnavailable
from poelang.latents import _decode, _decode_result, _Decoded, shared_codec  # noqa: F401 (_Decoded: tests)
from poelang.memory import OutOfMemory, sample_within_memory
from poelang.progress import NORMAL, QUIET, Reporter
from poelang.saving import Saver
from poelang.results import LevelCallback, RunResult


class RunError(PoeError):
    """A run-time failure, rendered like a diagnostic at the statement that caused it."""


@dataclass
class ExpertContext:
    """What a loader is told about the expert it builds."""

    name: str
    event_shape: tuple[int, ...]
    device: str
    base_dir: Path
    canvas: tuple[int, ...] = ()  # the sample's pixel shape
    region: tuple[int, int, int, int] | None = None  # (y0, y1, x0, x1) in pixels when the factor is cropped
    trust_remote_code: bool = False  # may a model folder run its own Python code: the runner's decision, never the program's


def sample_seed(seed: int, name: str) -> int:
    """The seed of one `~` statement: its own stream, derived from the base seed and the sample's name,
    so that two samples are independent (and a sample's draws do not change when another is added)."""
    import hashlib

    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63 - 1)


def engine_settings(s: g.SamplerSettings, invert=None, name: str | None = None):
    """The engine's settings: the program's, under the engine's names; ``invert``
    is the canvas ``init = inversion`` starts from, already in the experts'
    space (see :meth:`inversion_input`). With the sample's ``name``, its seed is
    the sample's own stream (:func:`sample_seed`)."""
    from poelang import infer

    values = s.engine_values()
    if name is not None:
        values["seed"] = sample_seed(values["seed"], name)
    return infer.Settings(**{**values, "invert": invert})


def _chunks(node: g.SampleNode, problem) -> int:
    """How many times the sample runs levels 0..T: once, or once per chunk on the autoregressive path."""
    from poelang import infer

    if node.settings.path != "autoregressive":
        return 1
    return len(infer.chunk_frames(problem.shape[0], min(node.settings.chunk, problem.shape[0])))


class Interpreter:
    def __init__(self, program, device: str = "cpu", progress: bool = False,
                 callback: LevelCallback | None = None, reporter: Reporter | None = None,
                 decode_x0_hat: bool = False, out_dir: str | Path = ".", trust_remote_code: bool = False,
                 on_write: Callable[[str], None] | None = None):
        self.program = program
        self.decode_x0_hat = decode_x0_hat  # the callback sees x0_hat in pixels, not in a codec's latents
        self.out_dir = Path(out_dir)
        self.trust_remote_code = trust_remote_code
        self.on_write = on_write
        self.graph: g.Graph = program.graph
        self.device = device
        self.reporter = reporter or Reporter(NORMAL if progress else QUIET)
        self.callback = callback
        self.registry = default_registry()
        self.context = V.Context(program.base_dir, device)
        self._values: dict[str, Any] = {}
        self._experts: dict[str, Any] = {}
        self.latent_samples: dict[str, Any] = {}  # sample id → the codec its trace is still encoded in
        self.result = RunResult()

    # --- errors ---------------------------------------------------------------

    def fail(self, message: str, node_id: str | None) -> RunError:
        span = self.program.spans.get(node_id) if node_id else None
        diagnostic = Diagnostic("error", message, span or Span(self.program.file, 0, 0, 0, 0))
        return RunError([diagnostic], self.program.sources)

    # --- values ---------------------------------------------------------------

    def resolve(self, arg: g.ArgValue) -> Any:
        if isinstance(arg, g.Ref):
            return self.value(arg.ref)
        if isinstance(arg, g.Quantity):
            return V.Quantity(arg.value, arg.unit)
        if isinstance(arg, list):
            return [self.resolve(a) for a in arg]
        return arg

    def value(self, node_id: str) -> Any:
        if node_id in self._values:
            return self._values[node_id]
        node = self.graph.node(node_id)
        if isinstance(node, g.SampleNode):
            result = self.run_sample(node)
            value = result.samples[0]
        elif isinstance(node, g.ValueNode):
            args = {k: self.resolve(v) for k, v in node.args.items()}
            builtin = self.registry.builtins.get(node.op)
            function = builtin.load_function() if builtin else V.OPS[node.op]
            try:
                with self.reporter, self._step_for(builtin, node.id):
                    value = function(self.context, **args)
            except (FileNotFoundError, ExpertUnavailable, ValueError) as e:
                raise self.fail(str(e), node_id) from None
            except MemoryError:
                raise self.fail(f"not enough memory to compute '{node_id}'", node_id) from None
        else:
            raise self.fail(f"'{node_id}' is an expert, not a value", node_id)
        self._values[node_id] = value
        return value

    def _step_for(self, builtin, node_id: str):
        """A progress line for the builtins that take a while (their spec's ``progress`` verb), nothing for the rest."""
        verb = builtin.progress if builtin else ""
        return self.reporter.step(f"{verb} {node_id}") if verb else nullcontext()

    # --- experts --------------------------------------------------------------

    def expert(self, node_id: str, shape: tuple[int, ...], region: tuple[int, int, int, int] | None = None) -> Any:
        if (node_id, region) in self._experts:
            return self._experts[(node_id, region)]
        node = self.graph.node(node_id)
        assert isinstance(node, g.ExpertNode)
        spec = self.registry.get(node.expert)
        if spec is None:
            raise self.fail(f"expert '{node.expert}' is not registered in this environment", node_id)
        args = {k: self.resolve(v) for k, v in node.args.items()}
        own_shape = (node.domain.event_shape() if node.domain else None) or shape
        if region is not None:
            y0, y1, x0, x1 = region
            own_shape = (*shape[:-2], y1 - y0, x1 - x0)
        context = ExpertContext(node_id, own_shape, self.device, self.program.base_dir, tuple(shape), region,
                                trust_remote_code=self.trust_remote_code)
        try:
            with self.reporter.step(f"loading {node_id} ({node.expert})"):
                expert = spec.load_function()(args, context)
        except ExpertUnavailable as e:
            raise self.fail(f"cannot load '{node_id}' ({node.expert}): {e}", node_id) from None
        except (ValueError, OSError) as e:
            raise self.fail(f"cannot load '{node_id}' ({node.expert}): {e}", node_id) from None
        self._experts[(node_id, region)] = expert
        return expert

    # --- samples --------------------------------------------------------------

    def shape(self, node: g.SampleNode) -> tuple[int, ...]:
        """The sample's event shape; when the checker could not tell a size (an input file it could not
        read), the shape of the input value itself, which also reports why the file cannot be read."""
        known = node.domain.event_shape()
        if known is not None:
            return known
        kind = node.domain.kind
        for f in node.factors:
            expert = self.graph.node(f.expert)
            for arg in expert.args.values() if isinstance(expert, g.ExpertNode) else ():
                if isinstance(arg, g.Ref) and isinstance(self.graph.node(arg.ref), g.ValueNode):
                    shape = tuple(getattr(self.value(arg.ref), "shape", ()))
                    if kind == "image" and len(shape) in (2, 3):
                        return (3, *shape[-2:])
                    if kind == "video" and len(shape) == 4:
                        return shape
        raise self.fail(f"cannot tell the size of '{node.id}' ({node.domain}); give the input a size=(h, w)", node.id)

    def problem(self, node: g.SampleNode):
        """The engine's Problem for a sample, and the codec its experts sample in (None: pixels)."""
        from poelang import infer

        shape = self.shape(node)
        index = {f.expert: i for i, f in enumerate(node.factors)}
        loaded = []
        for f in node.factors:
            box, mask = None, None
            if f.region_kind == "box":
                x0, y0, x1, y1 = self.value(f.region.ref).pixels(*shape[-2:])
                box = (y0, y1, x0, x1)
            elif f.region_kind == "mask":
                mask = self.value(f.region.ref).float()
            loaded.append((f, self.expert(f.expert, shape, box), box, mask))
        codec = self.codec(node, [(f.expert, e) for f, e, _, _ in loaded])
        canvas = codec.latent_shape(shape) if codec else shape
        factors = []
        for f, expert, box, mask in loaded:
            region = None
            if box is not None:
                y0, y1, x0, x1 = codec.latent_box(codec.snap(box, shape[-2:])) if codec else box
                region = (slice(None),) * (len(canvas) - 2) + (slice(y0, y1), slice(x0, x1))
            if mask is not None:
                mask = codec.pool_mask(mask) if codec else mask
                mask = mask.expand(canvas).clone() if mask.dim() == 2 else mask.unsqueeze(-3).expand(canvas).clone()
            factors.append(infer.Factor(expert, exponent=f.exponent, region=region, mask=mask,
                                        parents=tuple(index[p] for p in f.parents)))
        rewards = []
        for r in node.rewards:
            scorer = self.expert(r.expert, shape)
            rewards.append(infer.RewardFactor(_Decoded(scorer, codec) if codec else scorer, weight=r.weight))
        try:
            return infer.Problem(shape=canvas, factors=factors, rewards=rewards), codec
        except infer.SettingsError as e:
            raise self.fail(str(e), node.id) from None

    def codec(self, node: g.SampleNode, experts: list[tuple[str, Any]]):
        """The latent space the sample's experts share (see :func:`shared_codec`); None: pixels."""
        try:
            return shared_codec(self.shape(node), experts)
        except ValueError as e:
            raise self.fail(str(e), node.id) from None

    settings = staticmethod(engine_settings)  # the engine's settings of a sample (tests call it)

    def inversion_input(self, node: g.SampleNode, codec):
        """The value ``invert`` names, as the experts see it: pixels in [-1, 1]
        (or a vector), encoded by the sample's codec when its experts use one."""
        import torch

        invert = node.settings.invert
        data = self.value(invert.ref) if isinstance(invert, g.Ref) else torch.tensor(invert, dtype=torch.float64)
        data = torch.as_tensor(data)
        if codec is not None:
            with torch.no_grad():
                data = codec.encode(data.unsqueeze(0).float())[0]
        return data

    def run_sample(self, node: g.SampleNode):
        if node.id in self.result.samples:
            return self.result.samples[node.id]
        with self.reporter:
            return self._draw(node)

    def _draw(self, node: g.SampleNode):
        from poelang import infer

        problem, codec = self.problem(node)
        for factor, graph_factor in zip(problem.factors, node.factors):  # sim_updates act on these
            expert_node = self.graph.node(graph_factor.expert)
            factor.simulator = isinstance(expert_node, g.ExpertNode) and expert_node.kind == "simulator"
        invert = self.inversion_input(node, codec) if node.settings.init == "inversion" else None
        try:
            settings = self.settings(node.settings, invert, name=node.id)
        except infer.SettingsError as e:
            raise self.fail(str(e), node.id) from None
        chunks = _chunks(node, problem)
        bar = self.reporter.sampling(node.id, node.settings.levels, chunks, inverting=invert is not None)

        def on_level(info):
            bar.update(info)
            if self.callback is None:
                return None
            if self.decode_x0_hat and codec is not None and info.x0_hat is not None:
                info = replace(info, x0_hat=_decode(codec, info.x0_hat.to(self.device)).cpu())
            return self.callback(node.id, info)

        started = time.perf_counter()
        try:
            with infer.reporting_inversion_steps(bar.inversion_step):  # init = inversion: a bar of its steps
                result = sample_within_memory(node.id, problem, settings, on_level, self.device)
        except (infer.SamplerError, infer.SettingsError, OutOfMemory) as e:
            raise self.fail(str(e), _blamed_span(node.id, e, self.program.spans)) from None
        self.result.sample_seconds[node.id] = time.perf_counter() - started
        if codec is not None:
            result = _decode_result(result, codec)
            self.latent_samples[node.id] = codec
        self.result.samples[node.id] = result
        self._values[node.id] = result.samples[0]
        return result

    # --- outputs --------------------------------------------------------------

    def check_weights(self) -> None:
        """Every missing model at once, before anything is simulated or loaded (see poelang.weights)."""
        from poelang import weights

        missing = weights.missing_diagnostics(self.program, weights.needs(self.program))
        if missing:
            raise RunError(missing, self.program.sources)

    def run(self, output: str | None = None, trace_dir: str | None = None, write: bool = True,
            output_dir: str | None = None, every_sample: bool = False) -> RunResult:
        """Sample, then write. `output_dir` puts every save under one folder (a sweep's row; an absolute
        save path keeps only its name there), `every_sample` writes every chosen sample of an image or
        video save, numbered."""
        from poelang import provenance

        if output_dir is not None:
            self.out_dir = Path(output_dir)
        started = time.perf_counter()
        outputs = list(self.graph.outputs) if write else []
        given = -1  # the output whose path the runner gave (--output)
        if output is not None:  # judged before any sampling, so that a mistake costs nothing
            outputs, given = _override_output(outputs, output, self.graph)
        self.check_weights()
        with self.reporter:
            for node in self.graph.samples:
                self.run_sample(node)
        Saver(self).save(outputs, given, output_dir, every_sample, trace_dir)
        self.result.seconds = time.perf_counter() - started
        return self.result


def _blamed_span(sample: str, error: Exception, spans: dict) -> str:
    """Where a sampling error points: the setting a divergence blames where the program (or --set) wrote it,
    the factor whose exponent overflowed, else the sample."""
    setting, factor = getattr(error, "setting", None), getattr(error, "factor", None)
    if setting:
        key = f"{sample}:{g.ENGINE_TO_PROGRAM.get(setting, setting)}"
        return key if key in spans else sample
    return factor if factor in spans else sample


def _override_output(outputs: list[g.OutputNode], path: str, graph: g.Graph) -> tuple[list[g.OutputNode], int]:
    """`--output PATH` replaces the path of the first saved sample (or adds one), under the rules of `save`:
    the format from the suffix, and one the sample's kind can be saved as. Returns the outputs and its index."""
    def refuse(message: str) -> RunError:
        return RunError([Diagnostic("error", f"--output {path}: {message}", Span("<command line>", 0, 0, 0, 0))])

    if not graph.samples:
        raise refuse("the program has no sample (no `~` statement) to save")
    fmt = g.FILE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise refuse(f"unknown output format; use one of {', '.join(sorted(g.FILE_FORMATS))}")
    samples = {s.id: s for s in graph.samples}
    index = next((i for i, out in enumerate(outputs) if out.value.ref in samples and out.format != "trace"), len(outputs))
    sample = samples[outputs[index].value.ref] if index < len(outputs) else graph.samples[0]
    kind = sample.domain.kind
    fits = {"png": ("image",), "jpg": ("image",), "gif": ("video",), "mp4": ("video",)}.get(fmt, (kind,))
    if kind not in fits:
        raise refuse(f"'{sample.id}' is {'an' if kind == 'image' else 'a'} {sample.domain}, which cannot be saved as "
                     f"{fmt.upper()}; use {' or '.join(_suffixes_for(kind, g.FILE_FORMATS))}")
    node = g.OutputNode(value=g.Ref(ref=sample.id), path=path, format=fmt)
    return outputs[:index] + [node] + outputs[index + 1:], index


def _suffixes_for(kind: str, formats: dict[str, str]) -> list[str]:
    allowed = {"vector": ("npy", "safetensors"), "image": ("png", "jpg", "npy", "safetensors"),
               "video": ("gif", "mp4", "npy", "safetensors")}[kind]
    return sorted({suffix for suffix, fmt in formats.items() if fmt in allowed})


def run_program(program, device: str = "cpu", trace_dir: str | None = None, output: str | None = None,
                progress: bool = False, callback: LevelCallback | None = None, write: bool = True,
                reporter: Reporter | None = None, decode_x0_hat: bool = False, out_dir: str | Path = ".",
                trust_remote_code: bool = False, on_write: Callable[[str], None] | None = None) -> RunResult:
    """Run a checked program; raises RunError (a PoeError) on user-facing failures.

    ``progress`` shows the live display on stderr; ``reporter`` (a
    :class:`poelang.progress.Reporter`) chooses its verbosity and console instead.
    Saves resolve against `out_dir`; `trust_remote_code` lets model folders run their own
    code (the runner's decision); `on_write` hears of each file as soon as it is written.
    """
    from poelang.devices import device_problem

    program.raise_for_errors()
    if not isinstance(device, str) and hasattr(device, "type") and hasattr(device, "index"):
        device = str(device)  # a torch.device
    problem = device_problem(device)
    if problem:
        raise RunError([Diagnostic("error", f"--device {device}: {problem}", Span("<command line>", 0, 0, 0, 0))])
    interpreter = Interpreter(program, device, progress, callback, reporter, decode_x0_hat, out_dir=out_dir,
                              trust_remote_code=trust_remote_code, on_write=on_write)
    return interpreter.run(output=output, trace_dir=trace_dir, write=write)
