"""mini_vqa: the grammar's meaning composed from per-class facts, hard negatives, and the shipped judge's discrimination.

The discrimination test is the criterion of the judge's job: on a fixed set of held-out renders and near misses
(the same image with the caption wrong in one thing), clean and as the blurry x0_hat a sampler shows it, the true
caption must rank above its near misses. The first mini_vqa (kept as ``mini_vqa_v1``) fails the same test.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from poelang.cli import main  # noqa: E402
from poelang.stdlib.mini import judges, rules, vqa, world  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _facts(count=None, size=None, column=None, bottom=None):
    """Facts as the model gives them (log-probabilities), from probability tables; unspecified classes are absent."""
    c = torch.zeros(1, vqa.CLASSES, vqa.MAX_COUNT + 1)
    c[..., 0] = 1
    for k, p in (count or {}).items():
        c[0, k] = torch.tensor(p)
    s = torch.full((1, vqa.CLASSES, 3), 1 / 3)
    for k, p in (size or {}).items():
        s[0, k] = torch.tensor(p)
    col = torch.full((1, vqa.CLASSES, vqa.BINS), 1 / vqa.BINS)
    bot = col.clone()
    for k, p in (column or {}).items():
        col[0, k] = torch.tensor(p)
    for k, p in (bottom or {}).items():
        bot[0, k] = torch.tensor(p)
    return {"count": c.log(), "size": s.log(), "column": col.log(), "bottom": bot.log()}


def _k(color, shape):
    return rules.class_index(color, shape) - 1


def _one_hot(i, n=vqa.BINS):
    p = [0.0] * n
    p[i] = 1.0
    return p


def _log_prob(facts, text):
    return float(vqa.caption_log_prob(facts, vqa.caption_tensors([text]))[0])


def test_counts_and_sizes_multiply_and_unnamed_classes_must_be_absent():
    red, blue = _k("red", "cube"), _k("blue", "sphere")
    facts = _facts(count={red: [0.1, 0.2, 0.6, 0.1], blue: [0.3, 0.7, 0.0, 0.0]},
                   size={red: [0.25, 0.5, 0.25]})
    assert _log_prob(facts, "two large red cubes and a blue sphere") == pytest.approx(math.log(0.6 * 0.5 * 0.7), abs=1e-5)
    assert _log_prob(facts, "two red cubes") == pytest.approx(math.log(0.6 * 0.3), abs=1e-5)  # the sphere is absent
    # a caption that names one class with two counts is impossible
    assert _log_prob(facts, "a red cube and two red cubes") == vqa.IMPOSSIBLE


def test_relations_compare_columns_and_lowest_rows_with_ties_counted_half():
    red, blue = _k("red", "cube"), _k("blue", "sphere")
    counts = {red: [0, 1, 0, 0], blue: [0, 1, 0, 0]}
    facts = _facts(count=counts, column={red: _one_hot(3), blue: [0.5 if i in (3, 9) else 0 for i in range(16)]},
                   bottom={red: _one_hot(12), blue: _one_hot(8)})
    # the blue sphere is in the red cube's column bin half of the time (a tie, counted half), right of it otherwise
    assert math.exp(_log_prob(facts, "a red cube left of a blue sphere")) == pytest.approx(0.5 + 0.25, abs=1e-5)
    assert math.exp(_log_prob(facts, "a blue sphere left of a red cube")) == pytest.approx(0.25, abs=1e-5)
    assert math.exp(_log_prob(facts, "a red cube right of a blue sphere")) == pytest.approx(0.25, abs=1e-5)
    # lower in the image (a greater lowest row) is nearer the camera
    assert math.exp(_log_prob(facts, "a red cube in front of a blue sphere")) == pytest.approx(1.0, abs=1e-5)
    assert math.exp(_log_prob(facts, "a red cube behind a blue sphere")) == pytest.approx(1e-6, abs=1e-6)


def _held_out_scenes(n: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        scene = world.sample_scene(rng)
        text = world.caption(scene, rng)
        if world.split_of(text) == "test":
            out.append((scene, text))
    return out


def test_hard_negatives_are_wrong_in_one_thing_and_false_of_the_image():
    rng = np.random.default_rng(7)
    seen = set()
    for scene, text in _held_out_scenes(40, 99):
        facts = rules.facts_from_render(world.render_scene(scene))
        assert rules.satisfies(text, facts), text
        for kind in vqa.NEGATIVE_KINDS:
            wrong, used = vqa.hard_negative(text, rng, kind)
            seen.add(used)
            assert wrong != text and not rules.satisfies(wrong, facts), (text, used, wrong)
            if used == kind and kind in ("colour", "shape"):
                assert sum(a != b for a, b in zip(wrong.split(), text.split())) == 1, (text, wrong)
    assert seen == set(vqa.NEGATIVE_KINDS)


def _fixed_set(n: int = 48, seed: int = 2024):
    """Held-out renders, each with its caption and two hard negatives (one a count or relation change)."""
    rng = np.random.default_rng(seed)
    images, captions, labels = [], [], []
    for scene, text in _held_out_scenes(n, seed):
        image = torch.from_numpy(world.render_scene(scene).rgb).permute(2, 0, 1).float() / 127.5 - 1
        relation = any(c.relation for c in rules.parse_caption(text))
        negatives = [vqa.hard_negative(text, rng, "swap" if relation else "count")[0], vqa.hard_negative(text, rng)[0]]
        for caption, label in [(text, 1), *((c, 0) for c in negatives)]:
            images.append(image), captions.append(caption), labels.append(label)
    return torch.stack(images), captions, np.array(labels)


def _noised(images: torch.Tensor, sigma: float, captions: list[str], seed: int = 0) -> torch.Tensor:
    """x0_hat of the images noised to sigma, one guided mini_flux step prompted by the caption asked about."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return vqa.GuidedFlux().x0_hat(images, torch.full((len(images),), sigma), captions, noise)


