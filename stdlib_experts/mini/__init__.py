"""A procedural mini world (coloured primitives on a ground plane) that small experts are trained and judged on."""

# mini_flux learned the empty caption too (1 example in 10); guidance at this scale is what makes its shapes follow
# the caption (docs/results.md, "mini_flux and guidance")
TRUE_CFG = 3.0
