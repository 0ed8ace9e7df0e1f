"""Shared fixtures: the analytic experts used across the engine's tests.

The tests use one intra-op thread: their tensors are tiny, and on a 2-core
machine that is busy with anything else, torch's OpenMP barrier makes a
single small ``torch.log`` take ~8 ms with two threads (measured) -- a
100x slowdown of the whole suite. One thread also keeps timings stable.
"""
from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

from poelang.stdlib.analytic import GaussianFlow, MixtureFlow


@pytest.fixture
def g_full():
    return GaussianFlow([1.0, -0.5], cov=[[0.5, 0.2], [0.2, 0.3]], name="g_full")


@pytest.fixture
def g_diag():
    return GaussianFlow([-0.5, 0.5], var=[0.4, 0.8], name="g_diag")


@pytest.fixture
def g_third():
    return GaussianFlow([0.0, 1.0], cov=[[0.3, -0.1], [-0.1, 0.6]], name="g_third")


@pytest.fixture
def mix_a():
    return MixtureFlow([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], var=0.1, name="mix_a")


@pytest.fixture
def mix_b():
    return MixtureFlow([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], var=[0.2, 0.1], name="mix_b")


@pytest.fixture
def image_gaussians():
    gen = torch.Generator().manual_seed(5)
    shape = (3, 4, 4)
    a = GaussianFlow(0.5 * torch.randn(shape, generator=gen), var=0.2 + 0.3 * torch.rand(shape, generator=gen), name="img_a")
    b = GaussianFlow(0.5 * torch.randn(shape, generator=gen), var=0.2 + 0.3 * torch.rand(shape, generator=gen), name="img_b")
    c = GaussianFlow(0.5 * torch.randn(shape, generator=gen), var=0.5, name="img_c")
    return a, b, c