def _aucs(score, images, noisy, captions, labels):
    return vqa.auc(score(images, captions), labels), vqa.auc(score(noisy, captions), labels)


def _new(images, captions):
    with torch.no_grad():
        return judges.load("mini_vqa")(images, vqa.caption_tensors(captions)).numpy()


def _old(images, captions):
    with torch.no_grad():
        return judges.load("mini_vqa_v1")(images, judges.caption_ids(captions)).numpy()


@pytest.fixture(scope="module")
def fixed_set():
    images, captions, labels = _fixed_set()
    return images, _noised(images, 0.5, captions), captions, labels


def test_the_shipped_judge_ranks_true_captions_above_near_misses(fixed_set):
    images, noisy, captions, labels = fixed_set
    # 0.98 and 0.79 with the shipped weights (docs/results.md); the first mini_vqa scores 0.55 and 0.43
    clean, blurred = _aucs(_new, images, noisy, captions, labels)
    assert clean >= 0.75 and blurred >= 0.65, (clean, blurred)
    # the same criterion fails the first mini_vqa: this test would catch the old weights
    old_clean, old_blurred = _aucs(_old, images, noisy, captions, labels)
    assert not (old_clean >= 0.75 and old_blurred >= 0.65), (old_clean, old_blurred)


def test_the_shipped_judges_reader_passes_true_captions_and_rejects_near_misses(fixed_set):
    images, _, captions, labels = fixed_set
    verdict = judges.load("mini_vqa").verdict(images, vqa.caption_tensors(captions)).numpy()
    # the rules on the reader's class map of clean renders (1.0 and 0.0 with the shipped weights): a near miss
    # differs from the truth in one thing the reader sees
    assert verdict[labels == 1].mean() >= 0.85 and verdict[labels == 0].mean() <= 0.1, (
        verdict[labels == 1].mean(), verdict[labels == 0].mean())


def test_the_judge_believes_true_captions_and_doubts_near_misses_on_clean_renders(fixed_set):
    images, _, captions, labels = fixed_set
    p = torch.sigmoid(torch.from_numpy(_new(images, captions))).numpy()
    # calibrated for one true caption to one near miss: 0.97 and 0.24 with the shipped weights
    assert p[labels == 1].mean() > 0.55 and p[labels == 0].mean() < 0.45, (p[labels == 1].mean(), p[labels == 0].mean())


def test_a_caption_outside_the_grammar_is_a_check_error(tmp_path, capsys):
    program = tmp_path / "judge.poe"
    program.write_text('x ~ mini_flux("a red cube") * exp(mini_vqa("red cube"))\nsave x to "x.png"\n')
    assert main(["check", str(program)]) == 1
    err = capsys.readouterr().err
    assert "not a caption of the mini world" in err and "judge.poe:1:" in err


