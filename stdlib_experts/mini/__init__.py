"""A procedural mini world (coloured primitives on a ground plane) that small experts are trained and judged on."""
