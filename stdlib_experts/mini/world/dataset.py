"""The dataset writer: shards of scenes, captions and clips, and its command line."""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict

import numpy as np

from poelang.stdlib.mini.world.vocabulary import COLORS, MAX_OBJECTS, SHAPES, SIZES
from poelang.stdlib.mini.world.camera import CAMERA_DISTANCE, DEFAULT_SIZE, ELEVATION_DEG, FAR_DEPTH, FOV_DEG, TARGET
from poelang.stdlib.mini.world.scenes import Scene, sample_scene
from poelang.stdlib.mini.world.captions import caption, split_of
from poelang.stdlib.mini.world.rendering import get_renderer
from poelang.stdlib.mini.world.clips import SIM_DT, get_simulator, sample_clip_scene, simulate_clip

# Dataset writer

SPLITS = ("train", "test", "all")


def _scene_json(scene: Scene) -> str:
    return json.dumps([asdict(o) for o in scene.objects], separators=(",", ":"))


def _attribute_arrays(scenes: list[Scene]) -> dict[str, np.ndarray]:
    """Per-scene attributes as fixed-shape arrays padded to MAX_OBJECTS (index -1 where there is no object)."""
    n = len(scenes)
    arrays = {
        "n_objects": np.array([len(s.objects) for s in scenes], np.int8),
        "shape": np.full((n, MAX_OBJECTS), -1, np.int8),
        "color": np.full((n, MAX_OBJECTS), -1, np.int8),
        "size": np.full((n, MAX_OBJECTS), -1, np.int8),
        "xy": np.zeros((n, MAX_OBJECTS, 2), np.float32),
        "yaw": np.zeros((n, MAX_OBJECTS), np.float32),
    }
    for i, scene in enumerate(scenes):
        for k, o in enumerate(scene.objects):
            arrays["shape"][i, k] = SHAPES.index(o.shape)
            arrays["color"][i, k] = COLORS.index(o.color)
            arrays["size"][i, k] = SIZES.index(o.size)
            arrays["xy"][i, k] = (o.x, o.y)
            arrays["yaw"][i, k] = o.yaw
    arrays["objects_json"] = np.array([_scene_json(s) for s in scenes])
    return arrays


def _captioned(rng: np.random.Generator, split: str, draw) -> tuple[Scene, str]:
    """A scene from draw(rng) and its caption, drawn again until the caption belongs to `split`."""
    while True:
        scene = draw(rng)
        text = caption(scene, rng)
        if split == "all" or split_of(text) == split:
            return scene, text


def _meta(size: int, seed: int, split: str, **extra) -> np.ndarray:
    meta = {
        "size": size,
        "seed": seed,
        "split": split,
        "colors": COLORS,
        "shapes": SHAPES,
        "sizes": SIZES,
        "far_depth": FAR_DEPTH,
        "camera": {"elevation_deg": ELEVATION_DEG, "distance": CAMERA_DISTANCE, "fov_deg": FOV_DEG, "target": TARGET},
        **extra,
    }
    return np.array(json.dumps(meta))


def _save(path: str, scenes: list[Scene], captions: list[str], **arrays) -> None:
    """One dataset file: the arrays, the captions with their split, and the scenes' attributes."""
    np.savez_compressed(path, captions=np.array(captions), split=np.array([split_of(c) for c in captions]),
                        **arrays, **_attribute_arrays(scenes))


def write_images(path: str, n: int, size: int, seed: int, split: str = "train") -> float:
    """Write n captioned renders to `path` (.npz); returns renders per second."""
    rng = np.random.default_rng([seed, 0])
    renderer = get_renderer(size)
    rgb = np.zeros((n, size, size, 3), np.uint8)
    depth = np.zeros((n, size, size), np.float16)
    masks = np.zeros((n, size, size), np.uint8)
    scenes, captions = [], []
    started = time.time()
    for i in range(n):
        scene, text = _captioned(rng, split, sample_scene)
        render = renderer.render(scene)
        rgb[i], depth[i], masks[i] = render.rgb, render.depth, render.index_map
        scenes.append(scene)
        captions.append(text)
    rate = n / max(time.time() - started, 1e-9)
    _save(path, scenes, captions, rgb=rgb, depth=depth, masks=masks, meta=_meta(size, seed, split))
    return rate


def write_clips(path: str, m: int, size: int, seed: int, split: str = "train", frames: int = 8, fps: int = 8) -> float:
    """Write m captioned drop clips to `path` (.npz); returns seconds per clip."""
    rng = np.random.default_rng([seed, 1])
    get_simulator()
    rgb = np.zeros((m, frames, size, size, 3), np.uint8)
    depth = np.zeros((m, frames, size, size), np.float16)
    masks = np.zeros((m, frames, size, size), np.uint8)
    dropped = np.zeros((m, MAX_OBJECTS), bool)
    positions = np.zeros((m, frames, MAX_OBJECTS, 3), np.float32)
    quats = np.zeros((m, frames, MAX_OBJECTS, 4), np.float32)
    scenes, captions = [], []
    started = time.time()
    for i in range(m):
        scene, text = _captioned(rng, split, sample_clip_scene)
        clip = simulate_clip(scene, rng, frames=frames, fps=fps, size=size)
        k = len(scene.objects)
        rgb[i], depth[i], masks[i] = clip.rgb, clip.depth, clip.index_maps
        dropped[i, :k], positions[i, :, :k], quats[i, :, :k] = clip.dropped, clip.positions, clip.quats
        scenes.append(scene)
        captions.append(text)
    seconds = (time.time() - started) / max(m, 1)
    _save(path, scenes, captions, rgb=rgb, depth=depth, masks=masks, dropped=dropped, positions=positions, quats=quats,
          meta=_meta(size, seed, split, frames=frames, fps=fps, sim_dt=SIM_DT))
    return seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write a mini-world dataset: DIR/images.npz and DIR/clips.npz.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--clips", type=int, default=0)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument(
        "--split", choices=SPLITS, default="train", help="keep captions of this split only (see split_of)"
    )
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.images:
        rate = write_images(os.path.join(args.out, "images.npz"), args.images, args.size, args.seed, args.split)
        print(f"{args.images} images at {rate:.0f} renders/s -> {os.path.join(args.out, 'images.npz')}")
    if args.clips:
        seconds = write_clips(
            os.path.join(args.out, "clips.npz"), args.clips, args.size, args.seed, args.split, args.frames, args.fps
        )
        print(f"{args.clips} clips at {seconds:.2f} s/clip -> {os.path.join(args.out, 'clips.npz')}")


