"""Same program + same seed → the same bytes: the engine's results here against a git revision's.

Runs ~40 small analytic problems through ``poelang.infer.sample`` — every annealing path (ais, flow,
fk), kernel, resampling rule, rewards (with and without reward moves, adaptive tempering, a constraint
that rejects everything), masks and regions, Eq. 7 and simulator updates, inversion, a given init,
``max_batch``, output modes, callbacks that stop the run, the autoregressive path — and hashes every
tensor of each Result (samples, particles, weights, scores, the plan, evaluation counts and the whole
trace). It does the same with the engine of ``--against`` (default HEAD: your uncommitted change
against the last commit) in a subprocess, and prints which cases differ.

    python benchmarks/engine_fingerprint.py [--against main]

For a refactor of the sampler, every case should read "same". The hashes depend on torch's version
and the machine, so this compares two trees in one run; it is not a test with stored bytes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.environ.get("POELANG_TREE", str(HERE)))

import torch  # noqa: E402

from poelang.infer import Factor, Problem, RewardFactor, Settings, StopSampling, sample  # noqa: E402
from poelang.stdlib.analytic import (  # noqa: E402
    GaussianFlow, HalfSpaceReward, MixtureFlow, QuadraticReward, SimulatorGaussian, VelocityOnly)
from tests.infer.test_autoregressive import MarkovVideo  # noqa: E402


def digest(result) -> str:
    h = hashlib.sha256()

    def add(value) -> None:
        if isinstance(value, torch.Tensor):
            h.update(f"{value.dtype}{tuple(value.shape)}".encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(repr(value).encode())

    for name in ("samples", "particles", "log_weights", "scores", "reward_scores", "sigmas", "output_indices"):
        add(getattr(result, name))
    add(result.log_evidence)
    add(json.dumps(result.plan, sort_keys=True, default=str))
    add(sorted(result.evaluations.items()))
    add(result.stopped_at)
    for info in result.trace:
        for key, value in vars(info).items():
            h.update(key.encode())
            add(value)
    return h.hexdigest()[:16]


def gaussians():
    return [Factor(GaussianFlow(torch.zeros(2))), Factor(GaussianFlow(torch.full((2,), 2.0), var=0.25))]


def velocities_only():
    return [Factor(VelocityOnly(f.expert)) for f in gaussians()]


def mixtures():
    return [Factor(MixtureFlow([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], var=0.49)),
            Factor(MixtureFlow([0.3, 0.7], [[2.0, 0.0], [2.0, 3.0]], var=0.49))]


def regional():
    return [Factor(GaussianFlow(torch.zeros(4))), Factor(GaussianFlow(torch.full((2,), 1.5), var=0.3), region=(slice(0, 2),)),
            Factor(GaussianFlow(torch.ones(4)), mask=torch.tensor([0.0, 0.3, 1.0, 0.5]))]


def conditional():
    return [Factor(GaussianFlow(torch.zeros(2))), Factor(GaussianFlow(torch.ones(2), var=0.5), parents=(0,))]


def simulator():
    return [Factor(GaussianFlow(torch.zeros(3, 2))), Factor(SimulatorGaussian(torch.ones(3, 2), weight=3.0), simulator=True)]


def video():
    return [Factor(MarkovVideo(4, (2,))), Factor(SimulatorGaussian(torch.full((4, 2), 0.7), weight=2.0), simulator=True)]


def tilt():
    return [RewardFactor(QuadraticReward([1.0, 1.0], scale=0.5), weight=2.0),
            RewardFactor(HalfSpaceReward([1.0, 0.0], offset=1.5), weight=1.0)]


def reject_all():
    return [RewardFactor(HalfSpaceReward([1.0, 0.0], offset=-50.0), weight=1.0)]


def video_tilt():
    return [RewardFactor(QuadraticReward(torch.zeros(4, 2)), weight=1.0)]


AR = dict(path="autoregressive", chunk=2)
# name: (shape, factors, rewards, settings)
CASES = {
    "ais mala": ((2,), gaussians, None, dict(levels=12, particles=16)),
    "ais hmc systematic": ((2,), mixtures, None, dict(levels=12, particles=32, kernel="hmc", resample="systematic")),
    "ais resample always": ((2,), gaussians, None, dict(levels=8, particles=16, resample_when="always", num_samples=5)),
    "ais resample times": ((2,), gaussians, None, dict(levels=8, particles=16, resample_when="times", resample_times=[0.25, 0.5])),
    "ais reward moves": ((2,), gaussians, tilt, dict(levels=10, particles=32)),
    "ais no reward moves": ((2,), gaussians, tilt, dict(levels=10, particles=32, reward_moves=False)),
    "ais adaptive temper": ((2,), gaussians, tilt, dict(levels=10, particles=32, adaptive_temper=True)),
    "ais output all": ((2,), gaussians, None, dict(levels=6, particles=8, output="all")),
    "ais float64": ((2,), gaussians, None, dict(levels=6, particles=8, dtype="float64")),
    "ais max_batch": ((2,), gaussians, tilt, dict(levels=8, particles=16, max_batch=5)),
    "ais keep_trace scores": ((2,), gaussians, tilt, dict(levels=8, particles=16, keep_trace="scores")),
    "ais keep_trace off": ((2,), gaussians, tilt, dict(levels=8, particles=16, keep_trace=False)),
    "ais one level": ((2,), gaussians, None, dict(levels=1, particles=8)),
    "flow": ((2,), gaussians, None, dict(levels=12, particles=16, annealing="flow")),
    "flow rewards multinomial": ((2,), gaussians, tilt, dict(levels=12, particles=16, annealing="flow", resample="multinomial")),
    "flow greedy median best": ((2,), gaussians, tilt, dict(levels=6, particles=8, weighting="greedy", resample="median",
                                                            annealing="flow", resample_when="times", resample_times=[0.5])),
    "flow velocities only": ((2,), velocities_only, tilt, dict(levels=12, particles=16)),
    "flow regions and masks": ((4,), regional, None, dict(levels=12, particles=16)),
    "flow Eq. 7": ((2,), conditional, None, dict(levels=12, particles=16, annealing="flow", cond_updates=2)),
    "flow sim_updates": ((3, 2), simulator, None, dict(levels=8, particles=8, annealing="flow", sim_updates=3)),
    "flow inversion": ((2,), gaussians, None, dict(levels=8, particles=8, annealing="flow", init="inversion", invert=[1.0, 1.0])),
    "flow given init": ((2,), gaussians, None, dict(levels=8, particles=4, annealing="flow", init=[[0.1, 0.2]] * 4)),
    "flow flux_shift": ((2,), gaussians, None, dict(levels=8, particles=8, annealing="flow", schedule="flux_shift")),
    "flow all rejected": ((2,), gaussians, reject_all, dict(levels=4, particles=8, annealing="flow")),
    "fk": ((2,), velocities_only, None, dict(levels=12, particles=32, annealing="fk")),
    "fk rewards noise 2": ((2,), velocities_only, tilt, dict(levels=12, particles=32, annealing="fk", fk_noise=2.0)),
    "fk regions and masks": ((4,), regional, None, dict(levels=12, particles=32, annealing="fk")),
    "fk langevin": ((2,), gaussians, None, dict(levels=8, particles=16, annealing="fk", kernel="langevin")),
    "fk max_batch": ((2,), velocities_only, tilt, dict(levels=8, particles=16, annealing="fk", max_batch=3)),
    "video ais chunk 1": ((4, 2), video, None, dict(levels=8, particles=16, path="autoregressive", chunk=1, resample_when="always")),
    "video ais": ((4, 2), video, None, dict(levels=8, particles=16, **AR)),
    "video ais rewards temper": ((4, 2), video, video_tilt, dict(levels=6, particles=8, adaptive_temper=True, **AR)),
    "video flow rewards": ((4, 2), video, video_tilt, dict(levels=6, particles=8, annealing="flow", sim_updates=2, **AR)),
    "video fk": ((4, 2), video, None, dict(levels=8, particles=16, annealing="fk", **AR)),
    "video inversion": ((4, 2), video, None, dict(levels=6, particles=4, annealing="flow", init="inversion",
                                                  invert=[[0.3, 0.3]] * 4, mcmc_steps=0, **AR)),
    "video max_batch": ((4, 2), video, None, dict(levels=6, particles=8, path="autoregressive", chunk=3, max_batch=3)),
}


def stop_at(level: int, by_raising: bool):
    def callback(info):
        if info.level >= level:
            if by_raising:
                raise StopSampling()
            return False
    return callback


CALLBACKS = {"ais mala": stop_at(5, False), "flow": stop_at(3, True), "video ais chunk 1": stop_at(12, True)}


def fingerprints() -> dict[str, str]:
    out = {}
    for name, (shape, factors, rewards, settings) in CASES.items():
        runs = [(name, None)] + ([(name + ", stopped by a callback", CALLBACKS[name])] if name in CALLBACKS else [])
        for label, callback in runs:
            problem = Problem(shape, factors(), rewards() if rewards else [])
            try:
                out[label] = digest(sample(problem, Settings(seed=3, **settings), callback=callback))
            except Exception as e:  # noqa: BLE001 -- an error's message is part of the fingerprint
                out[label] = f"{type(e).__name__}: {hashlib.sha256(str(e).encode()).hexdigest()[:10]}"
    return out


def baseline(rev: str) -> dict[str, str]:
    """The fingerprints of the engine at ``rev``, from a copy of that tree."""
    with tempfile.TemporaryDirectory() as tree:
        archive = subprocess.run(["git", "-C", str(HERE), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        env = dict(os.environ, POELANG_TREE=tree, PYTHONPATH=tree)
        done = subprocess.run([sys.executable, __file__, "--print"], env=env, check=True, capture_output=True, text=True)
        return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD", help="the git revision to compare with (default HEAD)")
    parser.add_argument("--print", action="store_true", help="print this tree's fingerprints as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.print:
        print(json.dumps(fingerprints()))
        return
    here, there = fingerprints(), baseline(args.against)
    width = max(map(len, here)) + 2
    print(f"{'case':{width}} {'here':18} {args.against:18} ")
    for name in here:
        mark = "same" if here[name] == there.get(name) else "DIFFERENT"
        print(f"{name:{width}} {here[name][:16]:18} {str(there.get(name))[:16]:18} {mark}")
    same = sum(here[n] == there.get(n) for n in here)
    print(f"{same} of {len(here)} cases give the same bytes here and at {args.against}")


if __name__ == "__main__":
    main()
