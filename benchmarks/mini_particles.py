"""What limits task (a) as particles grow: can the generator draw a hit, and can the judge pick it among its particles?

    python benchmarks/mini_particles.py --n 16 --seed 1 --particles 16 [--records build/diag.jsonl]
    python benchmarks/mini_particles.py --summarize build/diag.jsonl
    python benchmarks/mini_particles.py --n 64 --particles 16 --records build/p.jsonl --images build/p_images
    python benchmarks/mini_particles.py --summarize build/p.jsonl --images build/p_images --judge DIR  # another judge
    python -m poelang.stdlib.mini.world --out build/seg2_data --images 20000 --seed 7
    python -m poelang.stdlib.mini.judges segmenter --data build/seg2_data --minutes 7 --seed 1 --threads 1 \
        --out build/twin_checker
    python benchmarks/mini_particles.py --summarize build/p.jsonl --images build/p_images --twin build/twin_checker

Per held-out caption of task (a) (``mini_paper.py``'s product: scene × regional experts × exp(w · mini_vqa)), L
independent particles of the product (no resampling), and for each the rule checker's verdict on its final image
and the judge's score on its x0_hat at every level -- exactly the numbers SMC ranks at a resampling time. From them:

* the oracle: the share of captions where at least one of the first k particles is a hit (what a perfect selector
  among k particles could reach; if it is low, more particles cannot help and the generator is the bottleneck);
* the judge as a selector: its within-caption AUC for the checker's verdict at each σ (over captions that have both
  hits and misses) and the success of its argmax among the first k particles, against a random pick (the mean).

With ``--images`` every particle's x0_hat at every level is kept (uint8), so that ``--judge`` can rank the same
particles by another judge folder (a candidate mini_vqa) without drawing them again: the particles do not depend on
the judge, since nothing is resampled.

With ``--twin`` a second segmenter, trained as the checker's was but from another seed and other renders, re-checks
every final image: how often the two checkers agree on the product's images, and what a selector that reads images
exactly as the checker does (segmenter and rules) reaches among the k particles, which bounds what any judge trained
on the world's ground truth can be expected to reach.

The checker only labels here; it never steers.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mini_paper  # noqa: E402
from poelang.stdlib.mini import judges  # noqa: E402


def _uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def draw(n: int, seed: int, particles: int, levels: int, weight: float, records: Path,
         images: Path | None = None) -> None:
    """Append one JSON line per caption: the checker's verdict per particle and the judge's scores per level; with
    ``images``, also ``images/case<seed>_<i>.npz``: every particle's x0_hat [levels + 1, L, 3, H, W] as uint8."""
    import poelang

    cases = mini_paper.held_out(n, seed, keep=mini_paper.counting_or_relation)
    with open(records, "a") as out:
        for i, (_, text) in enumerate(cases):
            started = time.perf_counter()
            program = poelang.parse(mini_paper.regional_product(text, weight) +
                                    f" with {{\n    levels = {levels}\n    particles = {particles}\n"
                                    "    weighting = greedy\n    resample = none\n    output = all\n}",
                                    "<mini_particles>", base_dir=mini_paper.ROOT)
            seen = []
            result = program.run(seed=seed * 1000 + i, decode_x0_hat=images is not None,
                                 callback=(lambda _, info: seen.append(_uint8(info.x0_hat))) if images else None)
            sample = next(iter(result.samples.values()))
            hits = judges.check(sample.samples, text)
            kept = None
            if images:
                images.mkdir(parents=True, exist_ok=True)
                kept = f"case{seed}_{i:03d}.npz"
                np.savez_compressed(images / kept, x0_hat=np.stack(seen))
            out.write(json.dumps({"case": i, "caption": text, "hits": hits, "images": kept,
                                  "sigmas": [float(info.sigma) for info in sample.trace],
                                  "scores": [[float(v) for v in info.scores] for info in sample.trace]}) + "\n")
            out.flush()
            print(f"  [{i + 1}/{n}] {text}: {sum(hits)}/{particles} hits ({time.perf_counter() - started:.1f} s)",
                  file=sys.stderr, flush=True)


