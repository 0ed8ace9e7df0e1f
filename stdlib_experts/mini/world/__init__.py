"""The mini world: seeded scenes of coloured primitives on a grey ground, their captions, renders and drop clips.

Small experts are trained on this world because everything about it is known: every caption word comes from a closed
vocabulary, every pixel has a ground-truth object index and depth, so generated samples can be judged by rules
(`poelang.stdlib.mini.rules`) instead of by another learned model.

Rendering goes through the pyrender fork vendored by genesis-world (`genesis.ext.pyrender`): one GL scene holds a
pool of meshes per (shape, size), built once; a render only moves pool meshes into view and recolours them, which is
what makes hundreds of renders per second possible on two CPU cores. Clips simulate the fall of objects with the rigid
solver of genesis-world (one `gs.Scene`, built once, reset between clips) and render its poses with the same renderer.

Run `python -m poelang.stdlib.mini.world --out DIR --images N --clips M --size 32 --seed S` to write a dataset:
DIR/images.npz holds rgb uint8 [N,H,W,3], depth float16 [N,H,W] (meters, sky = FAR_DEPTH), masks uint8 [N,H,W]
(0 background, k+1 object k), captions, split, meta (JSON) and per-scene attributes (n_objects, shape/color/size
indices padded with -1, xy, yaw, objects_json); DIR/clips.npz the same per frame, plus dropped, positions and quats.
Only captions of the training split are written unless --split says otherwise (see `split_of`).
"""

from __future__ import annotations

from poelang.stdlib.scene.look import init_genesis, quat_to_matrix  # noqa: F401 - public here too
from poelang.stdlib.mini.world.vocabulary import (  # noqa: F401
    COLORS, COLOR_RGB, COUNTS, COUNT_WORD, GROUND_HALF_X, GROUND_RGB, GROUND_Y, HEIGHT_RATIO, MAX_OBJECTS, PLURALS, RELATIONS, SHAPES, SIZES, SIZE_WIDTH, SKY_RGB, VOCABULARY, WORD_COUNT,
)
from poelang.stdlib.mini.world.camera import (  # noqa: F401
    CAMERA_DISTANCE, DEFAULT_SIZE, ELEVATION_DEG, FAR_DEPTH, FOV_DEG, MAX_SIZE, MIN_SIZE, TARGET, Z_NEAR, _CAMERA_POSE, _WORLD_TO_CAMERA, _look_at_pose, camera_depth, camera_pose, focal_px, ground_point, project,
)
from poelang.stdlib.mini.world.scenes import (  # noqa: F401
    GROUND_GAP, IMAGE_MARGIN, MAX_BOX_OVERLAP, Obj, PLACEMENT_RESTARTS, PLACE_Y, REPEAT_PROBABILITY, SAME_CLASS_GAP, Scene, _box_overlap, _draw_attributes, _fits, _local_outline, _outline_points, _place, object_pose, projected_box, sample_scene,
)
from poelang.stdlib.mini.world.captions import (  # noqa: F401
    DEPTH_MARGIN, SIDEWAYS_MARGIN, _contact_row, _groups, _image_center, caption, clear_relations, noun_phrase, split_of,
)
from poelang.stdlib.mini.world.rendering import (  # noqa: F401
    Render, Renderer, SEG_STEP, _PARKED, _RENDERERS, _shape_mesh, caption_facts, get_renderer, render_scene,
)
from poelang.stdlib.mini.world.clips import (  # noqa: F401
    Clip, DROP_HEIGHT, DROP_PROBABILITY, MIN_DROP_HEIGHT, SIM_DT, Simulator, _SIMULATOR, _cone_file, _yaw_quat, droppable, get_simulator, max_drop_height, sample_clip_scene, simulate_clip,
)
from poelang.stdlib.mini.world.dataset import (  # noqa: F401
    SPLITS, _attribute_arrays, _captioned, _meta, _save, _scene_json, main, write_clips, write_images,
)