def test_training_records_its_run_and_the_saved_judge_loads(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    captions = ["a red cube", "two blue spheres"] * (n // 2)
    objects = [[{"color": "red", "shape": "cube", "size": "small"}],
               [{"color": "blue", "shape": "sphere", "size": "large"}] * 2] * (n // 2)
    index = np.zeros((n, 32, 32), np.uint8)
    index[:, 10:14, 4:8] = 1
    index[:, 20:24, 20:24] = 2
    targets = [vqa.fact_targets(o, m) for o, m in zip(objects, index)]
    data = {"shown": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            "sigma": np.zeros(n, np.float32), "view": np.arange(n) % len(vqa.VIEWS), "captions": np.array(captions),
            "negatives": np.array([vqa.hard_negative(c, rng)[0] for c in captions]),
            **{f"target_{k}": np.stack([t[k] for t in targets]) for k in targets[0]}}
    assert data["target_count"][1, _k("blue", "sphere")] == 2 and data["target_column"][0, _k("red", "cube")] == 3
    model, record = vqa.train(data, minutes=0.02, seed=0, batch=8)
    assert record["steps"] >= 1 and {"held_out_auc", "calibration_error", "lr"} <= set(record)
    folder = vqa.save(model, record, tmp_path / "mini_vqa")
    assert json.loads((folder / "training.json").read_text())["steps"] == record["steps"]
    loaded = vqa.load(folder)
    x = torch.from_numpy(data["shown"][:4]).permute(0, 3, 1, 2).float() / 127.5 - 1
    spec = vqa.caption_tensors(captions[:4])
    assert torch.allclose(loaded(x, spec), model(x, spec), rtol=0.01, atol=0.05)
    # members join as one judge: their log-odds averaged, one calibration fitted on the held-out rows, saved and loaded
    other, _ = vqa.train(data, minutes=0.02, seed=1, batch=8)
    vqa.save(other, record, tmp_path / "other")
    joined, joined_record = vqa.ensemble([folder, tmp_path / "other"], data, seed=0)
    assert len(joined_record["members"]) == 2 and "held_out_auc" in joined_record
    odds = (loaded.log_odds(x, spec) + vqa.load(tmp_path / "other").log_odds(x, spec)) / 2
    scale, bias = joined.calibration
    assert torch.allclose(joined(x, spec), scale * odds + bias, rtol=0.01, atol=0.05)
    assert (joined.verdict(x, spec) == 0).all()  # no reader: no verdict
    reloaded = vqa.load(vqa.save(joined, joined_record, tmp_path / "joined"))
    assert isinstance(reloaded, vqa.JudgeEnsemble)
    assert torch.allclose(reloaded(x, spec), joined(x, spec), rtol=0.01, atol=0.05)
    # a member trained with the per-pixel class loss keeps its head through save and load, and says so in its record
    with pytest.raises(ValueError, match="class maps"):
        vqa.train(data, minutes=0.01, seed=2, batch=8, segment_weight=1.0)
    seg_model, seg_record = vqa.train({**data, "seg": index}, minutes=0.02, seed=2, batch=8, segment_weight=1.0)
    assert seg_record["segment_weight"] == 1.0 and seg_model.config["segment"]
    seg_loaded = vqa.load(vqa.save(seg_model, seg_record, tmp_path / "seg"))
    assert hasattr(seg_loaded, "segment_head")
    assert torch.allclose(seg_loaded(x, spec), seg_model(x, spec), rtol=0.01, atol=0.05)


def test_training_data_shows_each_render_as_the_sampler_would_and_keeps_its_facts(tmp_path):
    # two processes' shards of one small set: every view present, clean rows are the render itself, the other views
    # stay near it (sigma <= 0.6 for a finished image), and the labels are the render's own facts
    for shard in (0, 1):
        vqa.make_data(tmp_path, 24, seed=3, views=(1 / 3, 1 / 3, 1 / 3), batch=8, shard=(shard, 2))
    data = vqa.load_data([tmp_path])
    assert len(data["captions"]) == 24 and set(data["view"]) == {0, 1, 2}
    clean = data["view"] == 0
    assert (data["shown"][clean] == data["rgb"][clean]).all() and (data["sigma"][clean] == 0).all()
    assert data["seg"].shape == (24, 32, 32)  # each render's class per pixel
    for i, objects in enumerate(data["objects_json"]):
        classes = {rules.class_index(o["color"], o["shape"]) for o in json.loads(objects)}
        assert set(np.unique(data["seg"][i])) <= classes | {0} and (data["seg"][i] > 0).any()
    finished = data["view"] == 2
    assert (data["sigma"][finished] >= 0.1).all() and (data["sigma"][finished] <= 0.6).all()
    gap = np.abs(data["shown"][finished].astype(float) - data["rgb"][finished]).mean()
    assert 0 < gap < 40, gap  # redrawn by the generator, yet the same scene
    for i, objects in enumerate(data["objects_json"]):
        objs = json.loads(objects)
        assert data["target_count"][i].sum() == len(objs)
        assert world.split_of(str(data["captions"][i])) == "train" and data["captions"][i] != data["negatives"][i]


def test_a_reader_joins_the_judge_its_verdict_is_the_rules_on_its_class_map_and_it_survives_save_and_load(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    captions = ["a red cube", "two blue spheres"] * (n // 2)
    seg = np.zeros((n, 32, 32), np.uint8)
    seg[0::2, 10:16, 4:10] = rules.class_index("red", "cube")
    seg[1::2, 10:16, 4:10] = seg[1::2, 20:26, 20:26] = rules.class_index("blue", "sphere")
    objects = [[{"color": "red", "shape": "cube", "size": "small"}],
               [{"color": "blue", "shape": "sphere", "size": "large"}] * 2] * (n // 2)
    targets = [vqa.fact_targets(o, (m > 0) * (1 + (np.arange(32)[None] >= 16))) for o, m in zip(objects, seg)]
    shown = np.where(seg[..., None] > 0, 200, 30).astype(np.uint8).repeat(3, -1)
    data = {"shown": shown, "rgb": shown, "seg": seg, "sigma": np.zeros(n, np.float32),
            "view": np.arange(n) % len(vqa.VIEWS),
            "captions": np.array(captions), "negatives": np.array([vqa.hard_negative(c, rng)[0] for c in captions]),
            **{f"target_{k}": np.stack([t[k] for t in targets]) for k in targets[0]}}
    with pytest.raises(ValueError, match="class maps"):
        vqa.train_reader({k: v for k, v in data.items() if k != "seg"}, minutes=0.01, seed=0)
    reader, record = vqa.train_reader(data, minutes=0.03, seed=0, batch=8)
    assert record["steps"] >= 1
    assert {"pixel_accuracy_clean", "passes_true_clean", "passes_negative_clean"} <= set(record)
    vqa.save(reader, record, tmp_path / "reader")
    member, member_record = vqa.train(data, minutes=0.02, seed=1, batch=8)
    vqa.save(member, member_record, tmp_path / "member")
    joined, joined_record = vqa.ensemble([tmp_path / "member"], data, seed=0, reader=tmp_path / "reader")
    assert joined_record["reader"]["steps"] == record["steps"] and "reader_weight" in joined_record
    x = torch.from_numpy(shown[:6]).permute(0, 3, 1, 2).float() / 127.5 - 1
    spec = vqa.caption_tensors(captions[:6])
    # the verdict is the checker's rules on the reader's class map: judges.check with the reader as its segmenter
    verdict = joined.verdict(x, spec)
    assert verdict.tolist() == [float(v) for v in judges.check(x, captions[:6], joined.reader)]
    scale, bias, weight = joined.calibration
    assert torch.allclose(joined(x, spec), scale * joined.log_odds(x, spec) + bias + weight * verdict, atol=1e-5)
    # repeat_spec gives one caption's spec to a batch, its text too
    assert vqa.repeat_spec(vqa.caption_tensors(["a red cube"]), 3)["text"] == ("a red cube",) * 3
    folder = vqa.save(joined, joined_record, tmp_path / "joined")
    assert json.loads((folder / "config.json").read_text())["reader_weight"] == round(float(weight), 5)
    reloaded = vqa.load(folder)
    assert reloaded.reader is not None and reloaded.verdict(x, spec).tolist() == verdict.tolist()
    assert torch.allclose(reloaded(x, spec), joined(x, spec), rtol=0.01, atol=0.05)
