"""Analytic flow experts and rewards, whose products are known in closed form.

They run anywhere (no weights, a few flops) and make exactness testable: the
sampler's output on them must match the closed-form product within Monte
Carlo error.

Rectified-flow convention (see ``poelang.infer.flow``): x_s = (1-s) x0 + s eps,
v = eps - x0. For a Gaussian x0 ~ N(mu, S) the noised marginal is

    p_s = N((1-s) mu, C_s),   C_s = (1-s)^2 S + s^2 I,

and with r = x - (1-s) mu the exact velocity is the posterior mean of eps - x0:

    E[eps | x] = s C^-1 r,   E[x0 | x] = mu + (1-s) S C^-1 r,
    v(x, s)    = s C^-1 r - mu - (1-s) S C^-1 r,

well defined at both ends (s = 1: v = x - mu; s = 0: v = -x). The score is
-C^-1 r. A full covariance is diagonalised once (S = U diag(lam) U^T), so
C_s^-1 is diagonal in that basis for every s, and a batch may carry a
different s per sample. Mixtures: responsibilities times per-component
velocities.

These classes duck-type ``poelang.infer.protocol`` (name, velocity,
has_log_prob, log_prob; rewards: name, score); torch is imported lazily so
that ``poelang check`` never pays for it.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Sequence

try:  # a lazily loaded torch, so importing this module is free
    from poelang._lazy import torch  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the front end's version
    from poelang._lazy import lazy_import

    torch = lazy_import("torch")

__all__ = [
    "GaussianFlow",
    "MixtureFlow",
    "SimulatorGaussian",
    "QuadraticReward",
    "HalfSpaceReward",
    "gaussian_product",
    "mixture_product",
    "LOG_2PI",
]

LOG_2PI = math.log(2 * math.pi)


def _as64(value: Any):
    return torch.as_tensor(value, dtype=torch.float64).clone()


def rowwise_matmul(x, M):
    """x [B, D] @ M [D, E], computed row by row (broadcast multiply and sum).

    BLAS picks different kernels for different batch sizes, so ``x @ M`` on
    a sub-batch is not bit-identical to the same rows of the full product;
    this is, which makes ``max_batch`` chunking give identical results.
    """
    if x.shape[0] == 0:
        return x.new_zeros(0, M.shape[1])
    rows = max(1, (1 << 22) // max(1, M.numel()))  # ~4M elements per chunk
    return torch.cat([(c.unsqueeze(2) * M).sum(1) for c in x.split(rows)])


def _sigma_col(sigma, batch: int, like):
    s = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    if s.dim() == 0:
        s = s.expand(batch)
    return s.reshape(batch, 1)


class _Cast:
    """Caches a dict of float64 parameters cast to each (dtype, device) used."""

    def __init__(self, **params) -> None:
        self._params = params
        self._cache: dict = {}

    def get(self, like):
        key = (like.dtype, like.device)
        if key not in self._cache:
            self._cache[key] = {
                k: (v.to(dtype=like.dtype, device=like.device) if v is not None else None)
                for k, v in self._params.items()
            }
        return self._cache[key]


class GaussianFlow:
    """A flow expert whose data distribution is N(mean, covariance).

    mean: tensor-like of the event shape (a vector, a small image, ...).
    var:  isotropic variance (float) or per-coordinate variances (event
          shape): a diagonal covariance. Default 1.
    cov:  a full (D, D) covariance over the flattened event (D = mean.numel()).
    support: optional 0/1 tensor (event shape): coordinates the expert models;
          log_prob ignores the others (see the engine's protocol).
    """

    has_log_prob = True

    def __init__(
        self,
        mean: Any,
        var: Any = None,
        cov: Any = None,
        name: str = "gaussian",
        support: Any = None,
    ) -> None:
        if var is not None and cov is not None:
            raise ValueError("give either var (diagonal) or cov (full), not both")
        self.name = name
        mu = _as64(mean)
        self.event_shape = tuple(mu.shape)
        self.dim = mu.numel()
        mu = mu.reshape(-1)
        if cov is not None:
            S = _as64(cov)
            if tuple(S.shape) != (self.dim, self.dim):
                raise ValueError(f"cov must be ({self.dim}, {self.dim}), got {tuple(S.shape)}")
            S = 0.5 * (S + S.T)
            lam, U = torch.linalg.eigh(S)
            if float(lam.min()) <= 0:
                raise ValueError("cov must be positive definite")
            self._full = True
        else:
            v = _as64(1.0 if var is None else var)
            lam = (v * torch.ones(self.event_shape, dtype=torch.float64)).reshape(-1)
            if float(lam.min()) <= 0:
                raise ValueError("var must be positive")
            U = None
            self._full = False
        self.support = None
        sup = None
        if support is not None:
            sup = _as64(support)
            if tuple(sup.shape) != self.event_shape:
                raise ValueError(f"support shape {tuple(sup.shape)} != event shape {self.event_shape}")
            if not bool(((sup == 0) | (sup == 1)).all()):
                raise ValueError("support must be a 0/1 mask")
            self.support = sup
            sup = sup.reshape(-1)
        self._mu, self._lam, self._U = mu, lam, U
        self._p = _Cast(mu=mu, lam=lam, U=U, sup=sup)

    # -- closed form ------------------------------------------------------
    @property
    def mean(self):
        return self._mu.reshape(self.event_shape)

    def covariance(self):
        """Full (D, D) float64 covariance of x0."""
        if self._U is None:
            return torch.diag(self._lam)
        return (self._U * self._lam) @ self._U.T

    def _rotate(self, flat, U):
        return flat if U is None else rowwise_matmul(flat, U)

    def _unrotate(self, flat, U):
        return flat if U is None else rowwise_matmul(flat, U.T)

    def _parts(self, x, sigma):
        p = self._p.get(x)
        B = x.shape[0]
        s = _sigma_col(sigma, B, x)
        r = x.reshape(B, -1) - (1 - s) * p["mu"]
        z = self._rotate(r, p["U"])
        c = (1 - s) ** 2 * p["lam"] + s * s
        return p, s, z, c

    def velocity(self, x, sigma):
        p, s, z, c = self._parts(x, sigma)
        v = self._unrotate((s - (1 - s) * p["lam"]) * z / c, p["U"]) - p["mu"]
        return v.reshape(x.shape)

    def score(self, x, sigma):
        """Exact grad_x log p_sigma(x) (for tests; the engine uses velocity)."""
        p, s, z, c = self._parts(x, sigma)
        return self._unrotate(-z / c, p["U"]).reshape(x.shape)

    def log_prob(self, x, sigma):
        return self._log_prob(*self._parts(x, sigma))

    def velocity_and_log_prob(self, x, sigma):
        """Both in one pass (one expert evaluation): they share C_sigma^-1 r."""
        p, s, z, c = parts = self._parts(x, sigma)
        v = self._unrotate((s - (1 - s) * p["lam"]) * z / c, p["U"]) - p["mu"]
        return v.reshape(x.shape), self._log_prob(*parts)

    def _log_prob(self, p, s, z, c):
        terms = -0.5 * (z * z / c + torch.log(c) + LOG_2PI)
        if p["sup"] is not None:
            if p["U"] is not None:
                raise ValueError("support with a full covariance is not supported")
            terms = terms * p["sup"]
        return terms.sum(dim=1)

    def restricted(self, keep):
        """This expert's marginal on the coordinates where ``keep`` (0/1, its
        event shape) is 1, as the same expert with that ``support``: exact for
        a diagonal covariance, whose coordinates are independent. None for a
        full covariance (the engine then keeps the mask as a weight)."""
        if self._full:
            return None
        keep = _as64(keep).reshape(self.event_shape)
        support = keep if self.support is None else keep * self.support
        marginal = copy.copy(self)
        marginal.support = support
        marginal._p = _Cast(mu=self._mu, lam=self._lam, U=None, sup=support.reshape(-1))
        return marginal

    def sample_x0(self, n: int, generator=None):
        """n exact draws of x0 (float64, CPU)."""
        eps = torch.randn(n, self.dim, dtype=torch.float64, generator=generator)
        z = eps * self._lam.sqrt()
        flat = self._mu + (z if self._U is None else z @ self._U.T)
        return flat.reshape((n,) + self.event_shape)

    def __repr__(self) -> str:
        kind = "full" if self._full else "diag"
        return f"GaussianFlow({self.name!r}, shape={self.event_shape}, {kind})"


class SimulatorGaussian(GaussianFlow):
    """The simulator expert p(x) ∝ exp(-w ||m ⊙ (x - c)||^2) on the masked part.

    Per masked coordinate a Gaussian with mean c and variance 1/(2w); the
    unmasked coordinates are outside its ``support`` (no opinion).

    It has no latent space of its own (``adopts_codec``): multiplied with
    experts that sample in a codec's latent space, it follows them. The
    interpreter calls :meth:`use_codec` before each sample: the centre becomes
    ``codec.encode(c)`` and the mask is pooled to the codec's tokens (a latent
    pixel is supported where more than half of its token's pixels are), so
    the Gaussian is exp(-w ||m' ⊙ (z - encode(c))||^2) on latents z. For
    :class:`~poelang.stdlib.codecs.PixelCodec` that is the same density (its
    latents are the pixels, rearranged); for a VAE the weight is in latent
    units. ``use_codec(None)`` returns to pixels.
    """

    adopts_codec = True

    def __init__(self, center: Any, weight: float, mask: Any = None, name: str = "simulator") -> None:
        if not weight > 0:
            raise ValueError("weight must be positive")
        self.weight = float(weight)
        super().__init__(center, var=1.0 / (2.0 * weight), name=name, support=mask)
        self.codec = None
        self._views = {None: (self._mu.reshape(self.event_shape), self.support)}  # codec key → (centre, support)

    def use_codec(self, codec) -> None:
        """Sample in `codec`'s latent space from now on (None: pixels); encodings are computed once per codec."""
        key = None if codec is None else codec.key
        if key == (None if self.codec is None else self.codec.key):
            return
        if key not in self._views:
            self._views[key] = self._encode(codec)
        center, support = self._views[key]
        GaussianFlow.__init__(self, center, var=1.0 / (2.0 * self.weight), name=self.name, support=support)
        self.codec = codec

    def _encode(self, codec):
        """(centre, support) of the pixel target and mask in `codec`'s latent space."""
        pixels, support = self._views[None]
        shape = tuple(pixels.shape)
        if len(shape) not in (3, 4) or shape[-3] != 3:
            raise ValueError(f"a simulator on a target of shape {shape} cannot sample in a latent space: "
                             "it needs an image (3, h, w) or a video (f, 3, h, w)")
        latent_shape = tuple(codec.latent_shape(shape))
        target = pixels.float()
        with torch.no_grad():
            if len(shape) == 4 and getattr(codec, "temporal", None) is None:  # an image codec: frame by frame
                latent = torch.cat([codec.encode(target[i:i + 4]).cpu() for i in range(0, shape[0], 4)])
            else:
                latent = codec.encode(target.unsqueeze(0))[0]
        if tuple(latent.shape) != latent_shape:
            raise ValueError(f"the codec encoded the simulator's target to {tuple(latent.shape)}, "
                             f"not {latent_shape}")
        latent_support = None
        if support is not None:
            pooled = codec.pool_mask(support.select(-3, 0).float())  # [(f',) h', w']
            keep = (pooled > 0.5).to(torch.float64).unsqueeze(-3)
            latent_support = keep.expand(latent_shape).clone()
        return latent.to(torch.float64).cpu(), latent_support


class MixtureFlow:
    """A flow expert whose data distribution is a Gaussian mixture with
    diagonal covariances.

    weights: [K] (normalised here); means: [K, *event_shape];
    var: float, [K], or [K, *event_shape] variances.
    """

    has_log_prob = True

    def __init__(self, weights: Any, means: Any, var: Any = 1.0, name: str = "mixture") -> None:
        self.name = name
        w = _as64(weights).reshape(-1)
        if float(w.min()) < 0 or float(w.sum()) <= 0:
            raise ValueError("mixture weights must be non-negative with a positive sum")
        mu = _as64(means)
        K = w.shape[0]
        if mu.shape[0] != K:
            raise ValueError(f"{K} weights but {mu.shape[0]} means")
        self.event_shape = tuple(mu.shape[1:])
        self.dim = int(mu[0].numel())
        v = _as64(var)
        if v.dim() == 1 and v.shape[0] == K and v.shape != tuple(mu.shape[1:]):
            v = v.reshape(K, *([1] * len(self.event_shape)))
        v = (v * torch.ones_like(mu)).reshape(K, -1)
        if float(v.min()) <= 0:
            raise ValueError("mixture variances must be positive")
        w = w / w.max()  # weights as large as 1e308 would sum to inf
        self.weights = w / w.sum()
        self.means = mu.reshape(K, -1)
        self.vars = v
        self.K = K
        self._p = _Cast(logw=torch.log(self.weights), mu=self.means, var=self.vars)

    def _parts(self, x, sigma):
        p = self._p.get(x)
        B = x.shape[0]
        s = _sigma_col(sigma, B, x).unsqueeze(1)  # [B, 1, 1]
        r = x.reshape(B, 1, -1) - (1 - s) * p["mu"]  # [B, K, D]
        c = (1 - s) ** 2 * p["var"] + s * s  # [B, K, D]
        log_comp = p["logw"] - 0.5 * (r * r / c + torch.log(c) + LOG_2PI).sum(-1)  # [B, K]
        return p, s, r, c, log_comp

    def velocity(self, x, sigma):
        return self.velocity_and_log_prob(x, sigma)[0]

    def log_prob(self, x, sigma):
        return torch.logsumexp(self._parts(x, sigma)[-1], dim=1)

    def velocity_and_log_prob(self, x, sigma):
        """Both in one pass (one expert evaluation)."""
        p, s, r, c, log_comp = self._parts(x, sigma)
        resp = torch.softmax(log_comp, dim=1).unsqueeze(-1)
        v_k = (s - (1 - s) * p["var"]) * r / c - p["mu"]
        return (resp * v_k).sum(1).reshape(x.shape), torch.logsumexp(log_comp, dim=1)

    def score(self, x, sigma):
        p, s, r, c, log_comp = self._parts(x, sigma)
        resp = torch.softmax(log_comp, dim=1).unsqueeze(-1)
        return (resp * (-r / c)).sum(1).reshape(x.shape)

    def component_log_prob(self, x0):
        """log(pi_k N_k(x0)) [B, K] at sigma = 0 (mode assignment in tests)."""
        return self._parts(x0, torch.zeros(x0.shape[0], dtype=x0.dtype))[-1]

    def sample_x0(self, n: int, generator=None):
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, dtype=torch.float64, generator=generator)
        flat = self.means[k] + eps * self.vars[k].sqrt()
        return flat.reshape((n,) + self.event_shape)

    def __repr__(self) -> str:
        return f"MixtureFlow({self.name!r}, K={self.K}, shape={self.event_shape})"


