"""Numerically safe helpers on log weights (after Gen.jl and particles).

All functions work on a 1-D tensor of log weights and treat -inf as "zero
weight": :func:`logsumexp` returns -inf when every entry is -inf instead of
NaN, and :func:`normalized_weights` reports that case to the caller through
``None`` so the sampler can say *which* reward rejected the particles.
"""
from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def logsumexp(log_w: Tensor) -> Tensor:
    """log(sum(exp(log_w))) over the last dim; -inf (not NaN) when all are -inf."""
    m = log_w.max(dim=-1, keepdim=True).values
    m_safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    out = torch.log(torch.exp(log_w - m_safe).sum(dim=-1)) + m_safe.squeeze(-1)
    return torch.where(torch.isneginf(m.squeeze(-1)), m.squeeze(-1), out)


def normalized_weights(log_w: Tensor) -> Tensor | None:
    """exp(log_w - logsumexp(log_w)); None when every weight is zero."""
    total = logsumexp(log_w)
    if not torch.isfinite(total):
        return None
    return torch.exp(log_w - total)


def effective_sample_size(log_w: Tensor) -> float:
    """Kish's ESS = 1 / sum(W_i^2) of the normalised weights; 0 if all are zero."""
    w = normalized_weights(log_w)
    if w is None:
        return 0.0
    return float(1.0 / (w * w).sum())


def log_mean_exp(log_w: Tensor) -> Tensor:
    """log(mean(exp(log_w))): the SMC estimate of one normalising-constant ratio."""
    return logsumexp(log_w) - math.log(log_w.shape[-1])
