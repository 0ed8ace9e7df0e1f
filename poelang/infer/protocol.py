"""What the engine needs from the outside world, and nothing of the language.

Experts are duck-typed (no base class to inherit), so expert files need not
import torch at import time:

**Generative expert** (a flow model or an analytic density)

* ``name: str``
* ``velocity(x, sigma) -> v``: x is ``[B, *event_shape]`` (the expert's own
  event shape -- a crop of the canvas when its factor has a ``region``),
  sigma is ``[B]``; returns the rectified-flow velocity ``v = eps - x0``
  of the same shape (see :mod:`poelang.infer.flow`).
* ``has_log_prob: bool`` (optional, default False) and ``log_prob(x, sigma)
  -> [B]``: the log density of the noised marginal p_sigma. Analytic experts
  have it, flow networks do not; MALA, HMC and annealed importance weights
  need it.
* ``velocity_and_log_prob(x, sigma) -> (v, log_p)`` (optional): both in one
  pass; the engine uses it when it needs both, and counts one evaluation.
* ``support`` (optional): a 0/1 tensor over the expert's event shape marking
  the coordinates it models (a simulator Gaussian on a masked part). Outside
  it the expert has no opinion: its velocity and score are ignored there, the
  coordinates are not counted in the coverage, and ``log_prob`` must not
  depend on them.
* ``restricted(keep) -> expert or None`` (optional): the expert's own
  marginal on the coordinates where ``keep`` (0/1, its event shape) is 1, as
  an expert with that ``support``. A factor whose mask is exactly 0/1 on the
  expert's grid is then a region: sampled exactly like a box. Experts whose
  coordinates are independent (diagonal analytic Gaussians) have it; a
  network does not (its velocity at a pixel depends on the whole canvas), so
  its mask stays a weight and the run is not exact.

**Frame-wise (autoregressive) expert** -- optional, for ``path='autoregressive'``
(paper App. C; e.g. FramePack). The canvas is a video whose first event dim
is the frame axis, ``[B, f, *frame]`` (pixels ``(f, 3, h, w)``, or a codec's
latent kept frames-first: Wan's ``(f', C, h, w)``). The engine samples it
chunk by chunk; for chunk ``x_k`` with the frames before it fixed:

* ``chunk_velocity(x, sigma, context) -> v``: ``x`` is ``[B, c, *frame]``,
  the chunk's c frames at noise level sigma (the factor's spatial crop when it
  has a region); ``sigma`` is ``[B]``; ``context`` is ``[B, k, *frame]``, the
  k frames before the chunk, clean (sigma = 0), row b belonging to particle b
  (``k = 0`` for the first chunk; ``k`` is also the chunk's first frame
  index). Returns the velocity of the noised conditional
  ``p_sigma(x_k | x_<k)``, ``[B, c, *frame]``.
* ``chunk_log_prob(x, sigma, context) -> [B]`` (optional, with
  ``has_log_prob = True``): ``log p_sigma(x_k | x_<k)``, normalised in x_k,
  equal to ``log N(x; 0, I)`` at sigma = 1. With it the chunk's levels can be
  exact (annealed importance sampling), and the whole video is then an exact
  draw from the product (the chunk weights multiply over chunks).
* ``chunk_velocity_and_log_prob(x, sigma, context)`` (optional): both in one
  pass.

A frame-wise expert needs no joint ``velocity``; it can then be sampled on
the autoregressive path only. Every other expert on that path must be
*separable over frames* (its density a product over frames: the simulator's
Gaussian, diagonal analytic experts): the engine calls its ``velocity`` /
``log_prob`` on the whole canvas with the chunk in place and zeros elsewhere
and keeps the chunk's part. An expert may say ``frame_separable = False``
(a joint video model) or ``True``; when it says nothing the engine probes it
once (does the velocity of one frame change when the others do?) and refuses
a joint expert with a message.

**Discriminative expert / reward**

* ``name: str``
* ``score(x0) -> r``: x0 is ``[B, *canvas_shape]``, returns ``[B]``; a black
  box called under ``torch.no_grad()``; may return ``-inf`` (a hard
  constraint), never NaN or +inf.

A :class:`Problem` is the canvas shape, the generative :class:`Factor` s and
the :class:`RewardFactor` s; the target is

    p(x)  ∝  prod_i p_i(x_i | x_pa(i))^{a_i}  *  exp(sum_j w_j r_j(x)).
"""
from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence, Tuple, runtime_checkable

import torch

from .errors import SettingsError
from .settings import Settings

Tensor = torch.Tensor
Region = Tuple[slice, ...]

__all__ = [
    "GenerativeExpert",
    "RewardExpert",
    "Factor",
    "RewardFactor",
    "Problem",
    "Settings",
    "expert_name",
    "is_framewise",
]