class QuadraticReward:
    """r(x) = -scale * || A (m ⊙ (x - target)) ||^2 over the flattened canvas.

    matrix A: (M, D) or None (identity); mask m: event-shaped weights or None.
    The tilt of a Gaussian by exp(r) is Gaussian (see :meth:`tilt`).
    """

    def __init__(self, target: Any, scale: float = 1.0, matrix: Any = None, mask: Any = None, name: str = "quadratic") -> None:
        self.name = name
        self.scale = float(scale)
        t = _as64(target)
        self.event_shape = tuple(t.shape)
        self._b = t.reshape(-1)
        D = self._b.numel()
        self._A = None if matrix is None else _as64(matrix).reshape(-1, D)
        self._m = None if mask is None else _as64(mask).reshape(-1)
        self._p = _Cast(b=self._b, A=self._A, m=self._m)

    def score(self, x0):
        p = self._p.get(x0)
        d = x0.reshape(x0.shape[0], -1) - p["b"]
        if p["m"] is not None:
            d = d * p["m"]
        if p["A"] is not None:
            d = rowwise_matmul(d, p["A"].T)
        return -self.scale * (d * d).sum(1)

    def quadratic_form(self):
        """(Q, b) with r(x) = -(x - b)^T Q (x - b), float64."""
        D = self._b.numel()
        M = torch.eye(D, dtype=torch.float64)
        if self._m is not None:
            M = M * self._m  # M = diag(m)
        if self._A is not None:
            M = self._A @ M
        return self.scale * M.T @ M, self._b

    def tilt(self, mean, cov):
        """The Gaussian N(mean, cov) (flattened) times exp(r): returns (mean, cov)."""
        Q, b = self.quadratic_form()
        P0 = torch.linalg.inv(cov)
        P = P0 + 2 * Q
        C = torch.linalg.inv(P)
        return C @ (P0 @ mean + 2 * Q @ b), C


    def log_expectation(self, mean, cov):
        """log E[exp(r(x))] under N(mean, cov): the tilted product's log normaliser."""
        Q, b = self.quadratic_form()
        M = 2 * Q
        I = torch.eye(M.shape[0], dtype=torch.float64)
        d = mean - b
        K = M @ torch.linalg.inv(I + cov @ M)
        return float(-0.5 * torch.logdet(I + cov @ M) - 0.5 * d @ K @ d)


