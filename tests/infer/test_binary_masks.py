"""A mask that is exactly 0/1 on the expert's grid is a region (issue #17, item 5).

The same target written two ways -- an expert on a box (``region``) and the
same expert over the whole canvas under a 0/1 mask of that box -- must be
sampled equally exactly. Before, any mask was a soft weight: ``auto`` took the
approximate flow path and the mask form came out many standard errors off
(the flow check below still shows it). Now the expert restricts itself to the
mask (its marginal there, exact for independent coordinates) and the mask
form takes the exact paths: ``ais`` with densities, ``fk`` from velocities.

A mask that is not 0/1 on the grid, or a 0/1 mask on an expert that cannot
give its marginal (a network: its velocity at a pixel depends on the whole
canvas), stays a weight, and the plan says so, naming the factor.
"""
from __future__ import annotations

import pytest
import torch

from poelang.infer import Factor, Problem, Settings, sample
from poelang.stdlib.analytic import GaussianFlow, VelocityOnly, gaussian_product

from .checks import assert_within_mc, iid_floor, replicate, weighted_mean_var

SHAPE = (1, 4, 4)
BOX = (slice(None), slice(0, 2), slice(0, 3))  # 6 of the 16 coordinates
AIS = Settings(levels=40, particles=1000, mcmc_steps=2, keep_trace=False)
FK = Settings(levels=100, particles=2000, annealing="fk", keep_trace=False)


def _experts():
    """A prior over the canvas, and an expert that disagrees with it by about two
    standard deviations on the box (N(0, 1) * N(2, 0.5^2) = N(1.6, 0.447^2) there)."""
    gen = torch.Generator().manual_seed(5)
    prior = GaussianFlow(torch.zeros(SHAPE), var=1.0, name="prior")
    mean = 2.0 + 0.3 * torch.randn(SHAPE, generator=gen)
    var = 0.25 + 0.1 * torch.rand(SHAPE, generator=gen)
    on_canvas = GaussianFlow(mean, var=var, name="boxed")  # over the whole canvas (the mask form)
    on_box = GaussianFlow(mean[BOX], var=var[BOX], name="boxed")  # over the box only (the region form)
    mask = torch.zeros(SHAPE)
    mask[BOX] = 1.0
    return prior, on_canvas, on_box, mask


def box_form(wrap=lambda e: e):
    prior, _, on_box, _ = _experts()
    return Problem(SHAPE, [Factor(wrap(prior)), Factor(wrap(on_box), region=BOX)])


def mask_form(wrap=lambda e: e):
    prior, on_canvas, _, mask = _experts()
    return Problem(SHAPE, [Factor(wrap(prior)), Factor(wrap(on_canvas), mask=mask)])


def check_against_the_box_form(problem, settings, runs=6):
    prior, _, on_box, _ = _experts()
    mean, cov, _ = gaussian_product(SHAPE, [(prior, 1.0, None), (on_box, 1.0, BOX)])
    var = torch.diagonal(cov)
    est = replicate(problem, settings, runs, weighted_mean_var)
    floor = iid_floor(torch.cat([var, 2 * var**2]), runs, settings.particles)
    assert_within_mc(est, torch.cat([mean, var]), "0/1 mask vs the closed form of the box form", z=5.5, floor=floor)


def test_the_mask_form_samples_the_box_forms_target_exactly_with_densities():
    result = sample(mask_form(), AIS.replace(levels=4, particles=4))
    assert result.plan["annealing"] == "ais" and result.plan["kernel"] == "mala"
    assert result.plan["exact"].startswith("exact")
    check_against_the_box_form(mask_form(), AIS)
    check_against_the_box_form(box_form(), AIS)  # the reference the issue compared with


def test_the_mask_form_samples_the_box_forms_target_exactly_from_velocities():
    plan = sample(mask_form(VelocityOnly), FK.replace(levels=4, particles=4)).plan
    assert plan["annealing"] == "fk" and plan["exact"].startswith("exact")
    check_against_the_box_form(mask_form(VelocityOnly), FK, runs=8)


