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
from typing import Any

from poelang import graph as g
from poelang import values as V
from poelang.diagnostics import Diagnostic, PoeError, Span
from poelang.experts.registry import default_registry
from poelang.experts.unavailable import ExpertUnavailable
from poelang.progress import NORMAL, QUIET, Reporter
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


def event_shape(domain: str) -> tuple[int, ...]:
    """The tensor shape of one sample: vector[d] → (d,), image[h,w] → (3,h,w), video[f,h,w] → (f,3,h,w)."""
    kind, _, dims = domain.partition("[")
    sizes = tuple(int(d) for d in dims.rstrip("]").split(","))
    return {"vector": sizes, "image": (3, *sizes), "video": (sizes[0], 3, *sizes[1:])}[kind]


class Interpreter:
    def __init__(self, program, device: str = "cpu", progress: bool = False,
                 callback: LevelCallback | None = None, reporter: Reporter | None = None,
                 decode_x0_hat: bool = False):
        self.program = program
        self.decode_x0_hat = decode_x0_hat  # the callback sees x0_hat in pixels, not in a codec's latents
        self.graph: g.Graph = program.graph
        self.device = device
        self.reporter = reporter or Reporter(NORMAL if progress else QUIET)
        self.callback = callback
        self.registry = default_registry()
        self.context = V.Context(program.base_dir, device)
        self._values: dict[str, Any] = {}
        self._experts: dict[str, Any] = {}
        self._codecs: dict[str, Any] = {}  # sample id → the latent space its trace is still in
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
                with self._step_for(builtin, node.id):
                    value = function(self.context, **args)
            except (FileNotFoundError, ExpertUnavailable, ValueError) as e:
                raise self.fail(str(e), node_id) from None
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
        own_shape = event_shape(node.domain) if node.domain else shape
        if region is not None:
            y0, y1, x0, x1 = region
            own_shape = (*shape[:-2], y1 - y0, x1 - x0)
        context = ExpertContext(node_id, own_shape, self.device, self.program.base_dir, tuple(shape), region)
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

    def problem(self, node: g.SampleNode):
        """The engine's Problem for a sample, and the codec its experts sample in (None: pixels)."""
        from poelang import infer

        shape = event_shape(node.domain)
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
        return infer.Problem(shape=canvas, factors=factors, rewards=rewards), codec

    def codec(self, node: g.SampleNode, experts: list[tuple[str, Any]]):
        """The latent space shared by the sample's generative experts; they must agree.

        An expert with ``adopts_codec`` (a simulator's Gaussian) has no latent
        space of its own: it is left out of the comparison and then told the
        product's codec (None: pixels) with ``use_codec`` before sampling. A
        product of such experts alone samples in pixels.
        """
        fixed = [(name, getattr(e, "codec", None)) for name, e in experts if not getattr(e, "adopts_codec", False)]
        first_name, first = fixed[0] if fixed else (None, None)
        for name, c in fixed[1:]:
            if c != first:
                what = lambda c: "pixels" if c is None else f"the latent space {c.key[0]}"  # noqa: E731
                raise self.fail(f"'{first_name}' samples in {what(first)} but '{name}' in {what(c)}: "
                                "experts of one product must share their latent space", node.id)
        if first is not None:
            try:
                first.latent_shape(event_shape(node.domain))
            except ValueError as e:
                raise self.fail(str(e), node.id) from None
        for name, e in experts:
            if getattr(e, "adopts_codec", False):
                try:
                    e.use_codec(first)
                except ValueError as err:
                    raise self.fail(f"'{name}' cannot follow the product into its latent space: {err}", node.id) from None
        return first

    @staticmethod
    def settings(s: g.SamplerSettings, invert=None):
        """The engine's settings: the program's, under the engine's names; ``invert``
        is the canvas ``init = inversion`` starts from, already in the experts'
        space (see :meth:`inversion_input`)."""
        from poelang import infer

        return infer.Settings(**{**s.engine_values(), "invert": invert})

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
        from poelang import infer

        if node.id in self.result.samples:
            return self.result.samples[node.id]
        problem, codec = self.problem(node)
        for factor, graph_factor in zip(problem.factors, node.factors):  # sim_updates act on these
            expert_node = self.graph.node(graph_factor.expert)
            factor.simulator = isinstance(expert_node, g.ExpertNode) and expert_node.kind == "simulator"
        invert = self.inversion_input(node, codec) if node.settings.init == "inversion" else None
        try:
            settings = self.settings(node.settings, invert)
        except infer.SettingsError as e:
            raise self.fail(str(e), node.id) from None
        chunks = 1
        if node.settings.path == "autoregressive":  # every chunk runs levels 0..T
            chunks = len(infer.chunk_frames(problem.shape[0], min(node.settings.chunk, problem.shape[0])))
        bar = self.reporter.sampling(node.id, node.settings.levels, chunks, inverting=invert is not None)

        def on_level(info):
            bar.update(info)
            if self.callback is None:
                return None
            if self.decode_x0_hat and codec is not None and info.x0_hat is not None:
                info = replace(info, x0_hat=_decode(codec, info.x0_hat.to(self.device)).cpu())
            return self.callback(node.id, info)

        try:
            result = infer.sample(problem, settings, callback=on_level, device=self.device)
        except (infer.SamplerError, infer.SettingsError) as e:
            raise self.fail(str(e), node.id) from None
        if codec is not None:
            result = _decode_result(result, codec)
            self._codecs[node.id] = codec
        self.result.samples[node.id] = result
        self._values[node.id] = result.samples[0]
        return result

    # --- outputs --------------------------------------------------------------

    def traced(self, sample_id: str):
        """The sample's result with its trace images in pixels; decoded only when a trace is written, once."""
        from dataclasses import replace

        result = self.result.samples[sample_id]
        codec = self._codecs.pop(sample_id, None)
        if codec is not None:
            trace = [replace(t, x0_hat=None if t.x0_hat is None else _decode(codec, t.x0_hat)) for t in result.trace]
            result = self.result.samples[sample_id] = replace(result, trace=trace)
        return result

    def write_output(self, out: g.OutputNode) -> None:
        from poelang import writers

        target = out.value.ref
        node = self.graph.node(target)
        try:
            if out.format == "trace":
                sample_id = node.args["sample"].ref
                self.result.written += writers.write_trace(out.path, sample_id, self.traced(sample_id))
            else:
                data = self.result.samples[target] if target in self.result.samples else self.value(target)
                self.result.written.append(writers.write_value(out.path, out.format, data, out.options))
        except OSError as e:
            raise self.fail(f"cannot write {out.path}: {e.strerror or e}", target) from None

    def run(self, output: str | None = None, trace_dir: str | None = None, write: bool = True) -> RunResult:
        from poelang import writers

        started = time.perf_counter()
        with self.reporter:
            for node in self.graph.samples:
                self.run_sample(node)
            outputs = list(self.graph.outputs) if write else []
            if output is not None:
                outputs = _override_output(outputs, output, self.graph)
            for out in outputs:
                self.write_output(out)
        if trace_dir is not None:
            for sample_id in self.result.samples:
                folder = trace_dir if len(self.result.samples) == 1 else str(Path(trace_dir) / sample_id)
                self.result.written += writers.write_trace(folder, sample_id, self.traced(sample_id))
        self.result.seconds = time.perf_counter() - started
        return self.result