class HalfSpaceReward:
    """The hard constraint {x : normal · x <= offset}: r = 0 inside, -inf outside."""

    def __init__(self, normal: Any, offset: float, name: str = "halfspace") -> None:
        self.name = name
        self._a = _as64(normal).reshape(-1)
        self.offset = float(offset)
        self._p = _Cast(a=self._a)

    def score(self, x0):
        a = self._p.get(x0)["a"]
        inside = (x0.reshape(x0.shape[0], -1) * a).sum(1) <= self.offset
        zero = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
        return torch.where(inside, zero, torch.full_like(zero, -float("inf")))

    def _alpha(self, mean, cov):
        sd = torch.sqrt(self._a @ cov @ self._a)
        return (self.offset - self._a @ mean) / sd, sd

    def gaussian_mass(self, mean, cov):
        """P(a · x <= offset) under N(mean, cov)."""
        alpha, _ = self._alpha(mean, cov)
        return torch.special.ndtr(alpha)

    def truncated_mean(self, mean, cov):
        """E[x | a · x <= offset] under N(mean, cov)."""
        alpha, sd = self._alpha(mean, cov)
        pdf = torch.exp(-0.5 * alpha * alpha) / math.sqrt(2 * math.pi)
        return mean - (cov @ self._a) / sd * pdf / torch.special.ndtr(alpha)


