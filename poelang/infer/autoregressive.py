"""The autoregressive annealing path (paper App. C): a video, chunk by chunk.

The joint path anneals the whole canvas from noise to data at once. The
autoregressive path splits the frame axis (the first event dim: ``[L, f,
...]``, pixels or a frames-first latent) into chunks of ``chunk`` frames and
samples them in order; for chunk k the frames before it are fixed, clean,
and every level of the schedule is a Gibbs update of the chunk alone against
the product, conditioned on them:

    gamma_sigma(x_k | x_<k)  =  prod_i p_{i,sigma}(x_k | x_<k)^{a_i}

A frame-wise expert (FramePack; see :mod:`.protocol`) gives its conditional
through ``chunk_velocity(x, sigma, context)``; any other expert must be
separable over frames (the simulator's Gaussian, diagonal analytic experts),
so that its conditional is its own marginal on the chunk's frames.

This module gives the sampler windows, nothing else: :class:`FramePath` is
the sequence of chunks, each a :class:`Chunk` (the chunk's
:class:`WindowField`, bound to the frames before it), and the one driver,
:class:`~.smc.Sampler`, runs the joint path's levels unchanged on each
(transition, MCMC, Eq. 7, simulator updates, reweighting, resampling), with
the particle's earlier frames carried in ``ParticleState.context`` so that
resampling moves them with the chunk. The weights carry over from chunk to
chunk and the next chunk's level 0 resamples on them.

With ``init='inversion'`` a chunk starts from the inversion of the input
video's frames [a, b) along the chunk's field, bound to each particle's own
earlier frames (:meth:`Chunk.invert`).

Why it is exact on analytic experts. By the chain rule the target is
prod_k gamma_0(x_k | x_<k) (times the rewards). On the 'ais' path a chunk
starts from the normalised gamma_1 = N(0, I/A) and its annealed importance
weight is an unbiased estimate of Z_k(x_<k) = int gamma_0(x_k | x_<k) dx_k,
with the chunk distributed as gamma_0(. | x_<k) given that weight; the
product of the chunks' weights therefore weights the particles' whole videos
to the joint target (SMC over chunks with AIS proposals). The rewards score
the whole video, so they enter during the last chunk, where their potentials
telescope as on the joint path. Separable experts are evaluated with zeros
outside the chunk, which shifts their log density by a constant that is the
same for every particle: weights and MH moves are unaffected, the evidence
estimate is not, so ``Result.log_evidence`` is None when such an expert has a
log density in play.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from .errors import SamplerError, SettingsError
from .inversion import invert, inversion_input
from .product import ProductField
from .protocol import Factor, Problem, is_framewise
from .settings import Settings
from .state import ParticleState

Tensor = torch.Tensor


def chunk_frames(frames: int, chunk: int) -> List[Tuple[int, int]]:
    """[first, end) of each chunk; the last one may be shorter."""
    return [(a, min(a + chunk, frames)) for a in range(0, frames, chunk)]


class _Window:
    """A factor's expert seen on frames [a, b): what ProductField needs to know
    (name, support, log density); the calls go through :class:`WindowField`."""

    def __init__(self, inner, a: int, b: int, framewise: bool) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "expert")
        support = getattr(inner, "support", None)
        self.support = None if support is None else torch.as_tensor(support)[a:b]
        log_prob = "chunk_log_prob" if framewise else "log_prob"
        self.has_log_prob = bool(getattr(inner, "has_log_prob", False)) and hasattr(inner, log_prob)


class WindowField(ProductField):
    """The product's field over frames [a, b) of a video canvas, given the
    frames [0, a) (clean) of each particle, bound with :meth:`bind`.

    Frame-wise experts get ``chunk_velocity(x, sigma, context)``; separable
    experts get their own ``velocity``/``log_prob`` on the whole canvas (their
    crop of it) with the chunk in place and zeros elsewhere, and only the
    chunk's part of the velocity is kept. Every other part of
    :class:`ProductField` (regions, masks, supports, coverage, batching,
    checks) applies unchanged to the chunk.
    """

    def __init__(self, factors: Sequence[Factor], canvas: tuple, frames: Tuple[int, int],
                 framewise: Sequence[bool], **kwargs) -> None:
        a, b = frames
        self.canvas = tuple(canvas)
        self.frames = (a, b)
        self.framewise = list(framewise)
        self.context: Optional[Tensor] = None
        self._context_crops: dict = {}
        windowed = [
            Factor(
                _Window(f.expert, a, b, fw),
                exponent=f.exponent,
                region=f.region,
                mask=None if f.mask is None else f.mask[a:b],
                parents=f.parents,
                simulator=f.simulator,
            )
            for f, fw in zip(factors, self.framewise)
        ]
        super().__init__(windowed, (b - a,) + self.canvas[1:], **kwargs)

    @property
    def factor_has_log_prob(self) -> List[bool]:
        return [f.expert.has_log_prob for f in self.factors]

    def bind(self, context: Tensor) -> None:
        """The clean frames before the chunk, [L, a, *frame], one row per particle
        (rebind whenever the particles are resampled)."""
        if context.shape[1] != self.frames[0]:
            raise SamplerError(f"context of {context.shape[1]} frames for a chunk starting at frame {self.frames[0]}")
        self.context = context
        self._context_crops = {}

    def _context_of(self, i: int, rows: slice) -> Tensor:
        if i not in self._context_crops:
            idx = self.regions[i]
            self._context_crops[i] = self.context if idx == (Ellipsis,) else self.context[(slice(None),) + idx]
        return self._context_crops[i][rows]

    def _whole(self, xs: Tensor) -> Tensor:
        """xs [B, b - a, ...] placed at frames [a, b) of a zero canvas [B, f, ...]."""
        a, b = self.frames
        f = self.canvas[0]
        before = xs.new_zeros((xs.shape[0], a) + tuple(xs.shape[2:]))
        after = xs.new_zeros((xs.shape[0], f - b) + tuple(xs.shape[2:]))
        return torch.cat([before, xs, after], dim=1)

    def _check_rows(self, n: int) -> None:
        if self.context is None or self.context.shape[0] != n:
            have = None if self.context is None else self.context.shape[0]
            raise SamplerError(f"internal: a batch of {n} particles with context for {have} at {self.where}")

    def expert_velocity(self, i: int, xi: Tensor, sigma: float, *, grad: bool = False, with_log_prob: bool = False):
        self._check_rows(xi.shape[0])
        return super().expert_velocity(i, xi, sigma, grad=grad, with_log_prob=with_log_prob)

    def expert_log_prob(self, i: int, xi: Tensor, sigma: float) -> Tensor:
        self._check_rows(xi.shape[0])
        return super().expert_log_prob(i, xi, sigma)

    def _fusable(self, i: int) -> bool:
        inner = self.factors[i].expert.inner
        return hasattr(inner, "chunk_velocity_and_log_prob" if self.framewise[i] else "velocity_and_log_prob")

    def _call_velocity(self, i: int, xs: Tensor, sig: Tensor, rows: slice, fused: bool):
        inner = self.factors[i].expert.inner
        if self.framewise[i]:
            ctx = self._context_of(i, rows)
            if fused:
                return inner.chunk_velocity_and_log_prob(xs, sig, ctx)
            return inner.chunk_velocity(xs, sig, ctx), None
        a, b = self.frames
        whole = self._whole(xs)
        if fused:
            v, lp = inner.velocity_and_log_prob(whole, sig)
            return _frames_of(v, a, b, whole.shape), lp
        return _frames_of(inner.velocity(whole, sig), a, b, whole.shape), None

    def _call_log_prob(self, i: int, xs: Tensor, sig: Tensor, rows: slice) -> Tensor:
        inner = self.factors[i].expert.inner
        if self.framewise[i]:
            return inner.chunk_log_prob(xs, sig, self._context_of(i, rows))
        return inner.log_prob(self._whole(xs), sig)


def _frames_of(v, a: int, b: int, shape) -> Tensor:
    """Frames [a, b) of a whole-canvas velocity (the shape check happens later,
    on the chunk, with the expert's name)."""
    if not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(shape):
        return v  # ProductField reports the bad shape
    return v[:, a:b]


class Chunk:
    """A window of the autoregressive path: frames [a, b) of the video, given
    the frames before them (each particle's own, carried in
    ``ParticleState.context``); see :mod:`.window` for what a window tells the
    sampler."""

    skips_equal_weights = True  # equal weights (a chunk before the rewards, on 'flow'): nothing to select

    def __init__(self, index: int, field: WindowField, canvas_shape: tuple, last: bool) -> None:
        self.index, self.field, self.last = index, field, last
        self.frames = field.frames
        self.canvas_shape = canvas_shape
        self.shape = field.shape

    @property
    def context(self) -> Tensor:
        return self.field.context

    def label(self, n: int, sigma: float) -> str:
        a, b = self.frames
        return f"frames {a}-{b - 1}, level {n} (sigma={sigma:.4f})"

    def canvas(self, x: Tensor, context: Tensor) -> Tensor:
        """The whole video: the particle's earlier frames, the chunk, zeros after."""
        after = x.new_zeros((x.shape[0], self.canvas_shape[0] - self.frames[1]) + tuple(x.shape[2:]))
        return torch.cat([context.to(x.dtype), x, after], dim=1)

    def bind(self, particles: ParticleState) -> None:
        self.field.bind(particles.context)  # the earlier frames moved with their particles

    def invert(self, settings: Settings, sigmas: Tensor, L: int) -> Tensor:
        """init = inversion: the chunk's frames of ``settings.invert`` (a whole video, one for all particles or
        one each) inverted along the chunk's field, which is bound to each particle's own earlier frames. The
        chunk's conditional flow given those frames is the one its levels descend, so where nothing else
        moves the particles (and the earlier frames came back as the input's) the video is the input again."""
        field = self.field
        data = inversion_input(settings.invert, L, self.canvas_shape, "video", field.device, field.dtype)
        a, b = self.frames
        if a == 0 and data.shape[0] == 1:  # no earlier frames and one input: one inversion serves every particle
            context = field.context
            field.bind(context[:1])
            try:
                x = invert(field, data[:, a:b], sigmas, settings.invert_iters)
            finally:
                field.bind(context)
            return x.expand((L,) + self.shape).clone()
        chunk = data[:, a:b].expand((L,) + self.shape).contiguous()
        return invert(field, chunk, sigmas, settings.invert_iters)


class FramePath:
    """``path='autoregressive'``: the video's chunks of frames in order, each a
    window annealed by the same sampler (:class:`~.smc.Sampler`)."""

    def __init__(self, problem: Problem, settings: Settings, device: torch.device, dtype: torch.dtype) -> None:
        canvas = tuple(problem.shape)
        if len(canvas) < 2:
            raise SettingsError(
                f"path='autoregressive' samples a video frame by frame, along the first of its event dims "
                f"(frames, then each frame's dims); the canvas {canvas} has no frame axis"
            )
        frames = canvas[0]
        if settings.chunk > frames:
            raise SettingsError(f"chunk={settings.chunk} is more than the video's {frames} frames")
        for f in problem.factors:
            region = f.region
            if region and not _whole_axis(region[0], frames):
                raise SettingsError(
                    f"expert '{f.name}' is restricted to part of the frame axis ({region[0]}); on "
                    f"path='autoregressive' regions may restrict a frame's dims only"
                )
        self.problem, self.settings, self.device, self.dtype = problem, settings, device, dtype
        self.canvas_shape = canvas
        self.chunks = chunk_frames(frames, settings.chunk)
        self.windows = len(self.chunks)
        self.framewise = [is_framewise(f.expert) for f in problem.factors]
        self.counts: Optional[dict] = None  # one tally of expert calls for the whole run

    def window(self, k: int, previous: Optional[ParticleState]) -> Chunk:
        """Chunk k, bound to the frames before it: those of ``previous`` (the
        particles at the end of chunk k - 1), or none."""
        s = self.settings
        field_ = WindowField(self.problem.factors, self.canvas_shape, self.chunks[k], self.framewise,
                             device=self.device, dtype=self.dtype, max_batch=s.max_batch, sigma_min=s.sigma_min)
        if self.counts is None:
            self.counts = field_.counts
        field_.counts = self.counts
        field_.bind(self.frames_so_far(previous))
        return Chunk(k, field_, self.canvas_shape, last=k == self.windows - 1)

    def frames_so_far(self, particles: Optional[ParticleState]) -> Tensor:
        """[L, a, ...]: the earlier frames and the chunk of each particle (none before the first chunk)."""
        if particles is None:
            empty = (self.settings.particles, 0) + self.canvas_shape[1:]
            return torch.zeros(empty, dtype=self.dtype, device=self.device)
        return torch.cat([particles.context, particles.x], dim=1)

    def whole(self, particles: ParticleState) -> ParticleState:
        """The videos sampled so far (all of them, unless a callback stopped the run)."""
        return particles.moved(self.frames_so_far(particles)).with_(context=None)

    def complete(self, plan, first: Chunk) -> None:
        plan.chunks = [list(c) for c in self.chunks]
        plan.exact += "; autoregressive path: chunk by chunk, the chunk weights multiplied over chunks"
        self._check_separable(first.field.regions)

    def evidence_known(self, plan) -> bool:
        """Separable experts are evaluated with zeros outside the chunk: their log
        density is off by a constant, which the evidence would include."""
        return all(self.framewise) or plan.annealing not in ("ais", "fk")

    def _check_separable(self, regions: List[tuple]) -> None:
        """Refuse a joint (non-frame-wise, non-separable) expert: its velocity on a
        chunk would depend on frames that are not there. Experts may declare
        ``frame_separable``; the others are probed once, on random canvases, at
        sigma = 0.5: the velocity of the first and of the last frame must not
        change when every other frame does. (One chunk is the whole video: no
        expert needs to be separable then.)"""
        frames = self.canvas_shape[0]
        if len(self.chunks) == 1:
            return
        gen = torch.Generator().manual_seed(12345)  # not the run's generators: probing changes no result
        for i, f in enumerate(self.problem.factors):
            if self.framewise[i]:
                continue
            declared = getattr(f.expert, "frame_separable", None)
            if declared is not None:
                if not declared:
                    raise SettingsError(_not_separable(f.name, "it says frame_separable = False"))
                continue
            idx = regions[i]
            whole = torch.randn((1,) + self.canvas_shape, generator=gen, dtype=torch.float64)
            whole = (whole if idx == (Ellipsis,) else whole[(slice(None),) + idx]).to(self.device, self.dtype)
            sigma = torch.full((1,), 0.5, dtype=self.dtype, device=self.device)
            with torch.no_grad():
                base = f.expert.velocity(whole, sigma)
                for j in sorted({0, frames - 1}):
                    other = torch.randn(whole.shape, generator=gen, dtype=torch.float64).to(self.device, self.dtype)
                    other[:, j] = whole[:, j]
                    moved = f.expert.velocity(other, sigma)
                    scale = 1.0 + float(base[:, j].abs().max())
                    if not torch.allclose(moved[:, j], base[:, j], rtol=1e-4, atol=1e-5 * scale):
                        raise SettingsError(_not_separable(
                            f.name, f"its velocity at frame {j} changed when the other frames did"))


def _whole_axis(s, frames: int) -> bool:
    if not isinstance(s, slice):
        return False
    start, stop, step = s.indices(frames)
    return start == 0 and stop == frames and step == 1


def _not_separable(name: str, why: str) -> str:
    return (
        f"expert '{name}' cannot be sampled on path='autoregressive': {why}, so it is a joint video "
        f"model, not separable over frames; give it chunk_velocity(x, sigma, context) (a frame-wise "
        f"expert) or use path='joint'"
    )
