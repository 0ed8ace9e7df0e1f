"""mini_vqa as a judge: its AUC for the rule checker's verdict on unsteered mini_flux samples of held-out captions.

    python benchmarks/mini_judge.py [--captions 128] [--samples 4] [--levels 20] [--seed 1] [--cache samples.npz]

For each held-out caption (``world.split_of``: no expert trained on it; drawn from a seed stream no other benchmark
uses), mini_flux (guided, as programs run it) draws ``--samples`` images by Euler from noise, unsteered. The rule
checker (segmenter + rules) judges each final image; the judges score the final image ("clean") and the x0_hat
= x - sigma v of its own trajectory at sigma = 0.75, 0.5, 0.25, the blurry predictions on which SMC resamples. The
table gives each judge's AUC for the checker's verdict on the final image, overall, by caption kind (counts: a
count of two or three; relations; single objects; others) and by what the failed samples got wrong (a count, a
colour, a shape, a relation, a size; ``rules``-level, from the checker's own objects), the first mini_vqa (the
baseline, ``mini_vqa_v1``) beside the shipped one, and the ratio of their margins over chance, (AUC - 0.5).
The checker is only used to evaluate here; no judge was trained on its labels.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from poelang.interpreter import ExpertContext  # noqa: E402
from poelang.stdlib import mini_experts  # noqa: E402
from poelang.stdlib.mini import judges, rules, vqa, world  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mini_paper import print_table  # noqa: E402  (one table format for the mini-world benchmarks)

SIGMAS = (0.75, 0.5, 0.25)


def held_out_captions(n: int, seed: int) -> list[str]:
    """n distinct test-split captions of random scenes."""
    rng = np.random.default_rng([seed, 1616])
    captions: list[str] = []
    while len(captions) < n:
        scene = world.sample_scene(rng)
        text = world.caption(scene, rng)
        if world.split_of(text) == "test" and text not in captions:
            captions.append(text)
    return captions


def caption_kind(text: str) -> str:
    clauses = rules.parse_caption(text)
    if any(c.relation for c in clauses):
        return "relations"
    if any(c.subject.count > 1 for c in clauses):
        return "counts"
    return "single object" if len(clauses) == 1 else "several objects"


def failure_kind(text: str, facts) -> str:
    """What a sample the checker rejects got wrong, judged on the checker's objects (first that applies)."""
    phrases = [p for c in rules.parse_caption(text) for p in (c.subject, c.object) if p]
    named = {(p.color, p.shape) for p in phrases}
    found = {(f.color, f.shape) for f in facts}
    missing = [p for p in phrases if not rules.matching(facts, p.color, p.shape)]
    extra = found - named
    if missing:
        if any(s == p.shape for p in missing for _, s in extra):
            return "colour"
        if any(c == p.color for p in missing for c, _ in extra):
            return "shape"
        return "count" if not extra else "other"
    if any(len(rules.matching(facts, p.color, p.shape)) != p.count for p in phrases) or extra:
        return "count"
    if any(p.size and not all(rules.is_large(f) == (p.size == "large") for f in rules.matching(facts, p.color, p.shape))
           for p in phrases):
        return "size"
    return "relation"


def sample(text: str, n: int, levels: int, seed: int):
    """n unsteered mini_flux images of the caption (Euler, evenly spaced sigmas) and x0_hat at SIGMAS: [n, 3, 32, 32]."""
    context = ExpertContext("x", (3, 32, 32), "cpu", ROOT, (3, 32, 32), None)
    expert = mini_experts.load_mini_flux({"prompt": text, "size": (32, 32)}, context)
    x = torch.randn((n, expert.codec.channels, 16, 16), generator=torch.Generator().manual_seed(seed))
    sigmas = torch.linspace(1, 0, levels + 1)
    previews = {}
    with torch.no_grad():
        for s0, s1 in zip(sigmas[:-1], sigmas[1:]):
            v = expert.velocity(x, torch.full((n,), float(s0)))
            for s in SIGMAS:
                if abs(float(s0) - s) < 1e-6:
                    previews[s] = expert.codec.decode(x - s0 * v).clamp(-1, 1)
            x = x + (s1 - s0) * v
    return expert.codec.decode(x).clamp(-1, 1), previews


def new_score(images: torch.Tensor, text: str) -> np.ndarray:
    spec = vqa.repeat_spec(vqa.caption_tensors([text]), len(images))
    with torch.no_grad():
        return F.logsigmoid(judges.load("mini_vqa")(images, spec)).numpy()


