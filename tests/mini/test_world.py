"""The mini world: reproducible scenes, renders that agree with their masks and depth, captions the rules accept."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from poelang.stdlib.mini import rules, world
from poelang.stdlib.mini.world import Obj, Scene


@pytest.fixture(scope="module")
def renderer():
    pytest.importorskip("genesis")
    return world.get_renderer(32)


def _scenes(n: int, offset: int = 0):
    """(scene, caption) for seeds offset..offset+n, each from its own generator."""
    for seed in range(offset, offset + n):
        rng = np.random.default_rng(seed)
        scene = world.sample_scene(rng)
        yield scene, world.caption(scene, rng)


# ---------------------------------------------------------------------------------------------------------------------
# Scenes and captions (no rendering)


def test_sampling_is_deterministic():
    a = [world.sample_scene(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    assert world.caption(a[0], np.random.default_rng(1)) == world.caption(a[1], np.random.default_rng(1))


def test_scenes_have_one_to_three_separated_objects_in_view():
    for scene, _ in _scenes(200):
        assert 1 <= len(scene.objects) <= world.MAX_OBJECTS
        for i, a in enumerate(scene.objects):
            box = world.projected_box(a)
            assert box.min() >= world.IMAGE_MARGIN - 1e-9 and box.max() <= 1 - world.IMAGE_MARGIN + 1e-9
            for b in scene.objects[i + 1 :]:
                assert np.hypot(a.x - b.x, a.y - b.y) >= a.footprint_radius + b.footprint_radius


def test_captions_use_only_the_vocabulary_and_parse():
    vocabulary = set(world.VOCABULARY)
    for scene, text in _scenes(300):
        assert set(text.split()) <= vocabulary, text
        clauses = rules.parse_caption(text)
        named = {(p.color, p.shape) for c in clauses for p in (c.subject, c.object) if p is not None}
        assert named == {(o.color, o.shape) for o in scene.objects}


def test_every_kind_of_caption_occurs():
    texts = [text for _, text in _scenes(400)]
    for pattern in (r"^a \w+ \w+$", r"\btwo \w+ \w+s\b", r"\bthree\b", r"\b(small|large)\b", r" and "):
        assert any(re.search(pattern, t) for t in texts), pattern
    for relation in world.RELATIONS:
        assert any(f" {relation} " in t for t in texts), relation


def test_split_is_a_fixed_tenth_of_captions():
    assert world.split_of("a red cube") == world.split_of("a red cube")
    phrases = [world.noun_phrase(1, c, s, z) for c in world.COLORS for s in world.SHAPES for z in (None, *world.SIZES)]
    texts = {f"{a} {relation} {b}" for a in phrases[::3] for b in phrases[1::3] for relation in world.RELATIONS}
    held_out = sum(world.split_of(t) == "test" for t in texts) / len(texts)
    assert 0.05 < held_out < 0.15


def test_parse_rejects_words_off_the_grammar():
    for bad in ("a red dog", "two red cube", "a red cube left of two blue spheres", "a red cube near a blue cone"):
        with pytest.raises(ValueError):
            rules.parse_caption(bad)
    assert rules.parse_caption("one large red cube")[0].subject == rules.Phrase(1, "red", "cube", "large")


# ---------------------------------------------------------------------------------------------------------------------
# Rendering


def test_render_shapes_dtypes_and_determinism(renderer):
    scene = world.sample_scene(np.random.default_rng(3), n_objects=3)
    first = renderer.render(scene)
    renderer.render(world.sample_scene(np.random.default_rng(4)))  # another scene in between moves the pool
    again = renderer.render(scene)
    assert first.rgb.shape == (32, 32, 3) and first.rgb.dtype == np.uint8
    assert first.depth.shape == (32, 32) and first.depth.dtype == np.float32
    assert first.masks.shape == (3, 32, 32) and first.masks.dtype == bool
    np.testing.assert_array_equal(first.rgb, again.rgb)
    np.testing.assert_array_equal(first.depth, again.depth)
    np.testing.assert_array_equal(first.masks, again.masks)


def test_other_sizes_render(renderer):
    render = world.render_scene(world.sample_scene(np.random.default_rng(5)), size=48)
    assert render.rgb.shape == (48, 48, 3) and render.masks.shape[1:] == (48, 48)
    with pytest.raises(ValueError):
        world.Renderer(16)


def test_masks_agree_with_depth(renderer):
    empty = renderer.render(Scene(()))
    sky = empty.depth >= world.FAR_DEPTH * 0.99
    assert sky[0].all() and not sky[-1].any()  # sky across the top, ground across the bottom
    for scene, _ in _scenes(40):
        render = renderer.render(scene)
        assert not (render.masks.sum(0) > 1).any()
        objects = render.masks.any(0)
        for mask in render.masks:
            assert mask.sum() >= 10  # every object is seen
        # object pixels are nearer than the ground or sky behind them (at the line where an object stands on the
        # ground, barely); everything else is that ground or sky
        assert (render.depth[objects] <= empty.depth[objects] + 1e-3).all()
        assert (render.depth[objects] < empty.depth[objects] - 0.05).mean() > 0.9
        np.testing.assert_allclose(render.depth[~objects], empty.depth[~objects], rtol=1e-3)


def test_colors_are_told_apart_by_their_pixels(renderer):
    """The mean colour of an object's pixels is nearest its own base colour: a colour is readable at 32 pixels."""
    base = np.array([world.COLOR_RGB[c] for c in world.COLORS]) * 255
    for scene, _ in _scenes(40):
        render = renderer.render(scene)
        for obj, mask in zip(scene.objects, render.masks):
            mean = render.rgb[mask].mean(0)
            assert world.COLORS[np.argmin(((base - mean) ** 2).sum(1))] == obj.color


