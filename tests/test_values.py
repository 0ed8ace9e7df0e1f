"""Run-time values: every builtin has an implementation, and the mask algebra computes what it says."""
import torch

from poelang import values as V
from poelang.experts.registry import default_registry


def test_every_builtin_and_operator_has_an_implementation():
    builtins = default_registry().builtins
    assert {"load_image", "box", "blur", "sphere", "simulate", "render", "trace"} <= set(builtins)
    for spec in builtins.values():  # the loader names a function (imported, as `run` would)
        assert callable(spec.load_function()), spec.name
    assert {"complement", "union", "intersect", "rgb", "depth", "mask"} <= set(V.OPS)


def test_box_mask_percent_and_pixels():
    ctx = V.Context(base_dir=".")
    box = V.box(ctx, V.Quantity(25, "%"), V.Quantity(0, "%"), V.Quantity(75, "%"), 2)
    m = V.box_mask(ctx, box, (4, 8))
    assert m.tolist() == [[0, 0, 1, 1, 1, 1, 0, 0]] * 2 + [[0] * 8] * 2


def test_blur_keeps_masks_soft_and_in_range():
    ctx = V.Context(base_dir=".")
    m = torch.zeros(16, 16)
    m[4:12, 4:12] = 1
    soft = V.blur(ctx, m, V.Quantity(3, "px"))
    assert 0 <= float(soft.min()) and float(soft.max()) <= 1
    assert 0 < float(soft[4, 2]) < 1 and abs(float(soft.sum()) - 64) < 1  # mass preserved away from edges
    assert V.dilate(ctx, m, 1).sum() == 100 and V.erode(ctx, m, 1).sum() == 36
    assert torch.equal(V.union(ctx, m, V.complement(ctx, m)), torch.ones(16, 16))
