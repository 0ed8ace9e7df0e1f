"""The product of generative experts as a field over the canvas.

Given particles x [L, *canvas] at a noise level sigma, :class:`ProductField`
calls every expert once on its crop (one batched call per expert -- never a
loop over particles; ``max_batch`` splits the batch into chunks with
identical results) and composes:

* velocity   v(x) = sum_i a_i m_i pad_i(v_i) / A,   A = sum_i a_i m_i
  -- the weighted *average*, so overlapping experts keep the data scale; it
  drives the Euler transition and x0_hat (paper Alg. 1, line 5);
* score      s(x) = sum_i a_i m_i pad_i(s_i),  s_i from v_i by
  :func:`~poelang.infer.flow.score_from_velocity` -- the score of the product
  gamma_sigma(x) = prod_i p_{i,sigma}(x_i)^{a_i}, which drives MCMC;
* log density  log gamma_sigma(x) = sum_i a_i log p_{i,sigma}(x_i), when
  every expert has ``log_prob`` (MALA, HMC, AIS weights);
* second moment  sum_i a_i m_i pad_i(v_i)^2, on request: with the velocity
  it is all the 'fk' path's weights need (:mod:`.fk`).

m_i is the factor's soft mask times its region and its expert's support.
Coordinates that no expert covers (A = 0) are an error at setup: nothing
would define them.

Masks are classified where they act: on the grid the expert sees (the
canvas, or a codec's latent tokens after the interpreter pooled the mask).
A mask that is exactly 0/1 there on an expert that can give its own
marginal on the kept coordinates (``restricted``, e.g. a diagonal analytic
Gaussian) is a region: the factor becomes that expert with the mask as its
``support``, and the product has a log density and an exact score. Any
other mask stays a weight on the field, which is then not the score of any
product; :attr:`ProductField.mask_blockers` says why, naming the factor.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

import torch

from . import flow
from .divergence import check_overflow, largest
from .errors import NonFiniteOutput, SamplerError
from .protocol import Factor

Tensor = torch.Tensor


@dataclass
class FieldValues:
    """The product's field at one batch of positions and one sigma.

    ``twist`` (the reward potential, when MCMC moves include the rewards) and
    ``rewards`` ride along so that an accepted move carries its scores.
    MH kernels accept on ``log_target`` = log density + twist.
    """

    velocity: Tensor
    score: Optional[Tensor] = None
    log_density: Optional[Tensor] = None
    twist: Optional[Tensor] = None
    rewards: Optional[Tensor] = None
    velocity_sq: Optional[Tensor] = None  # sum_i a_i m_i v_i^2 per coordinate ('fk' path)

    @property
    def log_target(self) -> Optional[Tensor]:
        if self.log_density is None:
            return None
        if self.twist is None:
            return self.log_density
        return self.log_density + self.twist.to(self.log_density.dtype)


def _chunks(n: int, max_batch: Optional[int]) -> List[slice]:
    if max_batch is None or n <= max_batch:
        return [slice(0, n)]
    return [slice(k, min(k + max_batch, n)) for k in range(0, n, max_batch)]


def as_region(factor: Factor, crop: tuple) -> Tuple[Factor, Optional[str]]:
    """A factor whose mask is exactly 0/1 on the expert's crop, with its expert's
    marginal there (``restricted``) as the expert and the mask as its support;
    else the factor as it is, and why its mask stays a weight (None: no mask)."""
    if factor.mask is None:
        return factor, None
    on_grid = torch.as_tensor(factor.mask)[crop]  # what the expert's crop sees
    soft = int(((on_grid != 0) & (on_grid != 1)).sum())
    if soft:
        return factor, (f"the mask on '{factor.name}' is soft ({soft} of its {on_grid.numel()} values on the "
                        f"expert's grid lie strictly between 0 and 1)")
    restrict = getattr(factor.expert, "restricted", None)
    expert = restrict(on_grid) if restrict is not None else None
    if expert is None:
        return factor, (f"the mask on '{factor.name}' is 0/1 but the expert gives no marginal on it (its velocity "
                        f"depends on the whole canvas; a box region crops it)")
    return replace(factor, expert=expert, mask=None), None


class ProductField:
    """Composes the factors of a problem; counts expert evaluations.

    ``where`` is a label ("level 3 (sigma=0.940)") that the sampler updates so
    that errors say when they happened.
    """

    def __init__(
        self,
        factors: Sequence[Factor],
        shape: tuple,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        max_batch: Optional[int] = None,
        sigma_min: float = 1e-3,
    ) -> None:
        self.shape = tuple(shape)
        classified = [as_region(f, self._index(f.region)) for f in factors]
        self.factors = [f for f, _ in classified]
        self.mask_blockers = [why for _, why in classified if why]  # why a mask keeps the field from being a score
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_batch = max_batch
        self.sigma_min = sigma_min
        self.where = "setup"
        # one count per particle per expert call; "calls" counts a fused
        # velocity_and_log_prob call once (the cost of one forward pass)
        self.counts = {"calls": 0, "velocity": 0, "velocity_grad": 0, "log_prob": 0}
        self.names = [f.name for f in self.factors]
        self.regions = [self._index(f.region) for f in self.factors]
        self.weights: List[Optional[Tensor]] = []  # a_i * m_i on the crop, or None if constant
        coverage = torch.zeros(self.shape, dtype=dtype, device=self.device)
        for f, idx in zip(self.factors, self.regions):
            crop_shape = tuple(coverage[idx].shape)
            w = torch.full(crop_shape, float(f.exponent), dtype=dtype, device=self.device)
            constant = True
            if f.mask is not None:
                w = w * f.mask.to(device=self.device, dtype=dtype)[idx]
                constant = False
            support = getattr(f.expert, "support", None)
            if support is not None:
                support = torch.as_tensor(support).to(device=self.device, dtype=dtype)
                if tuple(support.shape) != crop_shape:
                    raise SamplerError(
                        f"expert '{f.name}': support shape {tuple(support.shape)} does not match "
                        f"its crop of the canvas {crop_shape}"
                    )
                w = w * support
                constant = False
            coverage[idx] += w
            self.weights.append(None if constant else w)
        uncovered = coverage <= 0
        if bool(uncovered.any()):
            first = tuple(int(i) for i in torch.nonzero(uncovered)[0])
            raise SamplerError(
                f"{int(uncovered.sum())} canvas coordinates are covered by no generative expert "
                f"(first: {first}); give every coordinate an expert (e.g. a prior over the "
                f"whole canvas) or widen the regions/masks"
            )
        self.coverage = coverage  # A_c
        self.has_log_prob = all(self.factor_has_log_prob)
        self.binary_weights = all(f.mask is None for f in self.factors)  # no mask left as a weight

    # -- crops ---------------------------------------------------------------
    def _index(self, region) -> tuple:
        if region is None:
            return (Ellipsis,)
        return tuple(region) + (Ellipsis,)

    def crop(self, i: int, x: Tensor) -> Tensor:
        """The part of x [B, *canvas] that factor i sees."""
        idx = self.regions[i]
        if idx == (Ellipsis,):
            return x
        return x[(slice(None),) + idx]

    def _accumulate(self, total: Tensor, i: int, value: Tensor) -> None:
        """total[:, region_i] += a_i m_i * value (value on the crop)."""
        w = self.weights[i]
        scaled = value * w if w is not None else value * float(self.factors[i].exponent)
        idx = self.regions[i]
        if idx == (Ellipsis,):
            total += scaled
        else:
            total[(slice(None),) + idx] += scaled

    # -- expert calls --------------------------------------------------------
    def _sigma(self, n: int, sigma: float) -> Tensor:
        return torch.full((n,), float(sigma), dtype=self.dtype, device=self.device)

    # The three methods below are the only places an expert is called; a field
    # over part of the canvas (the autoregressive path's chunk) overrides them.
    # ``rows`` is the slice of the full batch that ``xs`` holds.
    def _fusable(self, i: int) -> bool:
        return hasattr(self.factors[i].expert, "velocity_and_log_prob")

    def _call_velocity(self, i: int, xs: Tensor, sig: Tensor, rows: slice, fused: bool):
        """(v, log_p or None) of factor i on the batch xs."""
        expert = self.factors[i].expert
        if fused:
            return expert.velocity_and_log_prob(xs, sig)
        return expert.velocity(xs, sig), None

    def _call_log_prob(self, i: int, xs: Tensor, sig: Tensor, rows: slice) -> Tensor:
        return self.factors[i].expert.log_prob(xs, sig)

    @property
    def factor_has_log_prob(self) -> List[bool]:
        """Whether each factor can give its log density on this field."""
        return [f.has_log_prob for f in self.factors]

    def expert_velocity(self, i: int, xi: Tensor, sigma: float, *, grad: bool = False,
                        with_log_prob: bool = False):
        """Factor i's velocity on its crop, batched, checked for NaN/inf; with
        ``with_log_prob`` also its log density (one fused call when the expert
        has ``velocity_and_log_prob``), returned as (v, log_p)."""
        fused = with_log_prob and self._fusable(i)
        parts, lps = [], []
        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx:
            for sl in _chunks(xi.shape[0], self.max_batch):
                xs = xi[sl]
                sig = self._sigma(xs.shape[0], sigma)
                v, lp = self._call_velocity(i, xs, sig, sl, fused)
                if fused:
                    lps.append(lp)
                if not isinstance(v, torch.Tensor) or v.shape != xs.shape:
                    got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                    raise SamplerError(
                        f"expert '{self.names[i]}' returned a velocity of shape {got} for input "
                        f"{tuple(xs.shape)} at {self.where}"
                    )
                parts.append(v)
        v = parts[0] if len(parts) == 1 else torch.cat(parts)
        self.counts["velocity_grad" if grad else "velocity"] += xi.shape[0]
        self.counts["calls"] += xi.shape[0]
        self._check_velocity(i, v, xi)
        if not with_log_prob:
            return v
        if fused:
            lp = torch.cat(lps) if len(lps) > 1 else lps[0]
            self.counts["log_prob"] += xi.shape[0]
            return v, self._check_log_prob(i, lp, xi)
        return v, self.expert_log_prob(i, xi, sigma)

    def _check_velocity(self, i: int, v: Tensor, xi: Tensor) -> None:
        bad = ~torch.isfinite(v.detach()).reshape(v.shape[0], -1).all(dim=1)
        if bool(bad.any()):
            raise NonFiniteOutput(f"expert '{self.names[i]}' returned NaN/inf velocity for {int(bad.sum())} of "
                                  f"{v.shape[0]} particles", self.where, largest(xi.detach()[bad]))

    def expert_log_prob(self, i: int, xi: Tensor, sigma: float) -> Tensor:
        parts = []
        with torch.no_grad():
            for sl in _chunks(xi.shape[0], self.max_batch):
                xs = xi[sl]
                parts.append(self._call_log_prob(i, xs, self._sigma(xs.shape[0], sigma), sl))
        lp = parts[0] if len(parts) == 1 else torch.cat(parts)
        self.counts["log_prob"] += xi.shape[0]
        self.counts["calls"] += xi.shape[0]
        return self._check_log_prob(i, lp, xi)

    def _check_log_prob(self, i: int, lp: Tensor, xi: Tensor) -> Tensor:
        n = xi.shape[0]
        if tuple(lp.shape) != (n,):
            raise SamplerError(
                f"expert '{self.names[i]}' returned log_prob of shape {tuple(lp.shape)}, expected ({n},)"
            )
        bad = torch.isnan(lp) | torch.isposinf(lp)
        if bool(bad.any()):
            raise NonFiniteOutput(f"expert '{self.names[i]}' returned NaN/+inf log_prob", self.where,
                                  largest(xi.detach()[bad]))
        return lp

    # -- the composed field --------------------------------------------------
    def evaluate(
        self, x: Tensor, sigma: float, *, score: bool = True, log_density: bool = False,
        velocity_sq: bool = False,
    ) -> FieldValues:
        """Composed velocity (always), score, log density and the velocities'
        weighted second moment (on request)."""
        v_sum = torch.zeros_like(x)
        s_sum = torch.zeros_like(x) if score else None
        sq_sum = torch.zeros_like(x) if velocity_sq else None
        lp = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device) if log_density else None
        zero = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)  # an expert's own zero density
        for i, f in enumerate(self.factors):
            xi = self.crop(i, x)
            if log_density:
                vi, lpi = self.expert_velocity(i, xi, sigma, with_log_prob=True)
                lp = lp + float(f.exponent) * lpi
                zero |= torch.isneginf(lpi)
            else:
                vi = self.expert_velocity(i, xi, sigma)
            self._accumulate(v_sum, i, vi)
            if score:
                self._accumulate(s_sum, i, flow.score_from_velocity(xi, vi, sigma, self.sigma_min))
            if velocity_sq:
                self._accumulate(sq_sum, i, vi * vi)
        check_overflow(self, (v_sum, s_sum, sq_sum), lp, zero)
        return FieldValues(velocity=v_sum / self.coverage, score=s_sum, log_density=lp, velocity_sq=sq_sum)

    def log_density(self, x: Tensor, sigma: float) -> Tensor:
        """log gamma_sigma(x) = sum_i a_i log p_{i,sigma}(x_i) (no velocity call)."""
        lp = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        zero = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for i, f in enumerate(self.factors):
            lpi = self.expert_log_prob(i, self.crop(i, x), sigma)
            lp = lp + float(f.exponent) * lpi
            zero |= torch.isneginf(lpi)
        check_overflow(self, (), lp, zero)
        return lp

    def x0_hat(self, x: Tensor, velocity: Tensor, sigma: float) -> Tensor:
        """Predicted clean canvas from the composed velocity."""
        return flow.x0_from_velocity(x, velocity, sigma)

    def parents_velocity(self, child: int, x: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
        """The parents' composed velocity on the child's crop, and where it is defined.

        Returns (v_pa [B, *crop], weight [*crop]) with weight = 1 where at
        least one parent covers the coordinate (and the child's own mask
        weight there), 0 elsewhere.
        """
        parents = self.factors[child].parents
        v_sum = torch.zeros_like(x)
        cov = torch.zeros(self.shape, dtype=x.dtype, device=x.device)
        for p in parents:
            self._accumulate(v_sum, p, self.expert_velocity(p, self.crop(p, x), sigma))
            w = self.weights[p]
            idx = self.regions[p]
            cov[idx] += w if w is not None else float(self.factors[p].exponent)
        covered = cov > 0
        v_pa = torch.where(covered, v_sum / cov.clamp_min(1e-30), torch.zeros_like(v_sum))
        idx = self.regions[child]
        child_w = self.weights[child]
        weight = covered[idx].to(x.dtype)
        if child_w is not None:
            weight = weight * (child_w / float(self.factors[child].exponent))
        return self.crop(child, v_pa), weight

