"""Issue #17 item 5 through the language: `e[box_mask(b)]` on an analytic expert samples the target of `e[b]`.

The image Gaussians have independent pixels, so a 0/1 mask is the expert's marginal on the masked pixels:
`auto` takes the exact `ais` path for both forms and the two agree with the closed form
(N(0, 1) * N(0.8, 0.5^2) = N(0.64, 0.2) inside the box, N(0, 1) outside). A blurred mask stays a weight: the
flow path, and the plan names the mask.
"""
from __future__ import annotations

import poelang
import torch

PRODUCT = """prior = gaussian(mean=0.0, std=1.0, size=(4, 4))
{boxed}
x ~ prior * {factor} with {{
    levels = 50
    particles = 400
    mcmc_steps = 2
}}
"""
BOX_FORM = PRODUCT.format(boxed="boxed = gaussian(mean=0.8, std=0.5, size=(2, 2))", factor="boxed[box(0%, 0%, 50%, 50%)]")
MASK = "box_mask(box(0%, 0%, 50%, 50%), size=(4, 4))"
MASK_FORM = PRODUCT.format(boxed="boxed = gaussian(mean=0.8, std=0.5, size=(4, 4))", factor=f"boxed[{MASK}]")


def run(source: str, seed: int):
    program = poelang.parse(source, "<masks>")
    assert program.ok, program.render_diagnostics()
    return next(iter(program.run(seed=seed).samples.values()))


def inside_and_outside(result) -> torch.Tensor:
    """Weighted mean and variance, pooled over the pixels inside the box and outside it."""
    w = result.weights.double()
    x = result.particles.double()  # [L, 3, 4, 4]
    m = torch.einsum("l,l...->...", w, x)
    v = torch.einsum("l,l...->...", w, (x - m) ** 2)
    inside = torch.zeros(4, 4, dtype=torch.bool)
    inside[:2, :2] = True
    return torch.stack([m[:, inside].mean(), v[:, inside].mean(), m[:, ~inside].mean(), v[:, ~inside].mean()])


def test_a_0_1_box_mask_is_sampled_like_the_box():
    exact = torch.tensor([0.64, 0.2, 0.0, 1.0], dtype=torch.float64)
    for source in (BOX_FORM, MASK_FORM):
        runs = [run(source, seed) for seed in range(4)]
        assert runs[0].plan["annealing"] == "ais" and runs[0].plan["exact"].startswith("exact")
        est = torch.stack([inside_and_outside(r) for r in runs])
        se = (est.std(0) / 2).clamp_min(0.004)  # 4 runs; the floor is the iid error of the pooled statistics
        assert bool(((est.mean(0) - exact).abs() < 5 * se).all()), (est.mean(0), se)


def test_a_blurred_mask_stays_a_weight_and_the_plan_names_it():
    result = run(PRODUCT.format(boxed="boxed = gaussian(mean=0.8, std=0.5, size=(4, 4))",
                                factor=f"boxed[blur({MASK}, 2px)]").replace("particles = 400", "particles = 4"), 0)
    assert result.plan["annealing"] == "flow"
    assert "the mask on 'boxed' is soft" in " ".join(result.plan["notes"])
