"""The analytic experts: signatures and loaders (their torch math is in `analytic.py`).

Analytic experts have closed-form velocities and log densities on the
rectified-flow path, so products of them have known answers: they are what
the sampler's exactness tests and the `programs/analytic/` examples run on.
"""
from __future__ import annotations

from poelang.experts.spec import Bound, ExpertSpec, Param
from poelang.types import Domain, ImageT, VideoT

_IMPL = "poelang.stdlib.analytic_experts"


def _vector_length(value) -> int | None:
    return len(value) if isinstance(value, (list, tuple)) else None


def _check_std(bound: Bound) -> None:
    """std > 0, and std² a float64 that neither underflows to 0 nor overflows."""
    std = bound.values.get("std")
    for s in std if isinstance(std, (list, tuple)) else [std]:
        if not isinstance(s, (int, float)) or isinstance(s, bool):
            continue
        if s <= 0:
            bound.error("std must be positive", "std")
        elif s < 1e-150 or s > 1e150:
            bound.error(f"std {s:g} is too {'small' if s < 1 else 'large'} (its variance {'underflows' if s < 1 else 'overflows'})",
                        "std")
        else:
            continue
        return


def _gaussian_domain(bound: Bound) -> Domain:
    _check_std(bound)
    size = bound.values.get("size")
    mean, dim = bound.values.get("mean"), bound.values.get("dim")
    if isinstance(size, (list, tuple)):
        if _vector_length(mean) is not None:
            bound.error("an image Gaussian takes a scalar mean", "mean")
        if _vector_length(bound.values.get("std")) is not None:
            bound.error("an image Gaussian takes a scalar std", "std")
        return Domain("image", (int(size[0]), int(size[1])))
    length = _vector_length(mean)
    if length is None and isinstance(dim, (int, float)):
        length = int(dim)
    if length is None:
        bound.error("give the dimension: a vector mean, dim= or size=", "mean")
        return Domain("vector", (None,))
    if isinstance(dim, (int, float)) and _vector_length(mean) not in (None, int(dim)):
        bound.error(f"mean has {_vector_length(mean)} entries but dim = {int(dim)}", "dim")
    std = bound.values.get("std")
    if _vector_length(std) not in (None, length):
        bound.error(f"std has {_vector_length(std)} entries, the mean {length}", "std")
    return Domain("vector", (length,))


def _mixture_domain(bound: Bound) -> Domain:
    _check_std(bound)
    weights, means = bound.values.get("weights"), bound.values.get("means")
    if isinstance(weights, (list, tuple)) and any(w is not None and w <= 0 for w in weights):
        bound.error("mixture weights must be positive", "weights")
    if not isinstance(means, (list, tuple)) or not means:
        return Domain("vector", (None,))
    lengths = {_vector_length(m) for m in means}
    if len(lengths) != 1 or None in lengths:
        bound.error("every mean must be a vector of the same length", "means")
        return Domain("vector", (None,))
    if isinstance(weights, (list, tuple)) and len(weights) != len(means):
        bound.error(f"{len(weights)} weights for {len(means)} means", "weights")
    std = bound.values.get("std")
    if _vector_length(std) not in (None, len(means)):
        bound.error(f"std is one number, or one per component: {len(means)} numbers, got {len(std)}", "std")
    return Domain("vector", (lengths.pop(),))


def _simulator_domain(bound: Bound) -> Domain:
    target = bound.types.get("target")
    if isinstance(target, ImageT):
        return Domain("image", (target.h, target.w))
    if isinstance(target, VideoT):
        return Domain("video", (target.f, target.h, target.w))
    return Domain("vector", (_vector_length(bound.values.get("target")),))


