"""Discriminative experts: black-box scores of the predicted clean canvas.

Rewards are called on x0_hat under ``torch.no_grad()``, one batched call per
reward (chunked by ``max_batch``). They may return -inf (a hard constraint);
NaN and +inf stop the run with the reward's name and the level.

Before the last level, :func:`soften` replaces -inf by
``-constraint_penalty``: a hard constraint judged on a blurry early x0_hat
would otherwise reject every particle at once, and a huge penalty would make
the weights of lineages that violate early and satisfy late so extreme that a
finite population cannot represent them (a bias at finite L). A moderate
penalty (default 2: violators weigh e^-2 ~ 14 %) is a twist, not a change of
target. The potentials telescope, and the last level uses the raw
values, so the product of potentials is still exactly exp(sum_j w_j r_j(x)).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch

from .errors import SamplerError
from .protocol import RewardFactor

Tensor = torch.Tensor


class RewardSet:
    def __init__(self, rewards: Sequence[RewardFactor], max_batch: Optional[int] = None) -> None:
        self.rewards = list(rewards)
        self.names: List[str] = [r.name for r in self.rewards]
        self.max_batch = max_batch
        self.count = 0

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def weights(self) -> List[float]:
        return [float(r.weight) for r in self.rewards]

    def evaluate(self, x0: Tensor, where: str) -> Tensor:
        """Per-reward scores [L, J] (float64, on x0's device)."""
        n = x0.shape[0]
        out = torch.zeros(n, len(self.rewards), dtype=torch.float64, device=x0.device)
        if not self.rewards:
            return out
        step = self.max_batch or n
        with torch.no_grad():
            for j, rf in enumerate(self.rewards):
                parts = [torch.as_tensor(rf.expert.score(x0[k : k + step])) for k in range(0, n, step)]
                r = torch.cat(parts).to(device=x0.device, dtype=torch.float64).reshape(-1)
                if r.shape[0] != n:
                    raise SamplerError(
                        f"reward '{self.names[j]}' returned {r.shape[0]} scores for {n} samples"
                    )
                if bool(torch.isnan(r).any() | torch.isposinf(r).any()):
                    raise SamplerError(f"reward '{self.names[j]}' returned NaN or +inf at {where}")
                if rf.weight < 0 and bool(torch.isneginf(r).any()):
                    raise SamplerError(f"reward '{self.names[j]}' has the negative weight {rf.weight:g} but returned -inf "
                                       f"at {where}: exp({rf.weight:g} * -inf) is infinite; a hard constraint takes "
                                       "a positive weight")
                out[:, j] = r
        self.count += n * len(self.rewards)
        return out

    def total(self, per_reward: Tensor) -> Tensor:
        """sum_j w_j r_j, with 0 * (-inf) read as 0 (a reward of weight 0 is off)."""
        total = torch.zeros(per_reward.shape[0], dtype=torch.float64, device=per_reward.device)
        for j, w in enumerate(self.weights):
            if w != 0:
                total = total + w * per_reward[:, j]
        return total


def soften(per_reward: Tensor, penalty: float) -> Tensor:
    """Replace -inf (a violated hard constraint) by -penalty (before the last level)."""
    return torch.where(torch.isneginf(per_reward), torch.full_like(per_reward, -penalty), per_reward)


def rejection_message(per_reward: Tensor, names: Sequence[str], weights: Sequence[float], where: str) -> str:
    """Say which reward(s) rejected every particle."""
    n = per_reward.shape[0]
    culprits = [
        f"'{names[j]}'"
        for j in range(per_reward.shape[1])
        if weights[j] != 0 and bool(torch.isneginf(per_reward[:, j]).all())
    ]
    if culprits:
        return (
            f"every particle was rejected at {where}: reward {' and '.join(culprits)} returned -inf "
            f"for all {n} particles (the constraint is never satisfied; relax it, add particles, "
            f"or check that it can hold under the generative experts)"
        )
    partial = [
        f"'{names[j]}' ({int(torch.isneginf(per_reward[:, j]).sum())} of {n})"
        for j in range(per_reward.shape[1])
        if weights[j] != 0 and bool(torch.isneginf(per_reward[:, j]).any())
    ]
    if partial:
        return (
            f"every particle was rejected at {where}: each one violates at least one constraint -- "
            + ", ".join(partial)
        )
    return f"every particle has zero weight at {where}"
