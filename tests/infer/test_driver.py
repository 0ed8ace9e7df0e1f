"""The sampler as a level function and a driver: an iterator over levels whose
steps come in an order that is data, the same driver for both paths."""
from __future__ import annotations

import pytest
import torch

from poelang.infer import Factor, Problem, RewardFactor, SamplerError, Settings
from poelang.infer.smc import PAPER_ORDER, SMC_ORDER, START_ORDER, Sampler, level
from poelang.infer.state import SamplerState
from poelang.infer.steps import move, transition
from poelang.infer.weighting import resample, reweight
from poelang.stdlib.analytic import GaussianFlow, QuadraticReward, SimulatorGaussian


def gaussians(rewards=()):
    return Problem((2,), [Factor(GaussianFlow([0.0, 0.0])), Factor(GaussianFlow([2.0, 2.0], var=0.25))], list(rewards))


def test_the_sampler_is_an_iterator_over_levels_and_run_records_the_same_levels():
    settings = Settings(levels=6, particles=8, seed=4)
    states = list(Sampler(gaussians(), settings))
    assert [s.n for s in states] == list(range(7))
    assert all(isinstance(s, SamplerState) for s in states)
    result = Sampler(gaussians(), settings).run()
    assert [info.level for info in result.trace] == list(range(7))
    assert torch.equal(result.particles, states[-1].particles.x)
    assert [info.ess for info in result.trace] == [s.ess for s in states]


def test_a_sampler_runs_once():
    sampler = Sampler(gaussians(), Settings(levels=2, particles=4))
    sampler.run()
    with pytest.raises(SamplerError, match="runs once"):
        sampler.run()


def test_the_plan_chooses_the_order_of_a_level():
    assert Sampler(gaussians(), Settings(levels=2, particles=4, annealing="flow")).order == PAPER_ORDER
    tilted = gaussians([RewardFactor(QuadraticReward([1.0, 1.0]))])
    assert Sampler(tilted, Settings(levels=2, particles=4, annealing="ais", kernel="mala")).order == SMC_ORDER
    assert PAPER_ORDER == (transition, move, PAPER_ORDER[2], PAPER_ORDER[3], reweight, resample)
    assert START_ORDER == (reweight, resample)


def test_a_level_runs_the_steps_it_is_given_in_their_order():
    sampler = Sampler(gaussians(), Settings(levels=4, particles=4, annealing="flow"))
    seen = []

    def step(name):
        def record(run, state):
            seen.append(name)
            return state.with_(temper=len(seen))
        return record

    state = SamplerState(sampler.start(None).particles).at(1)
    out = level(sampler, state, (step("b"), step("a"), step("c")))
    assert seen == ["b", "a", "c"] and out.temper == 3 and out.n == 1
    assert sampler.field.where == "level 1 (sigma=0.7500)"


def test_each_step_returns_a_new_state_and_leaves_its_input_alone():
    sampler = Sampler(gaussians([RewardFactor(QuadraticReward([1.0, 1.0]))]),
                      Settings(levels=4, particles=8, annealing="flow", resample_when="always"))
    state = sampler.start(None).at(1)
    before = state.particles.x.clone()
    after = level(sampler, state, PAPER_ORDER)
    assert after is not state and state.weighted is None and torch.equal(state.particles.x, before)
    assert after.weighted is not None and after.resampled


def test_the_autoregressive_path_is_the_same_driver_over_windows_of_frames():
    frames = 4
    problem = Problem((frames, 2), [Factor(GaussianFlow(torch.zeros(frames, 2))),
                                     Factor(SimulatorGaussian(torch.ones(frames, 2), weight=2.0), simulator=True)])
    sampler = Sampler(problem, Settings(levels=3, particles=4, path="autoregressive", chunk=2, seed=1))
    states = list(sampler)
    assert [s.n for s in states] == [0, 1, 2, 3] * 2
    assert sampler.window.frames == (2, 4) and sampler.window.last
    assert states[-1].particles.context.shape == (4, 2, 2)  # the first chunk's frames ride with the particles
    result = Sampler(problem, Settings(levels=3, particles=4, path="autoregressive", chunk=2, seed=1)).run()
    assert [info.level for info in result.trace] == list(range(8))
    assert [info.frames for info in result.trace] == [(0, 2)] * 4 + [(2, 4)] * 4
    assert result.particles.shape == (4, frames, 2)
    assert torch.equal(result.particles[:, 2:], states[-1].particles.x)