def test_the_mask_as_a_weight_on_the_flow_path_misses_it():
    """What every mask got before: the flow path (what auto picked), many standard errors off."""
    flow = AIS.replace(annealing="flow", kernel="langevin")
    with pytest.raises(AssertionError, match="standard errors") as missed:
        check_against_the_box_form(mask_form(VelocityOnly), flow, runs=4)
    print("flow path on the mask form:", missed.value)


def test_any_0_1_pattern_is_a_region_not_only_a_box():
    """The support need not be rectangular: an L-shaped 0/1 mask is sampled exactly."""
    prior, on_canvas, _, _ = _experts()
    mask = torch.zeros(SHAPE)
    mask[0, 1:3, 0] = 1
    mask[0, 2, 1:4] = 1
    marginal = on_canvas.restricted(mask)
    mean, cov, _ = gaussian_product(SHAPE, [(prior, 1.0, None), (marginal, 1.0, None)])
    problem = Problem(SHAPE, [Factor(prior), Factor(on_canvas, mask=mask)])
    est = replicate(problem, AIS, 6, weighted_mean_var)
    var = torch.diagonal(cov)
    assert_within_mc(est, torch.cat([mean, var]), "L-shaped 0/1 mask", z=5.5,
                     floor=iid_floor(torch.cat([var, 2 * var**2]), 6, AIS.particles))


def test_what_stays_a_weight_is_named_in_the_plan():
    prior, on_canvas, _, mask = _experts()
    soft = mask * 0.5 + 0.25  # values 0.25 / 0.75: a blurred edge, say
    plan = sample(Problem(SHAPE, [Factor(VelocityOnly(prior)), Factor(VelocityOnly(on_canvas), mask=soft)]),
                  FK.replace(levels=3, particles=2)).plan
    assert plan["exact"] == ("not exact: Feynman-Kac weights, but the mask on 'boxed' is soft (16 of its 16 "
                             "values on the expert's grid lie strictly between 0 and 1)")

    class Network:  # a velocity that depends on the whole canvas, no marginal to give
        name = "net"

        def velocity(self, x, sigma):
            return x - x.mean(dim=(1, 2, 3), keepdim=True)

    plan = sample(Problem(SHAPE, [Factor(VelocityOnly(prior)), Factor(Network(), mask=mask)]),
                  FK.replace(levels=3, particles=2)).plan
    assert "the mask on 'net' is 0/1 but the expert gives no marginal on it" in plan["exact"]
    assert plan["exact"].startswith("not exact")
    auto = sample(Problem(SHAPE, [Factor(prior), Factor(Network(), mask=mask)]), Settings(levels=3, particles=2))
    assert auto.plan["annealing"] == "flow"


def test_a_full_covariance_keeps_its_mask_as_a_weight():
    """Its coordinates are not independent: the masked score is not its marginal's."""
    full = GaussianFlow([0.0, 1.0], cov=[[0.5, 0.2], [0.2, 0.3]], name="full")
    assert full.restricted(torch.tensor([1.0, 0.0])) is None
    with pytest.raises(Exception, match="is 0/1 but the expert gives no marginal"):
        sample(Problem((2,), [Factor(GaussianFlow([0.0, 0.0])), Factor(full, mask=torch.tensor([1.0, 0.0]))]),
               Settings(kernel="mala", levels=3, particles=2))


def test_the_composed_field_is_unchanged_by_the_classification():
    """Turning the mask into a support changes what is exact, not the field the flow path follows."""
    from poelang.infer.product import ProductField

    prior, on_canvas, _, mask = _experts()
    x = torch.randn((5,) + SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    as_region = ProductField([Factor(prior), Factor(on_canvas, mask=mask)], SHAPE, dtype=torch.float64)
    class NoMarginal:  # the same velocity, without restricted(): the mask stays a weight
        name = "boxed"
        velocity = staticmethod(on_canvas.velocity)

    as_weight = ProductField([Factor(prior), Factor(NoMarginal(), mask=mask)], SHAPE, dtype=torch.float64)
    assert as_weight.factors[1].mask is not None
    assert as_region.factors[1].mask is None and as_region.factors[1].expert.support is not None
    for sigma in (0.9, 0.3):
        a, b = as_region.evaluate(x, sigma), as_weight.evaluate(x, sigma)
        torch.testing.assert_close(a.velocity, b.velocity)
        torch.testing.assert_close(a.score, b.score)