@runtime_checkable
class GenerativeExpert(Protocol):
    name: str

    def velocity(self, x: Tensor, sigma: Tensor) -> Tensor: ...


@runtime_checkable
class RewardExpert(Protocol):
    name: str

    def score(self, x0: Tensor) -> Tensor: ...


def is_framewise(expert: Any) -> bool:
    """Whether the expert follows the frame-wise protocol (``chunk_velocity``)."""
    return callable(getattr(expert, "chunk_velocity", None))


def expert_name(expert: Any, fallback: str) -> str:
    """The expert's ``name`` attribute, or ``fallback`` for messages."""
    name = getattr(expert, "name", None)
    return str(name) if name else fallback


@dataclass
class Factor:
    """One generative expert in the product, raised to ``exponent``.

    region:  crop of the canvas event dims the expert sees (``x[:, *region]``);
             its velocity/score is zero-padded back to the canvas. None = all.
    mask:    weight over the canvas (e.g. a blurred mask) multiplying the
             expert's padded velocity and score. Exactly 0/1 on the expert's
             crop, on an expert with ``restricted``, it is a region (the
             expert's marginal there); any other mask keeps the run off the
             exact paths (MALA/HMC/AIS refuse it, ``fk`` says not exact).
    parents: indices of the factors this one is conditioned on (paper Eq. 7).
    simulator: a simulator's expert (a Gaussian around simulated frames): the
             ``sim_updates`` setting takes gradient steps on these factors'
             log density (paper App. C).
    """

    expert: Any
    exponent: float = 1.0
    region: Optional[Region] = None
    mask: Optional[Tensor] = None
    parents: Tuple[int, ...] = ()
    simulator: bool = False

    @property
    def name(self) -> str:
        return expert_name(self.expert, "expert")

    @property
    def has_log_prob(self) -> bool:
        return bool(getattr(self.expert, "has_log_prob", False)) and hasattr(
            self.expert, "log_prob"
        )


@dataclass
class RewardFactor:
    """A discriminative expert entering the product as exp(weight * r(x))."""

    expert: Any
    weight: float = 1.0

    @property
    def name(self) -> str:
        return expert_name(self.expert, "reward")


@dataclass
class Problem:
    """Canvas event shape (e.g. (2,) or (3, 32, 32)), factors and rewards."""

    shape: Tuple[int, ...]
    factors: Sequence[Factor]
    rewards: Sequence[RewardFactor] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        self.factors = list(self.factors)
        self.rewards = list(self.rewards)
        self.validate()

    def validate(self) -> None:
        """Structural checks that need no expert call."""
        if not self.factors:
            raise SettingsError("the product has no generative expert: nothing to sample")
        n = len(self.factors)
        for i, f in enumerate(self.factors):
            label = f"factor {i} ({f.name})"
            if not (hasattr(f.expert, "velocity") or is_framewise(f.expert)):
                raise SettingsError(f"{label} has no velocity(x, sigma): not a generative expert")
            if not (f.exponent > 0):
                raise SettingsError(f"{label}: exponent must be positive, got {f.exponent}")
            if f.region is not None:
                if len(f.region) > len(self.shape):
                    raise SettingsError(
                        f"{label}: region has {len(f.region)} dims, canvas has {len(self.shape)}"
                    )
                if not all(isinstance(s, slice) for s in f.region):
                    raise SettingsError(f"{label}: region must be a tuple of slices")
            if f.mask is not None and tuple(f.mask.shape) != self.shape:
                raise SettingsError(
                    f"{label}: mask shape {tuple(f.mask.shape)} != canvas shape {self.shape}"
                )
            for p in f.parents:
                if not (0 <= p < n) or p == i:
                    raise SettingsError(f"{label}: invalid parent index {p}")
        _check_acyclic([tuple(f.parents) for f in self.factors], [f.name for f in self.factors])
        for j, r in enumerate(self.rewards):
            if not hasattr(r.expert, "score"):
                raise SettingsError(f"reward {j} ({r.name}) has no score(x0): not a reward")
            if not math.isfinite(r.weight):
                raise SettingsError(f"reward {j} ({r.name}): weight must be finite, got {r.weight}")


def _check_acyclic(parents: list[tuple[int, ...]], names: list[str]) -> None:
    state = [0] * len(parents)  # 0 new, 1 on stack, 2 done

    def visit(i: int, path: list[int]) -> None:
        if state[i] == 1:
            cycle = " -> ".join(names[k] for k in path[path.index(i):] + [i])
            raise SettingsError(f"parent conditioning has a cycle: {cycle}")
        if state[i] == 2:
            return
        state[i] = 1
        for p in parents[i]:
            visit(p, path + [i])
        state[i] = 2

    for i in range(len(parents)):
        visit(i, [])