def within_caption_auc(scores: np.ndarray, hits: np.ndarray) -> tuple[float, int]:
    """Mean over captions with both hits and misses of P(score of a hit > score of a miss); and how many captions."""
    aucs = []
    for s, h in zip(scores, hits):
        p, q = s[h], s[~h]
        if len(p) and len(q):
            aucs.append((p[:, None] > q[None]).mean() + 0.5 * (p[:, None] == q[None]).mean())
    return float(np.mean(aucs)) if aucs else float("nan"), len(aucs)


@torch.no_grad()
def rescore(cases: list[dict], images: Path, judge: Path) -> None:
    """Replace each case's scores by another judge's calibrated logit of its x0_hat at every level (in place)."""
    from poelang.stdlib.mini import vqa

    model = vqa.load(judge)
    for c in cases:
        x0_hat = np.load(images / c["images"])["x0_hat"]  # [levels + 1, L, 3, H, W]
        spec = vqa.caption_tensors([c["caption"]] * x0_hat.shape[1])
        c["scores"] = [model(torch.from_numpy(x).float() / 127.5 - 1, spec).tolist() for x in x0_hat]


FAULT_WORDS = {"missing": "a named object missing (read as another shape or colour, or not drawn)",
               "too many": "one object too many", "size": "a wrong size", "relation": "a wrong relation",
               "unnamed": "an object of an unnamed class"}


def complaint(caption: str, facts) -> str:
    """The checker's first reason to call an image false of its caption, in words; an unnamed object under 8 pixels
    is called a fragment (a segmenter's speck rather than an object drawn)."""
    from poelang.stdlib.mini import rules

    fault = rules.first_fault(caption, facts)
    if fault == "unnamed":
        named = {(p.color, p.shape) for c in rules.parse_caption(caption) for p in (c.subject, c.object) if p}
        if all(f.area < 8 for f in facts if (f.color, f.shape) not in named):
            return "a fragment of an unnamed class (< 8 pixels)"
    return FAULT_WORDS[fault]


def final_images(cases: list[dict], images: Path) -> list[torch.Tensor]:
    """Every particle's final image [L, 3, H, W] in [-1, 1], per caption, from the folder --images kept."""
    return [torch.from_numpy(np.load(images / c["images"])["x0_hat"][-1]).float() / 127.5 - 1 for c in cases]