# -- closed-form products ---------------------------------------------------

class VelocityOnly:
    """An analytic expert as a flow network shows itself: a velocity, no log density. Tests and benchmarks
    use it to exercise exactly the path FLUX gets, against the closed forms the inner expert still has."""

    has_log_prob = False

    def __init__(self, expert) -> None:
        self._expert = expert

    def velocity(self, x, sigma):
        return self._expert.velocity(x, sigma)

    def restricted(self, keep):
        """The inner expert's marginal (when it has one), still velocity-only."""
        inner = getattr(self._expert, "restricted", None)
        marginal = inner(keep) if inner is not None else None
        return None if marginal is None else VelocityOnly(marginal)

    def __getattr__(self, name):  # name, event_shape, mean, covariance, ... for the closed forms
        if name in ("log_prob", "velocity_and_log_prob", "score"):
            raise AttributeError(name)
        return getattr(self._expert, name)


def _flat_index(shape: Sequence[int], region) -> Any:
    idx = torch.arange(int(math.prod(shape))).reshape(tuple(shape))
    if region is not None:
        idx = idx[tuple(region)]
    return idx.reshape(-1)


def gaussian_product(shape: Sequence[int], terms: Sequence[tuple]):
    """Closed form of prod_i N_i(x_region_i)^{a_i} over a canvas.

    terms: (GaussianFlow, exponent, region-or-None). Returns the product's
    (mean, cov) over the flattened canvas (float64) and its log normaliser
    log int prod_i N_i(x_i)^{a_i} dx.
    """
    D = int(math.prod(shape))
    P = torch.zeros(D, D, dtype=torch.float64)
    h = torch.zeros(D, dtype=torch.float64)
    const = 0.0
    for g, a, region in terms:
        idx = _flat_index(shape, region)
        S = g.covariance()
        mu = g._mu
        if g.support is not None:
            keep = g.support.reshape(-1) > 0
            idx, S, mu = idx[keep], S[keep][:, keep], mu[keep]
        Pi = torch.linalg.inv(S)
        P[idx[:, None], idx[None, :]] += a * Pi
        h[idx] += a * Pi @ mu
        const += a * (-0.5 * (mu @ Pi @ mu) - 0.5 * torch.logdet(2 * math.pi * S))
    cov = torch.linalg.inv(P)
    mean = cov @ h
    log_z = const + 0.5 * (h @ mean) + 0.5 * torch.logdet(2 * math.pi * cov)
    return mean, cov, float(log_z)