def old_score(images: torch.Tensor, text: str) -> np.ndarray:
    with torch.no_grad():
        return judges.load("mini_vqa_v1")(images, judges.caption_ids([text] * len(images))).numpy()


def _auc_cell(scores, labels) -> str:
    a = vqa.auc(scores, labels)
    return "–" if np.isnan(a) else f"{a:.3f}"


def draw(captions: list[str], samples: int, levels: int, seed: int, cache: Path | None) -> dict[str, np.ndarray]:
    """The samples of every caption ([C, S, 3, 32, 32] per input), from ``cache`` when it holds these settings."""
    key = np.array([samples, levels, seed])
    if cache and cache.exists():
        saved = np.load(cache)
        if list(saved["captions"]) == captions and (saved["key"] == key).all():
            return {k: saved[k] for k in saved.files if k not in ("captions", "key")}
    started = time.perf_counter()
    out: dict[str, list] = {}
    for i, text in enumerate(captions):
        final, previews = sample(text, samples, levels, seed * 100000 + i)
        for name, x in {"clean": final, **{f"σ = {s}": previews[s] for s in SIGMAS}}.items():
            out.setdefault(name, []).append(x.numpy())
        if (i + 1) % 16 == 0:
            print(f"  [{i + 1}/{len(captions)}] {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    arrays = {k: np.stack(v) for k, v in out.items()}
    if cache:
        np.savez_compressed(cache, captions=np.array(captions), key=key, **arrays)
    return arrays


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captions", type=int, default=128)
    parser.add_argument("--samples", type=int, default=4, help="mini_flux samples per caption")
    parser.add_argument("--levels", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=None, help="keep the samples here (.npz) and reuse them")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    captions = held_out_captions(args.captions, args.seed)
    drawn = draw(captions, args.samples, args.levels, args.seed, args.cache)
    rows = []  # (caption kind, checker verdict, failure kind, {input: (new score, old score)})
    for i, text in enumerate(captions):
        inputs = {name: torch.from_numpy(x[i]) for name, x in drawn.items()}
        seg = judges.segment(inputs["clean"])
        scores = {name: (new_score(x, text), old_score(x, text)) for name, x in inputs.items()}
        for j in range(args.samples):
            facts = rules.facts_from_segmentation(seg[j])
            ok = rules.satisfies(text, facts)
            rows.append((caption_kind(text), ok, "hit" if ok else failure_kind(text, facts),
                         {name: (s[0][j], s[1][j]) for name, s in scores.items()}))
    ok = np.array([r[1] for r in rows])
    names = ["clean", *(f"σ = {s}" for s in SIGMAS)]

    def table(title, groups):
        out = []
        for group, select in groups:
            line = [group, f"{select.sum()} ({ok[select].sum()} hits)"]
            for name in names:
                new = np.array([r[3][name][0] for r in rows])[select]
                old = np.array([r[3][name][1] for r in rows])[select]
                a_new, a_old = vqa.auc(new, ok[select]), vqa.auc(old, ok[select])
                # the ratio of margins over chance; none where the old judge is at or below chance
                ratio = (a_new - 0.5) / (a_old - 0.5) if a_old - 0.5 >= 0.02 else float("nan")
                line.append(f"{_auc_cell(new, ok[select])} / {_auc_cell(old, ok[select])}"
                            + (f" ({ratio:.1f}×)" if np.isfinite(ratio) else " (old ≤ chance)"))
            out.append(tuple(line))
        print_table(title, ("", "samples", *(f"AUC {n}: new / old (margin ratio)" for n in names)), out)

    everything = np.ones(len(rows), bool)
    kinds = sorted({r[0] for r in rows})
    table(f"mini_vqa's AUC for the checker's verdict: {len(rows)} unsteered mini_flux samples of {args.captions} "
          f"held-out captions, {args.levels} levels (new = shipped mini_vqa, old = mini_vqa_v1)",
          [("all", everything), *((k, np.array([r[0] == k for r in rows])) for k in kinds)])
    failures = ["count", "colour", "shape", "relation", "size", "other"]
    table("By what the rejected samples got wrong (every hit against the failures of one kind)",
          [(k, np.array([r[2] in ("hit", k) for r in rows])) for k in failures if any(r[2] == k for r in rows)])
    p = np.exp(np.array([r[3]["clean"][0] for r in rows]))
    print(f"\ncalibration on clean samples: mean P(yes) {p.mean():.3f} against a hit rate of {ok.mean():.3f}; "
          f"expected calibration error {vqa.expected_calibration_error(p, ok.astype(float)):.3f}")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
