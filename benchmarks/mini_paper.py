"""The paper's three tasks in miniature, on the shipped mini experts (CPU, no downloads).

    python benchmarks/mini_paper.py [--task a b c d] [--n 50] [--levels 20] [--seed 0]
    python benchmarks/mini_paper.py --task a --n 100 --particles 1 4 16 --shard 0 2 --records a0.jsonl &
    python benchmarks/mini_paper.py --task a --n 100 --particles 1 4 16 --shard 1 2 --records a1.jsonl
    python benchmarks/mini_paper.py --summarize a0.jsonl a1.jsonl
    python benchmarks/mini_paper.py --task a --n 48 --seed 1 --particles 16 --skip-best-of --set step_size=1.0   # tuning

Every case is held out: captions whose hash puts them in the test split
(``world.split_of``), scenes drawn from seeds no training set used. Every
method runs through ``poelang`` programs, so the figures are the ones a user
gets. Success is judged by a model that is not steered on:

(a) regional text-to-image with counting and relations: the rule checker
    (segmenter + rules) on vanilla mini_flux, PoE (scene × regional experts ×
    exp(w·mini_vqa), SMC) with L = 1, 2, 4, 8, 16, 32 particles, and beside
    each L best-of-N at equal compute (N picked so that generative-expert
    compute matches PoE with that L; the best by mini_vqa; one run of the
    largest N, each smaller N the best of its first N samples); paired
    differences with their standard errors. The PoE samples with the mini
    examples' settings (``EXAMPLES_SMC``: the paper's path, greedy ranking,
    systematic resampling at 0.25, 0.5, 0.75, w = 8); ``--set KEY=VALUE``,
    ``--resample-times`` and ``--resample`` change them (``--set
    annealing=fk --set mcmc=none``: the SDE path without Langevin moves).
    Tune on another ``--seed`` than the table's. ``--recheck
    SEGMENTER`` also judges every output by a twin of the checker's segmenter
    (trained apart), a column and paired differences of its own.
(b) object insertion at a pose: background MSE outside the object and
    foreground IoU / MSE against the graphics engine's render of the object.
(c) physics-instructed video: per-frame foreground IoU against the simulator.
(d) physics-instructed video editing (a clip's dropped ball thrown instead):
    ball IoU against the edit's simulation, MSE to the input clip away from
    the ball, for PoE from the clip's inversion, PoE from noise, and the
    inversion alone (which keeps the old motion).

Compute is counted in transformer tokens (batch rows × image tokens of every
generative expert call), so a regional expert over half the canvas counts
half; rewards' cost is not counted (it is small beside the generators' here).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import poelang  # noqa: E402
from poelang.stdlib import flux  # noqa: E402
from poelang.stdlib.mini import judges, rules, world  # noqa: E402

# --- compute accounting -----------------------------------------------------------------------------------------


class TokenCounter:
    """Counts generative compute: batch rows × image tokens of every FluxFlow call."""

    def __init__(self):
        self.tokens = 0

    def __enter__(self):
        original = self.original = flux.FluxFlow.velocity
        counter = self

        def counted(expert, x, sigma):
            counter.tokens += x.shape[0] * (x.shape[-2] // 2) * (x.shape[-1] // 2)
            return original(expert, x, sigma)

        flux.FluxFlow.velocity = counted
        return self

    def __exit__(self, *exc):
        flux.FluxFlow.velocity = self.original


LAST_MIN_ESS = [float("nan")]  # min ESS / L over the levels of the last run (its trace)


def run_sample(source: str, seed: int):
    """One poelang run of a program text; returns (its sample's result, tokens spent)."""
    program = poelang.parse(source, "<mini_paper>", base_dir=ROOT)
    if not program.ok:
        raise SystemExit(program.render_diagnostics())
    with TokenCounter() as counter:
        result = program.run(seed=seed)
    sample = next(iter(result.samples.values()))
    if sample.trace:
        LAST_MIN_ESS[0] = min(info.ess for info in sample.trace) / sample.particles.shape[0]
    return sample, counter.tokens


def run(source: str, seed: int):
    """One poelang run of a program text; returns (images [N, 3, H, W] in [-1, 1], tokens spent)."""
    sample, tokens = run_sample(source, seed)
    return sample.samples, tokens


def held_out(n: int, seed: int, keep) -> list[tuple[world.Scene, str]]:
    """n (scene, caption) pairs of the test split for which keep(caption) holds."""
    rng = np.random.default_rng([seed, 2026])
    cases = []
    while len(cases) < n:
        scene = world.sample_scene(rng)
        text = world.caption(scene, rng)
        if world.split_of(text) == "test" and keep(text) and text not in {c for _, c in cases}:
            cases.append((scene, text))
    return cases


@dataclass
class Row:
    method: str
    score: float
    stderr: float
    tokens: float
    seconds: float


def print_table(title: str, header: tuple[str, ...], rows: list[tuple]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


# --- (a) regional text-to-image ---------------------------------------------------------------------------------

EXAMPLES_SMC = {"weighting": "greedy", "resample": "systematic", "resample_when": "times",
                "resample_times": "[0.25, 0.5, 0.75]"}
"""Task (a)'s PoE settings by default, those of the mini examples (programs/quickstart.poe, mini/captioned.poe):
the paper's path (an Euler step along the average velocity and a Langevin move per level), the particles ranked by
the reward (greedy) and drawn anew in proportion to exp(w · reward) at a quarter, half and three quarters of the way;
the examples' w is 8 (the benchmark's --weight)."""


def smc_settings(changes: dict[str, str] | None = None) -> str:
    """The PoE's `with { }` lines after levels and particles: EXAMPLES_SMC with ``changes`` ({"mcmc_steps": "2"})."""
    return "".join(f"\n    {key} = {value}" for key, value in {**EXAMPLES_SMC, **(changes or {})}.items())


def regional_product(text: str, weight: float = 8.0) -> str:
    """The PoE of task (a): the scene expert, regional experts for a left/right pair, the VQA judge."""
    lines = [f'scene = mini_flux("{text}")', f'judge = mini_vqa("{text}")']
    factors = ["scene"]
    for clause in rules.parse_caption(text):
        if clause.relation in ("left of", "right of"):
            left, right = (clause.subject, clause.object) if clause.relation == "left of" else (clause.object, clause.subject)
            for name, phrase, box in (("left", left, "0%, 0%, 50%, 100%"), ("right", right, "50%, 0%, 100%, 100%")):
                words = " ".join(w for w in ("a", phrase.size, phrase.color, phrase.shape) if w)
                lines.append(f'{name} = mini_flux("{words}", size=(32, 16))')
                factors.append(f"{name}[box({box})]")
            break
    return "\n".join(lines) + "\nx ~ " + " * ".join(factors) + f" * exp({weight} * judge)"


def counting_or_relation(text: str) -> bool:
    """One clause: a count of two or three ("two red cubes") or a relation of two objects ("a red cube left of ...")."""
    clauses = rules.parse_caption(text)
    return len(clauses) == 1 and (clauses[0].relation is not None or clauses[0].subject.count > 1)


FK = """
    annealing = fk
    mcmc = none"""


def task_a(n: int, levels: int, seed: int, particles: tuple[int, ...], weight: float = 8.0,
           shard: tuple[int, int] = (0, 1), records: Path | None = None, fk: bool = False,
           fk_particles: tuple[int, ...] = (), smc: str = smc_settings(), with_best_of: bool = True,
           recheck: Path | None = None) -> None:
    """Success per method on n held-out captions; best-of-N beside each L at that L's generative compute.

    ``shard`` (i, k) runs every k-th caption from the i-th, so that k processes share the work; each writes its
    cases to ``records`` (JSON lines) and ``--summarize`` prints the table of them all. ``recheck``: a second
    segmenter (a twin of the checker's, trained apart) also judges every output, its verdict recorded beside the
    checker's: a gain that shows by both is not one the reward found in the checker's own quirks.
    """
    import json
    import tempfile

    cases = held_out(n, seed, keep=counting_or_relation)
    twin = judges.load_segmenter(recheck) if recheck else None
    if records is None:
        records = Path(tempfile.mkdtemp()) / "task_a.jsonl"
    out = open(records, "a")
    for i, (_, text) in enumerate(cases):
        if i % shard[1] != shard[0]:
            continue
        case_seed = seed * 1000 + i
        results, fk_ess, grains = {}, {}, {}

        def record(name, images, tokens, started):
            checked = verdicts(images[:1], text, twin)
            results[name] = checked[:1] + [tokens, time.perf_counter() - started] + checked[1:]
            grains[name] = grain(images[0])

        started = time.perf_counter()
        images, vanilla_tokens = run(f'x ~ mini_flux("{text}") with {{\n    levels = {levels}\n    particles = 1\n'
                                     "    mcmc_steps = 0\n    cond_updates = 0\n}", case_seed)
        record("vanilla mini_flux", images, vanilla_tokens, started)
        poe_tokens = {}
        for L in particles:
            started = time.perf_counter()
            images, poe_tokens[L] = run(regional_product(text, weight) +
                                        f" with {{\n    levels = {levels}\n    particles = {L}{smc}\n}}", case_seed)
            record(f"PoE, L = {L}", images, poe_tokens[L], started)
            if fk:  # the same product on the Feynman-Kac corrected path (exact weights, no reward greed)
                started = time.perf_counter()
                images, fk_tokens = run(regional_product(text, weight) +
                                        f" with {{\n    levels = {levels}\n    particles = {L}{FK}\n}}", case_seed)
                record(f"PoE fk, L = {L}", images, fk_tokens, started)
                fk_ess[f"PoE fk, L = {L}"] = LAST_MIN_ESS[0]
        if with_best_of and particles:
            chosen, chosen_grains = best_of_n(text, weight, levels, case_seed,
                                              {L: max(1, round(poe_tokens[L] / vanilla_tokens)) for L in particles}, twin)
            results.update(chosen)
            grains.update(chosen_grains)
        for L in fk_particles:  # fk alone at more particles (e.g. the compute of the paper's path at fewer)
            started = time.perf_counter()
            images, fk_tokens = run(regional_product(text, weight) +
                                    f" with {{\n    levels = {levels}\n    particles = {L}{FK}\n}}", case_seed)
            record(f"PoE fk, L = {L}", images, fk_tokens, started)
            fk_ess[f"PoE fk, L = {L}"] = LAST_MIN_ESS[0]
        print(f"  [{i + 1}/{len(cases)}] {text}: " + ", ".join(f"{k.split(' (')[0]}={int(v[0])}" for k, v in results.items()),
              file=sys.stderr, flush=True)
        out.write(json.dumps({"case": i, "seed": seed, "caption": text, "levels": levels, "weight": weight,
                              "smc": " ".join(smc.split()), "results": results, "fk_min_ess": fk_ess,
                              "grain": grains}) + "\n")
        out.flush()
    out.close()
    if shard[1] == 1:
        summarize_a([records])


def verdicts(image: torch.Tensor, text: str, twin=None) -> list[bool]:
    """[the checker's verdict] on one image, and the twin checker's after it when there is one."""
    return [bool(judges.check(image, text)[0])] + ([bool(judges.check(image, text, twin)[0])] if twin else [])


def grain(image: torch.Tensor) -> float:
    """Mean |discrete Laplacian| of an image [3, H, W] in [-1, 1]: its high-frequency content, where noise that a
    stochastic path leaves would show (beside vanilla mini_flux's, an ODE sample's)."""
    x = image.double()
    laplacian = (4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:])
    return float(laplacian.abs().mean())


def best_of_n(text: str, weight: float, levels: int, seed: int, best_of: dict[int, int],
              twin=None) -> tuple[dict[str, list], dict[str, float]]:
    """Best-of-N by mini_vqa beside each L (N = best_of[L]): one run of the largest N; each smaller N is the best of
    its first N samples, which are N independent draws as a run of N would be (tokens and time counted pro rata).
    Returns the results and each output's grain, by method name."""
    most = max(best_of.values())
    started = time.perf_counter()
    sample, tokens = run_sample(f'judge = mini_vqa("{text}")\nx ~ mini_flux("{text}") * exp({weight} * judge) with {{\n'
                                f"    levels = {levels}\n    particles = {most}\n    mcmc_steps = 0\n"
                                "    cond_updates = 0\n    resample = none\n    weighting = greedy\n"
                                "    output = all\n}", seed)
    seconds = time.perf_counter() - started
    scores = sample.scores.double().numpy()
    results, grains = {}, {}
    for L, k in best_of.items():
        best = int(np.argmax(scores[:k]))
        checked = verdicts(sample.samples[best:best + 1], text, twin)
        name = f"best-of-{k} (L = {L}'s compute)"
        grains[name] = grain(sample.samples[best])
        results[name] = checked[:1] + [tokens * k / most, seconds * k / most] + checked[1:]
    return results, grains


def load_records(files: list[Path]) -> dict[tuple[int, str], dict]:
    """Task (a) records by (case number, caption): a case number alone repeats across --seed."""
    return {(case["case"], case["caption"]): case
            for f in files for case in map(json.loads, Path(f).read_text().splitlines())}


def compare_a(files: list[Path], against: list[Path]) -> None:
    """Paired differences of success on the captions both record sets ran: per PoE method both ran (the same L),
    and for each L of ``files`` against the method of ``against`` whose compute is nearest (PoE or best-of-N); by the
    checker, and by the twin checker too where both record sets have its verdicts."""
    a, b = load_records(files), load_records(against)
    common = sorted(set(a) & set(b))
    first_a, first_b = a[common[0]]["results"], b[common[0]]["results"]

    def result(records, key, name):  # by method name: best-of-N's N varies by caption
        return next(v for k, v in records[key]["results"].items() if method(k) == name)

    def compute(records, name):
        return np.mean([result(records, k, name)[1] for k in common])

    pairs = [(name, name) for name in first_a if name.startswith("PoE") and name in first_b]
    theirs = [method(n) for n in first_b]
    for kind in ("PoE", "best-of-N"):
        candidates = [n for n in theirs if n.startswith(kind)]
        for name in (n for n in first_a if n.startswith("PoE") and candidates):
            nearest = min(candidates, key=lambda n: abs(np.log(compute(b, n) / compute(a, name))))
            if nearest != name:
                pairs.append((name, nearest))
    rechecked = all(len(r) == 4 for records in (a, b) for k in common for r in records[k]["results"].values())
    for column, judged in ((0, ""), (3, " by the twin checker"))[:2 if rechecked else 1]:
        rows = []
        for name_a, name_b in pairs:
            d = np.array([result(a, k, name_a)[column] - result(b, k, name_b)[column] for k in common], float)
            se = d.std(ddof=1) / np.sqrt(len(d))
            label = name_a if name_a == name_b else \
                f"{name_a} − their {name_b} (compute ×{compute(a, name_a) / compute(b, name_b):.2f})"
            rows.append((label, f"{d.mean():+.2f} ± {se:.2f}", f"{d.mean() / max(se, 1e-9):.1f}"))
        print_table(f"Paired differences{judged} on {len(common)} captions: ({a[common[0]].get('smc')}, weight "
                    f"{a[common[0]]['weight']}) − ({b[common[0]].get('smc')}, weight {b[common[0]]['weight']})",
                    ("method", "mean ± SE", "SEs"), rows)


def method(name: str) -> str:
    """best-of-N's N varies by caption; the key names it by the L whose compute it matches."""
    return "best-of-N (" + name.split("(")[1] if name.startswith("best-of-") else name


def summarize_a(files: list[Path]) -> None:
    """The task (a) table from JSON-line records: success ± SE per method, paired differences ± SE for the claims."""
    import json

    cases = {}
    for f in files:  # files may hold different methods of the same captions (merged) or other seeds' captions
        for line in Path(f).read_text().splitlines():
            case = json.loads(line)
            key = (case["case"], case["caption"])  # a case index alone repeats across --seed
            if key in cases:
                cases[key]["results"].update(case["results"])
                cases[key].setdefault("fk_min_ess", {}).update(case.get("fk_min_ess", {}))
            else:
                cases[key] = case
    cases = [cases[k] for k in sorted(cases)]
    methods = [{method(k) for k in c["results"]} for c in cases]
    cases = [c for c, m in zip(cases, methods) if m == set.union(*methods)]  # the captions that have every method
    n = len(cases)

    # [checker's verdict, tokens, seconds] per method, and the twin checker's verdict where every record has one
    rechecked = all(len(r) == 4 for c in cases for r in c["results"].values())
    grained = all(set(c.get("grain", {})) == set(c["results"]) for c in cases)  # each output's grain, where recorded
    table: dict[str, np.ndarray] = {}
    grains: dict[str, list[float]] = {}
    for case in cases:
        for name, result in case["results"].items():
            table.setdefault(method(name), []).append(result[:4 if rechecked else 3])
            if grained:
                grains.setdefault(method(name), []).append(case["grain"][name])
    table = {k: np.array(v, float) for k, v in table.items()}
    vanilla = table["vanilla mini_flux"][:, 1].mean()
    mean_se = lambda v: f"{v.mean():.2f} ± {v.std(ddof=1) / np.sqrt(n):.2f}"  # noqa: E731
    rows = []
    for name, v in table.items():
        rows.append((name, mean_se(v[:, 0]), f"{v[:, 1].mean() / vanilla:.1f}", f"{v[:, 2].mean():.1f}") +
                    ((mean_se(v[:, 3]),) if rechecked else ()) + ((f"{np.mean(grains[name]):.3f}",) if grained else ()))
    print_table(f"(a) regional text-to-image, {n} held-out captions, {cases[0]['levels']} levels, reward weight "
                f"{cases[0]['weight']}, {cases[0].get('smc', 'median at 0.25, 0.5, 0.75')}: success by the rule "
                "checker (best-of-N: N ODE samples of mini_flux at the compute of PoE with L particles, the best by "
                "mini_vqa)",
                ("method", "success", "compute (× vanilla)", "s / caption") +
                (("success by the twin checker",) if rechecked else ()) + (("grain",) if grained else ()), rows)
    if grained:
        print("grain: mean |Laplacian| of the output image in [-1, 1] (noise a stochastic path leaves would raise it)")
    for name in cases[0].get("fk_min_ess", {}):
        print(f"{name}: min ESS / L over the levels, mean over captions "
              f"{np.mean([c['fk_min_ess'][name] for c in cases]):.3f}")
    paired_differences({k: v[:, 0] for k, v in table.items()}, "")
    if rechecked:
        paired_differences({k: v[:, 3] for k, v in table.items()}, " by the twin checker")


def paired_differences(success: dict[str, np.ndarray], judged: str) -> None:
    """The claims' paired differences of success (each method's verdicts, one per caption, in the same order)."""
    pairs = []
    ls = sorted(int(k.split("= ")[1]) for k in success if k.startswith("PoE, L"))
    for L in ls[1:]:
        pairs.append((f"PoE L = {L} − PoE L = {ls[0]}", success[f"PoE, L = {L}"] - success[f"PoE, L = {ls[0]}"]))
    for L in (L for L in ls if f"best-of-N (L = {L}'s compute)" in success):
        pairs.append((f"PoE L = {L} − best-of-N at its compute",
                      success[f"PoE, L = {L}"] - success[f"best-of-N (L = {L}'s compute)"]))
    for name in sorted((k for k in success if k.startswith("PoE fk, L")), key=lambda k: int(k.split("= ")[1])):
        L, fk_success = int(name.split("= ")[1]), success[name]
        for poe in (L, L // 2):  # the paper's path at the same particles, and at about the same compute
            if f"PoE, L = {poe}" in success:
                pairs.append((f"PoE fk L = {L} − PoE L = {poe}", fk_success - success[f"PoE, L = {poe}"]))
            if f"best-of-N (L = {poe}'s compute)" in success:
                pairs.append((f"PoE fk L = {L} − best-of-N at PoE L = {poe}'s compute",
                              fk_success - success[f"best-of-N (L = {poe}'s compute)"]))
        pairs.append((f"PoE fk L = {L} − vanilla", fk_success - success["vanilla mini_flux"]))
    if not pairs:  # one L without best-of-N: nothing to pair
        return
    se = lambda d: d.std(ddof=1) / np.sqrt(len(d))  # noqa: E731
    print_table(f"Paired differences of success{judged} (same captions and seeds): mean ± SE, and the mean in SEs",
                ("difference", "mean ± SE", "SEs"),
                [(k, f"{d.mean():+.2f} ± {se(d):.2f}", f"{d.mean() / max(se(d), 1e-9):.1f}") for k, d in pairs])


# --- (b) object insertion ---------------------------------------------------------------------------------------


@dataclass
class InsertionCase:
    text: str  # the inserted object's noun phrase
    background: np.ndarray  # uint8 (H, W, 3): the scene without the object
    target: np.ndarray  # uint8 (H, W, 3): the scene with it (ground truth)
    mask: np.ndarray  # bool (H, W): where the object is seen in the target
    cls: int  # the object's segmentation class
    depth: np.ndarray  # float (H, W) in [0, 1]: the graphics engine's control depth of the object on the ground


def insertion_cases(n: int, seed: int) -> list[InsertionCase]:
    """Held-out scenes of two or three objects; one object (wholly visible, not tiny) is taken out and put back."""
    from dataclasses import replace

    from poelang.stdlib.mini.train import depth_image

    rng = np.random.default_rng([seed, 2027])
    cases = []
    while len(cases) < n:
        scene = world.sample_scene(rng, n_objects=int(rng.integers(2, 4)))
        if world.split_of(world.caption(scene, rng)) != "test":
            continue
        k = int(rng.integers(len(scene.objects)))
        full = world.render_scene(scene)
        if full.masks[k].sum() < 12:
            continue
        obj = scene.objects[k]
        rest = replace(scene, objects=tuple(o for i, o in enumerate(scene.objects) if i != k))
        alone = world.render_scene(replace(scene, objects=(obj,)))
        cases.append(InsertionCase(world.noun_phrase(1, obj.color, obj.shape), world.render_scene(rest).rgb, full.rgb,
                                   full.masks[k], rules.class_index(obj.color, obj.shape), depth_image(alone.depth)))
    return cases


PAPER_SETTINGS = """
    particles = 1
    mcmc_steps = 1
    cond_updates = {cond}
    cond_lambda = 0.02"""
FK_SETTINGS = """
    particles = {particles}
    annealing = fk
    mcmc = none"""
INSERTION = {
    "PoE (fill × depth given fill)": ("fill * (depth given fill)[hole]", PAPER_SETTINGS.format(cond=2)),
    "PoE without conditioning": ("fill * depth[hole]", PAPER_SETTINGS.format(cond=0)),
    "fill alone": ("fill", PAPER_SETTINGS.format(cond=0)),
}
INSERTION_FK = {  # --fk: the product without Eq. 7 (it has no Feynman-Kac weight) on annealing = fk
    "PoE fk (fill × depth), L = 1": ("fill * depth[hole]", FK_SETTINGS.format(particles=1)),
    "PoE fk (fill × depth), L = 4": ("fill * depth[hole]", FK_SETTINGS.format(particles=4)),
}


def insertion_program(case_dir: Path, text: str, product: str, levels: int, settings: str) -> str:
    return f"""bg = load_image("{case_dir}/background.png")
hole = dilate(load_mask("{case_dir}/mask.png"), 1px)
fill = mini_flux_fill(prompt="{text}", image=bg, mask=hole)
depth = mini_flux_depth(prompt="{text}", depth=load_depth("{case_dir}/depth.png"))
x ~ {product} with {{
    levels = {levels}{settings}
}}"""


def sdedit(case: InsertionCase, levels: int, seed: int, start: float = 0.6) -> torch.Tensor:
    """SDEdit: the engine's render pasted into the background, noised to sigma = start, denoised by mini_flux_fill."""
    from poelang.interpreter import ExpertContext
    from poelang.stdlib import mini_experts

    composite = np.where(case.mask[..., None], case.target, case.background)
    image = torch.from_numpy(composite).permute(2, 0, 1).float() / 127.5 - 1
    hole = torch.from_numpy(case.mask).float()
    hole = torch.nn.functional.max_pool2d(hole[None, None], 3, stride=1, padding=1)[0, 0]
    context = ExpertContext("sdedit", (3, 32, 32), "cpu", ROOT, (3, 32, 32), None)
    expert = mini_experts.load_mini_flux_fill({"prompt": case.text, "image": image, "mask": hole, "size": (32, 32)}, context)
    x0 = expert.codec.encode(image[None])
    g = torch.Generator().manual_seed(seed)
    sigmas = torch.linspace(start, 0, max(2, round(levels * start)) + 1)
    x = (1 - start) * x0 + start * torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        for s0, s1 in zip(sigmas[:-1], sigmas[1:]):
            x = x + (s1 - s0) * expert.velocity(x, torch.full((1,), float(s0)))
    return expert.codec.decode(x)


def insertion_metrics(image: torch.Tensor, case: InsertionCase) -> tuple[float, float, float]:
    """(background MSE outside the dilated object, foreground IoU by the segmenter, foreground MSE), images in [0, 1]."""
    from scipy.ndimage import binary_dilation

    x = (image[0].permute(1, 2, 0).clamp(-1, 1).numpy() + 1) / 2
    outside = ~binary_dilation(case.mask, iterations=2)
    bg_mse = float(((x - case.background / 255.0) ** 2)[outside].mean())
    fg_mse = float(((x - case.target / 255.0) ** 2)[case.mask].mean())
    found = judges.segment(image)[0] == case.cls
    iou = float((found & case.mask).sum() / max((found | case.mask).sum(), 1))
    return bg_mse, iou, fg_mse


def task_b(n: int, levels: int, seed: int, fk: bool = False, shard: tuple[int, int] = (0, 1),
           records: Path | None = None) -> None:
    """Insertion metrics per method on n held-out scenes; ``shard`` and ``records`` as in task (a)."""
    import json
    import tempfile

    from PIL import Image

    if records is None:
        records = Path(tempfile.mkdtemp()) / "task_b.jsonl"
    with tempfile.TemporaryDirectory() as tmp, open(records, "a") as out:
        for i, case in enumerate(insertion_cases(n, seed)):
            if i % shard[1] != shard[0]:
                continue
            case_dir = Path(tmp) / f"case{i}"
            case_dir.mkdir()
            Image.fromarray(case.background).save(case_dir / "background.png")
            Image.fromarray((case.mask * 255).astype(np.uint8)).save(case_dir / "mask.png")
            Image.fromarray((case.depth * 255).round().astype(np.uint8)).save(case_dir / "depth.png")
            results, min_ess = {}, {}
            for name, (product, settings) in (INSERTION | (INSERTION_FK if fk else {})).items():
                images, tokens = run(insertion_program(case_dir, case.text, product, levels, settings), seed * 1000 + i)
                results[name] = insertion_metrics(images, case) + (tokens,)
                if "fk" in name:
                    min_ess[name] = LAST_MIN_ESS[0]
            with TokenCounter() as counter:
                images = sdedit(case, levels, seed * 1000 + i)
            results["SDEdit (render pasted, σ = 0.6)"] = insertion_metrics(images, case) + (counter.tokens,)
            print(f"  [{i + 1}/{n}] {case.text}: " + ", ".join(f"{k.split(' (')[0]} IoU={v[1]:.2f}" for k, v in results.items()),
                  file=sys.stderr, flush=True)
            out.write(json.dumps({"task": "b", "case": i, "text": case.text, "levels": levels, "results": results,
                                  "min_ess": min_ess}) + "\n")
            out.flush()
    if shard[1] == 1:
        summarize_b([records])


def summarize_b(files: list[Path]) -> None:
    """The task (b) table from JSON-line records: metrics ± SE per method, paired IoU differences for fk."""
    import json

    cases = {}
    for f in files:
        for line in Path(f).read_text().splitlines():
            case = json.loads(line)
            cases[case["case"]] = case
    cases = [cases[k] for k in sorted(cases)]
    n = len(cases)
    results = {name: np.array([c["results"][name] for c in cases], float) for name in cases[0]["results"]}
    base = results["fill alone"][:, 3].mean()
    rows = []
    for name, v in results.items():
        se = v.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(4)
        rows.append((name, f"{v[:, 0].mean():.4f} ± {se[0]:.4f}", f"{v[:, 1].mean():.2f} ± {se[1]:.2f}",
                     f"{v[:, 2].mean():.4f} ± {se[2]:.4f}", f"{v[:, 3].mean() / base:.1f}"))
    print_table(f"(b) object insertion, {n} held-out scenes, {cases[0]['levels']} levels",
                ("method", "background MSE ↓", "foreground IoU ↑", "foreground MSE ↓", "compute (× fill alone)"), rows)
    for name in cases[0]["min_ess"]:
        print(f"{name}: min ESS / L over the levels, mean over scenes {np.mean([c['min_ess'][name] for c in cases]):.3f}")
    if any(name in results for name in INSERTION_FK):
        paper = results["PoE (fill × depth given fill)"][:, 1]
        pairs = [(f"{name} − the paper's PoE", results[name][:, 1] - paper) for name in INSERTION_FK]
        pairs.append(("PoE fk, L = 4 − PoE without conditioning (L = 1)",
                      results["PoE fk (fill × depth), L = 4"][:, 1] - results["PoE without conditioning"][:, 1]))
        print_table("Paired differences of foreground IoU (same scenes and seeds): mean ± SE, and the mean in SEs",
                    ("difference", "mean ± SE", "SEs"),
                    [(k, f"{d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(n):.3f}",
                      f"{d.mean() / max(d.std(ddof=1) / np.sqrt(n), 1e-9):.1f}") for k, d in pairs])


# --- (c) physics-instructed video --------------------------------------------------------------------------------

MINI_CAMERA = "camera(position=(0.0, -5.953, 4.589), lookat=(0.0, 0.6, 0.0), fov=28deg)"  # the mini world's


def drop_cases(n: int, seed: int) -> list[tuple[str, str, int]]:
    """n drops: (object call, caption, segmentation class) of a sphere or cube released above the ground."""
    rng = np.random.default_rng([seed, 2028])
    cases = []
    for _ in range(n):
        shape, color, size = rng.choice(["sphere", "cube"]), rng.choice(world.COLORS), rng.choice(world.SIZES)
        width = world.SIZE_WIDTH[size]
        x, y, z = rng.uniform(-1.6, 1.6), rng.uniform(-0.5, 2.5), width / 2 + rng.uniform(0.8, 1.5)
        if shape == "sphere":
            call = f'sphere(radius={width / 2:.3f}, position=({x:.3f}, {y:.3f}, {z:.3f}), color="{color}", name="obj")'
        else:
            yaw = rng.uniform(0, 90)
            call = (f'cube(size={width:.3f}, position=({x:.3f}, {y:.3f}, {z:.3f}), rotation=(0deg, 0deg, {yaw:.1f}deg), '
                    f'color="{color}", name="obj")')
        cases.append((call, f"a {color} {shape}", rules.class_index(str(color), str(shape))))
    return cases


def video_program(call: str, text: str, levels: int, with_simulator: bool) -> str:
    product = "video * physics" if with_simulator else "video"
    return f"""cam = {MINI_CAMERA}
obj = {call}
sim = simulate([obj], camera=cam, frames=8, fps=8, size=(32, 32))
video = mini_video(prompt="{text}", image=frame(sim.rgb, 0), frames=8)
physics = simulator(target=sim.rgb, mask=dilate(object_mask(sim, "obj"), 1px), weight=20.0)
x ~ {product} with {{
    path = autoregressive
    levels = {levels}
    particles = 4
    sim_updates = {8 if with_simulator else 0}
}}"""


def task_c(n: int, levels: int, seed: int) -> None:
    from poelang.stdlib import scene

    results: dict[str, list] = {}
    for i, (call, text, cls) in enumerate(drop_cases(n, seed)):
        for name, with_simulator in (("PoE (mini_video × simulator)", True), ("mini_video alone", False)):
            source = video_program(call, text, levels, with_simulator)
            program = poelang.parse(source, "<mini_paper>", base_dir=ROOT)
            result = program.run(seed=seed * 1000 + i)
            video = next(iter(result.samples.values())).samples[0]  # [f, 3, h, w]
            truth = program_value(program, result, "object_mask")
            found = judges.segment(video) == cls
            ious = [(f & t).sum() / max((f | t).sum(), 1) for f, t in zip(found, truth)]
            results.setdefault(name, []).append(ious)
        print(f"  [{i + 1}/{n}] {text}: " + ", ".join(f"{k.split(' (')[0]} IoU={np.mean(v[-1][1:]):.2f}" for k, v in results.items()),
              file=sys.stderr, flush=True)
        scene.clear_memory()
    frames = len(next(iter(results.values()))[0])
    rows = []
    for name, values in results.items():
        v = np.array(values)
        rows.append((name, *(f"{m:.2f}" for m in v.mean(0)), f"{v[:, 1:].mean():.2f} ± {v[:, 1:].mean(1).std(ddof=1) / np.sqrt(len(v)):.2f}"))
    print_table(f"(c) physics-instructed video, {n} held-out drops, {levels} levels: foreground IoU against the simulator "
                "per frame (frame 0 is given)", ("method", *(f"f{k}" for k in range(frames)), "mean f1-f7"), rows)


# --- (d) physics-instructed video editing --------------------------------------------------------------------------


def edit_cases(n: int, seed: int) -> list[dict]:
    """n clips of a sphere dropped beside a cube, each edited into a throw away from the cube."""
    rng = np.random.default_rng([seed, 2029])
    cases = []
    for _ in range(n):
        color, other = rng.choice(world.COLORS, 2, replace=False)
        side = rng.choice([-1.0, 1.0])  # the throw's direction; the cube stands on the other side
        radius, edge = world.SIZE_WIDTH[rng.choice(world.SIZES)] / 2, world.SIZE_WIDTH[rng.choice(world.SIZES)]
        x, y, z = -side * rng.uniform(0.0, 0.6), rng.uniform(0.0, 1.5), radius + rng.uniform(0.8, 1.4)
        cases.append(dict(
            color=str(color), other=str(other), radius=radius, edge=edge, start=(x, y, z),
            cube=(x - side * rng.uniform(1.1, 1.5), y + rng.uniform(-0.4, 0.4), edge / 2),
            yaw=rng.uniform(0, 90), vx=side * rng.uniform(0.8, 1.4)))
    return cases


def edit_program(case: dict, levels: int, inversion: bool, with_simulator: bool) -> str:
    (x, y, z), (cx, cy, cz) = case["start"], case["cube"]
    ball = f'radius={case["radius"]:.3f}, position=({x:.3f}, {y:.3f}, {z:.3f}), color="{case["color"]}", name="obj"'
    start = "init = inversion\n    invert = original" if inversion else "init = noise"
    return f"""cam = {MINI_CAMERA}
still = cube(size={case["edge"]:.3f}, position=({cx:.3f}, {cy:.3f}, {cz:.3f}), rotation=(0deg, 0deg, {case["yaw"]:.1f}deg), color="{case["other"]}", name="still")
clip = simulate([sphere({ball}), still], camera=cam, frames=8, fps=8, size=(32, 32))
throw = simulate([sphere({ball}, velocity=({case["vx"]:.3f}, 0.0, 0.0)), still], camera=cam, frames=8, fps=8, size=(32, 32))
original = clip.rgb
video = mini_video(prompt="a {case["color"]} sphere and a {case["other"]} cube", image=frame(original, 0), frames=8)
ball = dilate(object_mask(throw, "obj") | object_mask(clip, "obj"), 1px)
physics = simulator(target=throw.rgb, mask=ball, weight=20.0)
x ~ {"video * physics" if with_simulator else "video"} with {{
    path = autoregressive
    {start}
    levels = {levels}
    particles = 4
    mcmc = none
    sim_updates = {8 if with_simulator else 0}
}}"""


def task_d(n: int, levels: int, seed: int) -> None:
    """Ball IoU against the edit's simulation, per frame; MSE to the input clip away from the ball (old and new)."""
    from scipy.ndimage import binary_dilation

    from poelang.interpreter import Interpreter
    from poelang.stdlib import scene

    methods = (("PoE, inverted start (the program)", True, True), ("PoE from noise", False, True),
               ("inversion alone (no edit)", True, False))
    iou: dict[str, list] = {}
    mse: dict[str, list] = {}
    for i, case in enumerate(edit_cases(n, seed)):
        cls = rules.class_index(case["color"], "sphere")
        for name, inversion, with_simulator in methods:
            program = poelang.parse(edit_program(case, levels, inversion, with_simulator), "<mini_paper>", base_dir=ROOT)
            result = program.run(seed=seed * 1000 + i)
            video = next(iter(result.samples.values())).samples[0]  # [f, 3, h, w]
            interp = Interpreter(program)
            clip, throw = (interp.value(v.id) for v in program.graph.values if v.op == "simulate")
            new, old = throw.object_mask("obj").numpy() > 0.5, clip.object_mask("obj").numpy() > 0.5
            found = judges.segment(video) == cls
            iou.setdefault(name, []).append([(f & t).sum() / max((f | t).sum(), 1) for f, t in zip(found, new)])
            away = ~np.stack([binary_dilation(a | b, iterations=2) for a, b in zip(new, old)])
            error = ((video - clip.rgb).pow(2).mean(1).numpy() / 4)[away]  # [-1, 1] → [0, 1] units
            mse.setdefault(name, []).append(float(error.mean()))
        print(f"  [{i + 1}/{n}] " + ", ".join(f"{k.split(',')[0].split(' (')[0]} IoU={np.mean(v[-1][1:]):.2f}"
                                            for k, v in iou.items()), file=sys.stderr, flush=True)
        scene.clear_memory()
    rows = []
    for name, *_ in methods:
        v, m = np.array(iou[name]), np.array(mse[name])
        rows.append((name, f"{v[:, 1:].mean():.2f} ± {v[:, 1:].mean(1).std(ddof=1) / np.sqrt(len(v)):.2f}",
                     f"{m.mean():.4f} ± {m.std(ddof=1) / np.sqrt(len(m)):.4f}"))
    print_table(f"(d) physics-instructed video editing, {n} held-out clips, {levels} levels: a dropped sphere edited "
                "into a throw", ("method", "ball IoU vs the edit's simulation (f1-f7)", "MSE to the input, away from the ball"),
                rows)


def program_value(program, result, op: str):
    """The boolean per-frame mask of the program's `object_mask(sim, "obj")`, recomputed (the simulation is cached)."""
    from poelang.interpreter import Interpreter

    node = next(v for v in program.graph.values if v.op == op)
    return Interpreter(program).value(node.id).numpy() > 0.5


def key_value(text: str) -> str:
    """--set's argument type: a KEY=VALUE pair, as `poelang run --set` takes it."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return text


def settings_changes(args: argparse.Namespace) -> dict[str, str]:
    """The PoE settings the command line changes from EXAMPLES_SMC."""
    changes = dict(kv.split("=", 1) for kv in args.settings)
    if args.resample:
        changes["resample"] = args.resample
    if args.resample_times:
        changes["resample_times"] = "[" + ", ".join(str(t) for t in args.resample_times) + "]"
    return {key.strip(): value.strip() for key, value in changes.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", nargs="+", choices=["a", "b", "c", "d"], default=["a", "b", "c", "d"])
    parser.add_argument("--n", type=int, default=50, help="held-out cases per task")
    parser.add_argument("--levels", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--particles", type=int, nargs="*", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--weight", type=float, default=8.0, help="(a): the reward's weight w in exp(w · mini_vqa)")
    parser.add_argument("--shard", type=int, nargs=2, default=[0, 1], metavar=("I", "K"),
                        help="(a, b): run every K-th case from the I-th (K processes share the work)")
    parser.add_argument("--records", type=Path, default=None, help="(a, b): append each case's results here (JSON lines)")
    parser.add_argument("--summarize", type=Path, nargs="+", default=None,
                        help="(a, b): print the table of these record files and exit")
    parser.add_argument("--resample-times", type=float, nargs="+", default=None,
                        help="(a): the PoE's resampling times, fractions of the schedule (default 0.25 0.5 0.75)")
    parser.add_argument("--resample", default=None,
                        help="(a): the PoE's resampling scheme (median, systematic, none; default systematic)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE", type=key_value,
                        help="(a): a setting of the PoE's `with { }` other than the examples' (EXAMPLES_SMC), e.g. "
                             "--set mcmc_steps=2; repeatable")
    parser.add_argument("--skip-best-of", action="store_true", help="(a): PoE only (to compare PoE settings)")
    parser.add_argument("--against", type=Path, nargs="+", default=None,
                        help="(a): with --summarize, the paired differences to these records (other settings)")
    parser.add_argument("--fk", action="store_true", help="(a, b): also the PoE on annealing = fk (issue #17)")
    parser.add_argument("--fk-particles", type=int, nargs="*", default=[],
                        help="(a): the PoE on annealing = fk alone at these particle counts (no paper's path beside)")
    parser.add_argument("--recheck", type=Path, default=None, metavar="SEGMENTER",
                        help="(a): also judge every output by this twin of the checker's segmenter (trained apart)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.summarize:
        first = json.loads(Path(args.summarize[0]).read_text().splitlines()[0])
        (summarize_b if first.get("task") == "b" else summarize_a)(args.summarize)
        if args.against:
            compare_a(args.summarize, args.against)
        return
    if "a" in args.task:
        task_a(args.n, args.levels, args.seed, tuple(args.particles), args.weight, tuple(args.shard), args.records,
               args.fk, tuple(args.fk_particles), smc_settings(settings_changes(args)),
               not args.skip_best_of, args.recheck)
    if "b" in args.task:
        task_b(args.n, args.levels, args.seed, args.fk, tuple(args.shard), args.records)
    if "c" in args.task:
        task_c(args.n, args.levels, args.seed)
    if "d" in args.task:
        task_d(args.n, args.levels, args.seed)


if __name__ == "__main__":
    main()