class _Decoded:
    """A reward seen through a codec: it scores the decoded pixels of the latent x0_hat."""

    def __init__(self, reward, codec):
        self.reward, self.codec = reward, codec
        self.name = getattr(reward, "name", "reward")

    def score(self, x0):
        return self.reward.score(_decode(self.codec, x0))


def _decode(codec, latents, chunk: int = 4):
    """Decode in chunks, so a 1024-px VAE decode of many particles fits in memory."""
    import torch

    return torch.cat([codec.decode(latents[i:i + chunk]) for i in range(0, latents.shape[0], chunk)])


def _decode_result(result, codec):
    """The engine's result with its samples and particles in pixels (the trace stays latent until written)."""
    from dataclasses import replace

    return replace(result, samples=_decode(codec, result.samples), particles=_decode(codec, result.particles))


def _override_output(outputs: list[g.OutputNode], path: str, graph: g.Graph) -> list[g.OutputNode]:
    """`-o PATH` replaces the path of the first saved sample (or adds one)."""
    from poelang.lower import _FORMATS

    fmt = _FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise RunError([Diagnostic("error", f"-o {path}: unknown output format; use one of {', '.join(sorted(_FORMATS))}",
                                   Span("<command line>", 0, 0, 0, 0))])
    samples = {s.id for s in graph.samples}
    for i, out in enumerate(outputs):
        if out.value.ref in samples and out.format != "trace":
            return outputs[:i] + [out.model_copy(update={"path": path, "format": fmt})] + outputs[i + 1:]
    return outputs + [g.OutputNode(value=g.Ref(ref=graph.samples[0].id), path=path, format=fmt)]


def run_program(program, device: str = "cpu", trace_dir: str | None = None, output: str | None = None,
                progress: bool = False, callback: LevelCallback | None = None, write: bool = True,
                reporter: Reporter | None = None, decode_x0_hat: bool = False) -> RunResult:
    """Run a checked program; raises RunError (a PoeError) on user-facing failures.

    ``progress`` shows the live display on stderr; ``reporter`` (a
    :class:`poelang.progress.Reporter`) chooses its verbosity and console instead.
    """
    program.raise_for_errors()
    interpreter = Interpreter(program, device, progress, callback, reporter, decode_x0_hat)
    return interpreter.run(output=output, trace_dir=trace_dir, write=write)