def test_caption_facts_follow_the_masks(renderer):
    scene = world.sample_scene(np.random.default_rng(11), n_objects=2)
    facts = world.caption_facts(scene, renderer.render(scene))
    assert [(f["color"], f["shape"], f["size"]) for f in facts] == [(o.color, o.shape, o.size) for o in scene.objects]
    for fact in facts:
        c0, r0, c1, r1 = fact["bbox"]
        assert c0 < fact["centroid"][0] < c1 and r0 < fact["centroid"][1] < r1 and fact["bottom"] == r1


# ---------------------------------------------------------------------------------------------------------------------
# Rules on ground truth


def _swap_word(text: str, choices, present) -> str | None:
    """The caption with its first word from `choices` replaced by one absent from the scene, or None."""
    words = text.split()
    for i, word in enumerate(words):
        singular = {world.PLURALS[s]: s for s in world.SHAPES}.get(word, word)
        if singular in choices:
            for other in choices:
                if other not in present:
                    words[i] = other if singular == word else world.PLURALS[other]
                    return " ".join(words)
    return None


FLIPPED = {"left of": "right of", "right of": "left of", "in front of": "behind", "behind": "in front of"}


def test_every_scene_satisfies_its_own_caption_and_not_a_wrong_one(renderer):
    wrong = {"color": 0, "shape": 0, "relation": 0, "count": 0}
    for scene, text in _scenes(500):
        facts = rules.facts_from_render(renderer.render(scene))
        assert rules.satisfies(text, facts), (text, facts)
        colors, shapes = {o.color for o in scene.objects}, {o.shape for o in scene.objects}
        for kind, swapped in (
            ("color", _swap_word(text, world.COLORS, colors)),
            ("shape", _swap_word(text, world.SHAPES, shapes)),
        ):
            if swapped is not None:
                assert not rules.satisfies(swapped, facts), (swapped, facts)
                wrong[kind] += 1
        for relation, flipped in FLIPPED.items():
            if f" {relation} " in text:
                bad = text.replace(f" {relation} ", f" {flipped} ", 1)
                assert not rules.satisfies(bad, facts), (bad, facts)
                wrong["relation"] += 1
                break
        if text.startswith("a "):
            first = text.split(" and ")[0].split()
            if len(first) <= 4:  # a bare noun phrase: make its count two
                plural = " ".join(["two", *first[1:-1], world.PLURALS[first[-1]]])
                assert not rules.satisfies(" and ".join([plural, *text.split(" and ")[1:]]), facts)
                wrong["count"] += 1
    assert min(wrong.values()) >= 20, wrong


def test_size_is_judged_from_the_segmentation(renderer):
    for scene, _ in _scenes(200, offset=1000):
        render = renderer.render(scene)
        labels = rules.segmentation_labels(render)
        for obj, mask in zip(scene.objects, render.masks):
            (fact,) = [f for f in rules.facts_from_segmentation(np.where(mask, labels, 0))]
            assert rules.is_large(fact) == (obj.size == "large"), (obj, fact)


