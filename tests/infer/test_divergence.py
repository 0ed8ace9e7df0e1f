"""Divergence is blamed on the setting that sized the runaway move, with the level and σ (poelang/infer/divergence.py).

The experts are tiny torch modules whose velocity grows faster than linearly far out (as a network's does
outside its training range): a move too large for them throws the particles out, and the next call returns
inf. A well-behaved expert that returns NaN by itself is still blamed itself.
"""
from __future__ import annotations

import re

import pytest
import torch

from poelang.infer import Divergence, Factor, Problem, SamplerError, Settings, sample
from poelang.stdlib.analytic import GaussianFlow


class Steep(torch.nn.Module):
    """The velocity of N(0, I) plus a cubic term: fine near the data, explosive far out."""

    def __init__(self, name: str, centre: float = 0.0, cubic: float = 1.0) -> None:
        super().__init__()
        self.name = name
        self.centre = centre
        self.cubic = torch.nn.Parameter(torch.tensor(cubic), requires_grad=False)

    def velocity(self, x, sigma):
        d = x - self.centre
        return d + self.cubic * d ** 3


class NaNAtSmallSigma(torch.nn.Module):
    """An expert that breaks by itself (NaN below σ = 0.5, wherever the particles are)."""

    name = "broken"

    def velocity(self, x, sigma):
        v = x.clone()
        v[sigma.reshape(-1) < 0.5] = float("nan")
        return v


def _problem(*factors):
    return Problem(shape=(2,), factors=list(factors))


def test_a_runaway_langevin_move_is_blamed_on_step_size():
    problem = _problem(Factor(Steep("steep", cubic=50.0)))
    with pytest.raises(Divergence) as caught:
        sample(problem, Settings(levels=6, particles=8, kernel="langevin", step_size=2.0, mcmc_steps=3,
                                 keep_trace=False))
    message = str(caught.value)
    assert caught.value.setting == "step_size"
    assert re.search(r"diverged at level \d+ \(sigma=0\.\d{4}\) after the langevin move \(step_size = 2\)", message)
    assert "lower step_size" in message


def test_a_runaway_conditional_update_is_blamed_on_cond_lambda():
    parent = Factor(GaussianFlow(torch.zeros(2), 1.0, name="prior"))
    child = Factor(Steep("child", centre=1.0, cubic=0.05), parents=(0,))
    with pytest.raises(Divergence) as caught:
        sample(_problem(parent, child), Settings(levels=6, particles=8, kernel="none", cond_lambda=1.0,
                                                  cond_updates=4, keep_trace=False))
    assert caught.value.setting == "cond_lambda"
    assert "after the conditional updates (cond_lambda = 1)" in str(caught.value)
    # the same product with a small enough step runs and gives finite particles
    result = sample(_problem(parent, child), Settings(levels=6, particles=8, kernel="none", cond_lambda=0.001,
                                                       keep_trace=False))
    assert bool(torch.isfinite(result.particles).all())


def test_a_runaway_inversion_is_blamed_on_its_fixed_point():
    problem = _problem(Factor(Steep("steep", cubic=50.0)))
    settings = Settings(levels=2, particles=2, kernel="none", init="inversion", invert=torch.full((2,), 3.0),
                        invert_iters=20, keep_trace=False)
    with pytest.raises(Divergence) as caught:
        sample(problem, settings)
    assert caught.value.setting == "invert_iters"
    assert "the inversion from sigma=" in str(caught.value)


def test_an_expert_that_breaks_by_itself_is_blamed_itself():
    with pytest.raises(SamplerError) as caught:
        sample(_problem(Factor(NaNAtSmallSigma())), Settings(levels=4, particles=4, kernel="langevin",
                                                              keep_trace=False))
    assert not isinstance(caught.value, Divergence)
    assert str(caught.value) == "expert 'broken' returned NaN/inf velocity for 4 of 4 particles at level 3 (sigma=0.2500)"


def test_an_exponent_that_overflows_float32_is_blamed_at_its_factor():
    big = Factor(GaussianFlow(torch.full((2,), 5.0), 1.0, name="far"), exponent=1e38)
    with pytest.raises(Divergence) as caught:
        sample(_problem(big, Factor(GaussianFlow(torch.zeros(2), 1.0, name="prior"))),
               Settings(levels=3, particles=2, keep_trace=False))
    assert caught.value.factor == big.name and caught.value.setting is None
    assert "the exponent 1e+38 of" in str(caught.value) and "dtype = float64" in str(caught.value)
    # in float64 the same product is fine
    result = sample(_problem(big, Factor(GaussianFlow(torch.zeros(2), 1.0, name="prior"))),
                    Settings(levels=3, particles=2, keep_trace=False, dtype="float64"))
    assert bool(torch.isfinite(result.samples).all())