def judge_misses(cases: list[dict], finals: list[torch.Tensor], hits: np.ndarray, scores: np.ndarray) -> None:
    """Why the judge's argmax among all L is a miss where a hit was there to pick, by the checker's complaint."""
    from collections import Counter

    from poelang.stdlib.mini import rules

    reasons = Counter()
    for c, final, h, s in zip(cases, finals, hits, scores):
        best = int(np.argmax(s))
        if h.any() and not h[best]:
            facts = rules.facts_from_segmentation(judges.segment(final[best:best + 1])[0])
            reasons[complaint(c["caption"], facts)] += 1
    print(f"\nThe judge's argmax is a miss beside a hit in {sum(reasons.values())} of {len(cases)} captions; the "
          "checker's complaint: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))


def twin_verdicts(cases: list[dict], finals: list[torch.Tensor], twin: Path) -> np.ndarray:
    """The twin checker's verdict on every particle's final image [n, L]."""
    segmenter = judges.load_segmenter(twin)
    return np.array([judges.check(final, c["caption"], segmenter) for c, final in zip(cases, finals)], bool)


def twin_table(hits: np.ndarray, twin: np.ndarray, scores: np.ndarray) -> None:
    """Agreement of the two checkers, and the twin as a selector among the first k particles (the judge's final
    score breaks its ties), its success by the checker."""
    n, L = hits.shape
    se = lambda v: v.std(ddof=1) / np.sqrt(len(v))  # noqa: E731
    print(f"\nTwin checker on the {n * L} final images: agrees with the checker on {(hits == twin).mean():.3f}; hit rate "
          f"{twin.mean():.3f} (checker {hits.mean():.3f}); of the checker's hits it passes {twin[hits].mean():.3f}, of "
          f"its own hits the checker passes {hits[twin].mean():.3f}")
    rows, k = [], 1
    while k <= L:
        pick = (twin[:, :k] * 1e6 + scores[:, :k]).argmax(1)
        picked = hits[np.arange(n), pick].astype(float)
        judge = hits[np.arange(n), scores[:, :k].argmax(1)].astype(float)
        rows.append((k, f"{hits[:, :k].any(1).mean():.2f}", f"{picked.mean():.2f} ± {se(picked):.2f}",
                     f"{judge.mean():.2f} ± {se(judge):.2f}"))
        k *= 2
    mini_paper.print_table("Selecting among k particles, success by the checker", (
        "k particles", "oracle", "twin checker's pick (judge breaks ties)", "judge's pick"), rows)


def summarize(files: list[Path], images: Path | None = None, judge: Path | None = None,
              twin: Path | None = None) -> None:
    cases = [json.loads(line) for f in files for line in Path(f).read_text().splitlines()]
    if judge:
        rescore(cases, images, judge)
    hits = np.array([c["hits"] for c in cases], bool)  # [n, L]
    scores = np.array([c["scores"] for c in cases])  # [n, levels + 1, L]
    sigmas = cases[0]["sigmas"]
    n, L = hits.shape
    se = lambda v: v.std(ddof=1) / np.sqrt(len(v))  # noqa: E731
    rows = []
    k = 1
    while k <= L:
        any_hit = hits[:, :k].any(1).astype(float)
        picked = hits[np.arange(n), scores[:, -1, :k].argmax(1)].astype(float)
        rows.append((k, f"{hits[:, :k].mean():.2f}", f"{any_hit.mean():.2f} ± {se(any_hit):.2f}",
                     f"{picked.mean():.2f} ± {se(picked):.2f}"))
        k *= 2
    mini_paper.print_table(f"{n} held-out captions of task (a), {L} independent particles of the product each: "
                           "hits by the rule checker",
                           ("k particles", "hit rate (random pick)", "oracle: some hit among k",
                            "judge's argmax among k (final image)"), rows)
    rows = []
    for level in range(1, scores.shape[1]):
        auc, m = within_caption_auc(scores[:, level], hits)
        picked = hits[np.arange(n), scores[:, level].argmax(1)].mean()
        top = np.argsort(-scores[:, level], 1)[:, : L // 2]
        rows.append((f"{sigmas[level]:.2f}", f"{auc:.2f} ({m} captions)", f"{picked:.2f}",
                     f"{np.mean([hits[c, top[c]].mean() for c in range(n)]):.2f}"))
    mini_paper.print_table(f"The judge on x0_hat at each level, within each caption (chance: AUC 0.50, pick "
                           f"{hits.mean():.2f})", ("σ", "within-caption AUC", "argmax is a hit", "hit rate of the top half"),
                           rows)
    if twin:
        finals = final_images(cases, images)
        twin_table(hits, twin_verdicts(cases, finals, twin), scores[:, -1])
        judge_misses(cases, finals, hits, scores[:, -1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=16, help="held-out captions")
    parser.add_argument("--seed", type=int, default=1, help="the captions' seed (mini_paper's tables use 0)")
    parser.add_argument("--particles", type=int, default=16)
    parser.add_argument("--levels", type=int, default=20)
    parser.add_argument("--weight", type=float, default=2.0)
    parser.add_argument("--records", type=Path, default=None, help="append each caption's results here (JSON lines)")
    parser.add_argument("--summarize", type=Path, nargs="+", default=None, help="print the tables of these records")
    parser.add_argument("--images", type=Path, default=None,
                        help="keep (or, with --judge, read) every particle's x0_hat at every level in this folder")
    parser.add_argument("--judge", type=Path, default=None,
                        help="summarize: rank the particles kept under --images by this mini_vqa folder instead")
    parser.add_argument("--twin", type=Path, default=None,
                        help="summarize: re-check the final images kept under --images with this segmenter folder")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for given, name in ((args.judge, "--judge"), (args.twin, "--twin")):
        if given and not (args.summarize and args.images):
            parser.error(f"{name} needs --summarize and the --images the particles were kept in")
    if args.summarize:
        summarize(args.summarize, args.images, args.judge, args.twin)
        return
    records = args.records or Path("build") / f"particles_{args.seed}_{args.particles}.jsonl"
    records.parent.mkdir(parents=True, exist_ok=True)
    draw(args.n, args.seed, args.particles, args.levels, args.weight, records, args.images)
    summarize([records])


if __name__ == "__main__":
    main()