def mixture_product(mixtures: Sequence[MixtureFlow], name: str = "product") -> MixtureFlow:
    """The exact product of diagonal Gaussian mixtures (exponents 1, same event
    shape) as a mixture: one component per tuple (k_1, ..., k_m), with weight
    ∝ prod pi_k * int prod N_k (for two: pi_j pi_k N(mu_j; mu_k, S_j + S_k))."""
    means = torch.zeros(1, mixtures[0].dim, dtype=torch.float64)
    precs = torch.zeros(1, mixtures[0].dim, dtype=torch.float64)
    lin = torch.zeros(1, mixtures[0].dim, dtype=torch.float64)
    quad = torch.zeros(1, dtype=torch.float64)
    logw = torch.zeros(1, dtype=torch.float64)
    for m in mixtures:
        # combine every current tuple with every component of m
        P_k, mu_k = 1.0 / m.vars, m.means  # [K, D]
        precs = (precs[:, None] + P_k[None]).reshape(-1, m.dim)
        lin = (lin[:, None] + (P_k * mu_k)[None]).reshape(-1, m.dim)
        quad = (quad[:, None] + (P_k * mu_k * mu_k).sum(-1)[None] + torch.log(m.vars).sum(-1)[None] + m.dim * LOG_2PI).reshape(-1)
        logw = (logw[:, None] + torch.log(m.weights)[None]).reshape(-1)
    var = 1.0 / precs
    means = var * lin
    # log int prod_i N_i = -1/2 [sum_i (mu^T P mu + log det 2pi S)_i - h^T P^-1 h - log det 2pi P^-1]
    log_int = -0.5 * (quad - (lin * means).sum(-1) - (torch.log(var) + LOG_2PI).sum(-1))
    w = torch.softmax(logw + log_int, dim=0)
    out = MixtureFlow(w, means.reshape((-1,) + mixtures[0].event_shape), var.reshape((-1,) + mixtures[0].event_shape), name=name)
    out.log_normalizer = float(torch.logsumexp(logw + log_int, dim=0))
    return out