def test_rules_on_a_hand_drawn_segmentation():
    seg = np.zeros((32, 32), np.int64)
    red_cube, blue_cone = rules.class_index("red", "cube"), rules.class_index("blue", "cone")
    seg[20:26, 2:8] = red_cube
    seg[20:26, 12:18] = red_cube
    seg[8:12, 24:28] = blue_cone
    facts = rules.facts_from_segmentation(seg)
    assert rules.count(facts, "red", "cube") == 2 and rules.exists(facts, "blue", "cone")
    assert rules.left_of(facts, ("red", "cube"), ("blue", "cone"))
    assert not rules.right_of(facts, ("red", "cube"), ("blue", "cone"))
    assert rules.in_front_of(facts, ("red", "cube"), ("blue", "cone"))
    assert rules.behind(facts, ("blue", "cone"), ("red", "cube"))
    assert rules.satisfies("two red cubes and a blue cone", facts)
    assert not rules.satisfies("two red cubes", facts)  # the blue cone goes unnamed
    assert rules.satisfies("two red cubes", facts, exhaustive=False)
    assert not rules.satisfies("three red cubes and a blue cone", facts)
    # why a caption is false: the first rule it breaks
    assert rules.first_fault("two red cubes and a blue cone", facts) is None
    assert rules.first_fault("two red cubes", facts) == "unnamed"
    assert rules.first_fault("three red cubes and a blue cone", facts) == "missing"
    assert rules.first_fault("a red cube and a blue cone", facts) == "too many"
    assert rules.first_fault("two large red cubes and a blue cone", facts) == "size"
    assert rules.first_fault("a blue cone in front of a red sphere", facts) == "missing"
    seg[20:26, 12:18] = 0  # one red cube left of the blue cone
    single = rules.facts_from_segmentation(seg)
    assert rules.first_fault("a red cube left of a blue cone", single) is None
    assert rules.first_fault("a red cube right of a blue cone", single) == "relation"
    assert rules.class_name(red_cube) == ("red", "cube")


def test_labels_from_a_stored_index_map(renderer):
    scene = world.sample_scene(np.random.default_rng(2), n_objects=3)
    render = renderer.render(scene)
    np.testing.assert_array_equal(
        rules.labels_from_index_map(render.index_map, scene.objects), rules.segmentation_labels(render)
    )


# ---------------------------------------------------------------------------------------------------------------------
# Dataset writer


def test_image_dataset_is_deterministic(renderer, tmp_path):
    for name in ("a", "b"):
        world.main(["--out", str(tmp_path / name), "--images", "12", "--clips", "0", "--seed", "4"])
    a, b = (np.load(tmp_path / name / "images.npz") for name in ("a", "b"))
    assert set(a.files) == set(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["rgb"].shape == (12, 32, 32, 3) and a["depth"].dtype == np.float16 and a["masks"].dtype == np.uint8
    assert (a["split"] == "train").all()
    assert a["masks"].max() <= world.MAX_OBJECTS and (a["masks"].max(axis=(1, 2)) == a["n_objects"]).all()
    for text, index_map, objects in zip(a["captions"], a["masks"], a["objects_json"]):
        labels = rules.labels_from_index_map(index_map, [Obj(**o) for o in json.loads(str(objects))])
        assert rules.satisfies(str(text), rules.facts_from_segmentation(labels))


# ---------------------------------------------------------------------------------------------------------------------
# Clips (build a genesis scene: about 20-50 s with a warm kernel cache, minutes on the first run of a machine)


@pytest.mark.slow
def test_a_dropped_object_falls_then_rests(renderer, tmp_path):
    rng = np.random.default_rng(0)
    scene = world.sample_clip_scene(rng, n_objects=1)
    clip = world.simulate_clip(scene, rng, frames=8, fps=8)
    assert clip.rgb.shape == (8, 32, 32, 3) and clip.masks.shape == (8, 1, 32, 32) and clip.dropped.all()
    rows = [np.nonzero(m[0])[0].mean() for m in clip.masks]
    assert rows[3] > rows[0] + 1  # it moved down the image while falling
    assert abs(rows[-1] - rows[-2]) < 0.25  # and rests at the end
    z = clip.positions[:, 0, 2]
    assert abs(z[-1] - scene.objects[0].height / 2) < 0.02  # on the ground
    facts = rules.facts_from_segmentation(rules.labels_from_index_map(clip.index_maps[-1], scene.objects))
    assert rules.satisfies(world.caption(scene, np.random.default_rng(0)), facts)

    for name in ("a", "b"):
        world.write_clips(str(tmp_path / f"{name}.npz"), 2, 32, seed=1)
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["rgb"].shape == (2, 8, 32, 32, 3) and a["masks"].shape == (2, 8, 32, 32)
