"""The mini world's vocabulary: shapes, colours and sizes, and the ground."""
from __future__ import annotations


from poelang.stdlib.scene import look as _look

# ---------------------------------------------------------------------------------------------------------------------
# Vocabulary

COLORS = ("red", "green", "blue", "yellow", "purple", "white")
# sRGB base colours, far apart in hue and brightness so that a 32-pixel render still tells them apart under shading
# (the palette of `poelang.stdlib.scene`, which simulate() and render() share)
COLOR_RGB = {color: _look.COLOR_RGB[color] for color in COLORS}
SHAPES = ("sphere", "cube", "cylinder", "cone")
PLURALS = {"sphere": "spheres", "cube": "cubes", "cylinder": "cylinders", "cone": "cones"}
SIZES = ("small", "large")
# Width of an object's footprint (sphere diameter, cube edge, cylinder and cone base diameter), in meters
SIZE_WIDTH = {"small": 0.8, "large": 1.25}
# Height over width: cones are taller than wide so that their tip reads as a tip at 32 pixels
HEIGHT_RATIO = {"sphere": 1.0, "cube": 1.0, "cylinder": 1.0, "cone": 1.25}
RELATIONS = ("left of", "right of", "in front of", "behind")
COUNTS = ("one", "two", "three")
COUNT_WORD = {1: "a", 2: "two", 3: "three"}
WORD_COUNT = {"a": 1, "one": 1, "two": 2, "three": 3}
MAX_OBJECTS = 3
VOCABULARY = tuple(
    sorted(
        {"a", "and", *COUNTS, *SIZES, *COLORS, *SHAPES, *PLURALS.values()}
        | {word for relation in RELATIONS for word in relation.split()}
    )
)

GROUND_RGB = _look.GROUND_RGB
SKY_RGB = _look.SKY_RGB
# The ground slab spans y in GROUND_Y; its far edge is the horizon seen across the top of the image
GROUND_Y = (-8.0, 4.6)
GROUND_HALF_X = 8.0

# ---------------------------------------------------------------------------------------------------------------------