EXPERTS = [
    ExpertSpec(
        "gaussian", "generative", "a Gaussian N(mean, std²) flow expert with closed-form velocity",
        (Param("mean", "Number|Vector", doc="a vector, or a scalar with dim= or size="),
         Param("std", "Number|Vector", 1.0, "standard deviation, per coordinate or shared"),
         Param("dim", "Int?", None, "vector length when the mean is a scalar"),
         Param("size", "Size?", None, "an image (3×h×w) Gaussian instead of a vector")),
        loader=f"{_IMPL}:load_gaussian", domain=_gaussian_domain, family="analytic",
    ),
    ExpertSpec(
        "mixture", "generative", "a Gaussian-mixture flow expert (diagonal covariances)",
        (Param("weights", "Vector", doc="mixture weights (normalised)"),
         Param("means", "Matrix", doc="one mean vector per component"),
         Param("std", "Number|Vector", 1.0, "standard deviation of every component, or a list with one per component")),
        loader=f"{_IMPL}:load_mixture", domain=_mixture_domain, family="analytic",
    ),
    ExpertSpec(
        "simulator", "simulator", "the simulator's Gaussian expert exp(-weight·‖x − target‖²) on the masked part",
        (Param("target", "Image|Video|Vector", doc="the simulated frames (or vector) to stay close to"),
         Param("weight", "Number", 10.0, "w: the Gaussian's precision is 2w"),
         Param("mask", "Mask?", None, "where the simulator knows the scene; none: everywhere")),
        loader=f"{_IMPL}:load_simulator", domain=_simulator_domain, family="analytic",
    ),
    ExpertSpec(
        "quadratic", "reward", "r(x) = −scale · ‖x − center‖² (a Gaussian tilt)",
        (Param("center", "Number|Vector"), Param("scale", "Number", 1.0)),
        loader=f"{_IMPL}:load_quadratic", scores=("vector", "image", "video"), family="analytic",
    ),
    ExpertSpec(
        "halfspace", "reward", "a hard constraint: r(x) = 0 where normal·x ≤ offset, −∞ elsewhere",
        (Param("normal", "Vector"), Param("offset", "Number", 0.0)),
        loader=f"{_IMPL}:load_halfspace", scores=("vector",), family="analytic", hard=True,
    ),
]


# --- loaders: graph arguments → torch experts (run time only) ---------------------


def _tensor(value, shape=None):
    from poelang._lazy import lazy_import

    torch = lazy_import("torch")
    t = value if hasattr(value, "shape") else torch.tensor(value, dtype=torch.float64)
    t = t.to(torch.float64)
    return t.expand(shape).clone() if shape is not None and tuple(t.shape) != tuple(shape) else t


def load_gaussian(args: dict, context):
    from poelang.stdlib.analytic import GaussianFlow

    std = args["std"]
    var = _tensor(std) ** 2
    mean = _tensor(args["mean"], context.event_shape)
    if var.dim() > 0:
        var = var.expand(context.event_shape).clone() if tuple(var.shape) != tuple(context.event_shape) else var
    return GaussianFlow(mean, var=var, name=context.name)


def load_mixture(args: dict, context):
    from poelang.stdlib.analytic import MixtureFlow

    var = _tensor(args["std"]) ** 2
    means = _tensor(args["means"])
    if var.dim() == 1:  # one std per component (never per coordinate, even when K equals the dimension)
        var = var.reshape(-1, *([1] * (means.dim() - 1))).expand(means.shape).clone()
    return MixtureFlow(_tensor(args["weights"]), means, var=var, name=context.name)


def load_simulator(args: dict, context):
    from poelang.stdlib.analytic import SimulatorGaussian

    target = _tensor(args["target"])
    mask = args.get("mask")
    support = None
    if mask is not None:  # the simulator has an opinion where its (soft) mask is above one half
        m = _tensor(mask) > 0.5
        if m.dim() == 3 and target.dim() == 4:  # per-frame masks [f, h, w] of a video [f, 3, h, w]
            m = m.unsqueeze(1)
        support = m.to(target.dtype).expand(target.shape).clone()
    return SimulatorGaussian(target, float(args["weight"]), mask=support, name=context.name)


def load_quadratic(args: dict, context):
    from poelang.stdlib.analytic import QuadraticReward

    return QuadraticReward(_tensor(args["center"], context.event_shape), scale=float(args["scale"]), name=context.name)


def load_halfspace(args: dict, context):
    from poelang.stdlib.analytic import HalfSpaceReward

    return HalfSpaceReward(_tensor(args["normal"]), float(args["offset"]), name=context.name)
