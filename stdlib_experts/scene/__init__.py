"""Rigid-body simulation and posed-asset rendering with genesis-world: what `simulate(…)` and `render(…)` compute.

A scene is a list of :class:`Body` (a sphere, a cube or a mesh file, with a pose, a velocity and a colour) on a
ground plane at z = 0 under a sky, filmed by a pinhole :class:`Camera`. :func:`simulate` drops the bodies into
genesis-world's rigid solver, one ``gs.Scene`` per scene description, and renders each frame's poses;
:func:`render` renders the bodies where they stand, with no physics. Both return :class:`Frames`: RGB, depth and
one mask per body, per frame.

Rendering goes through the pyrender fork vendored by genesis (:class:`GLScene`, which the mini world's renderer
uses too): an RGB pass (multisampled), then a segmentation pass with depth (not sampled), so that masks and depth
agree pixel for pixel. The look is the mini world's: the same palette, grey ground, sky and sun, so that a
simulated "red" ball is the red the mini experts were trained on.

Results are cached on disk by the SHA-256 of the scene description (bodies, mesh file contents, camera, frames,
fps, size, this module's version and genesis's): ``$POELANG_CACHE/simulations/<sha>.npz`` (default
``~/.cache/poelang``), written atomically, so a second run of a program neither builds a genesis scene nor even
imports genesis. Mistakes a user can make (a missing mesh file, a negative radius, an unknown colour) raise
ValueError or FileNotFoundError with a message that says what is wrong; the interpreter shows them as diagnostics.

Conventions: meters, z up; rotations are extrinsic x-y-z Euler angles in degrees (genesis's and scipy's); the
camera's ``fov`` is vertical, in degrees. Quaternions are (w, x, y, z).

Run ``python -m poelang.stdlib.scene --warm`` once per machine (CI does) to compile genesis's kernels into its cache
(``~/.cache/quadrants``, ``~/.cache/genesis``): minutes cold, seconds afterwards.
"""
from __future__ import annotations

from poelang.stdlib.scene.look import (  # noqa: F401
    AMBIENT, COLOR_RGB, GLScene, GROUND_HALF, GROUND_RGB, MAX_BODIES, MAX_SIDE, MESH_SUFFIXES, SCENE_VERSION, SEG_STEP, SIM_RATE, SKY_RGB, STATS, SUN_DIRECTION, SUN_INTENSITY, TIMINGS, Z_FAR, Z_NEAR, _GENESIS_READY, euler_to_matrix, init_genesis, matrix_to_quat, parse_color, quat_to_matrix, sun_pose, objects_problem, unknown_object,
)
from poelang.stdlib.scene.bodies import (  # noqa: F401
    Body, Camera, _check_bodies, _check_size, _vec3,
)
from poelang.stdlib.scene.frames import (  # noqa: F401
    Frames, inverse_depth,
)
from poelang.stdlib.scene.meshes import (  # noqa: F401
    _MESHES, _draw, _ground_mesh, _pose, local_mesh,
)
from poelang.stdlib.scene.physics import (  # noqa: F401
    _morph, _steps_per_frame, run_physics,
)
from poelang.stdlib.scene.cache import (  # noqa: F401
    MEMORY_ENTRIES, _MEMORY, _cached, _genesis_version, _remember, _store, cache_dir, clear_memory, scene_key,
)
from poelang.stdlib.scene.compute import (  # noqa: F401
    render, simulate,
)
