"""A mask that is exactly 0/1 and rectangular (box_mask(...)) is a region, not a soft weight:
the product is the box form's, and it is sampled on the exact path."""
from __future__ import annotations

import torch

import poelang
from poelang import infer
from poelang.interpreter import Interpreter

BOX = """
prior = gaussian(mean=0.0, std=1.0, size=(4, 6))
evidence = gaussian(mean=2.0, std=0.5, size=({h}, {w}))
{region}
x ~ prior * evidence[{name}] with {{ levels = 20, particles = 64 }}
"""


def problem_of(source: str, tmp_path):
    program = poelang.parse(source, str(tmp_path / "p.poe"), base_dir=tmp_path)
    program.raise_for_errors()
    interp = Interpreter(program)
    node = program.graph.samples[0]
    problem, _ = interp.problem(node)
    return problem, interp.settings(node.settings)


def test_a_box_mask_is_the_box(tmp_path):
    boxed, _ = problem_of(BOX.format(h=2, w=3, region="b = box(1px, 1px, 4px, 3px)", name="b"), tmp_path)
    masked, settings = problem_of(BOX.format(h=4, w=6, region="b = box_mask(box(1px, 1px, 4px, 3px), size=(4, 6))",
                                             name="b"), tmp_path)
    for a, b in zip(boxed.factors, masked.factors):
        assert a.region == b.region and b.mask is None
    assert masked.factors[1].expert.event_shape == (3, 2, 3)  # channels, the crop
    result = infer.sample(masked, settings)
    assert result.plan["annealing"] == "ais" and result.plan["exact"].startswith("exact")


def test_a_soft_or_ragged_mask_stays_a_weight(tmp_path):
    blurred, _ = problem_of(BOX.format(h=4, w=6, name="m",
                                       region="m = blur(box_mask(box(1px, 1px, 4px, 3px), size=(4, 6)), 1px)"), tmp_path)
    assert blurred.factors[1].mask is not None and blurred.factors[1].region is None
    ragged, _ = problem_of(BOX.format(h=4, w=6, name="m", region="m = box_mask(box(0px, 0px, 2px, 2px), size=(4, 6)) "
                                      "| box_mask(box(2px, 2px, 5px, 4px), size=(4, 6))"), tmp_path)
    assert ragged.factors[1].mask is not None
    assert torch.equal(ragged.factors[1].mask.unique(), torch.tensor([0.0, 1.0]))
