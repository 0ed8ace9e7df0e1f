"""A grammar-aware generator of poelang programs, for benchmarks/check_fuzz.py.

It keeps a typed environment (vector experts by dimension, image experts by
size, masks, regions, numbers, rewards, samples) and emits the statement forms
of docs/language.md: lets of numbers, boxes, masks (`box_mask`, `blur`,
`dilate`, `erode`, `| & !`, `load_mask`), inputs (`load_image`, `load_depth`,
`load_video`, `frame`) from a corpus of good and broken files, experts
(`gaussian`, `mixture`, `simulator`, in check mode also `flux`, `mini_flux`,
`vqascore`), products with `^`, `given`, `[mask]`, `[box]` and
`exp(w·r + …)` of `quadratic` and `halfspace`, `with { … }` blocks over the
sampler settings, `save` to every format (and to paths that leave the output
directory) and `trace()`, and `import` of a library, a missing file, a folder
or a non-program. Most programs are well typed; with probability `edge` a
number is an edge value and an argument is of the wrong kind, so both the
happy paths and the checker's refusals are exercised.

Run mode keeps to the analytic experts, levels ≤ 3 and particles ≤ 4, so that
every program runs in well under a second.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

EDGE_NUMBERS = ["1e308", "1e39", "1e-300", "-0.0", "0", "2147483648", "12345678901234567890", "-1", "1e-45", "0.5"]
SETTINGS = {
    "levels": ["1", "2", "3"], "particles": ["1", "2", "4"], "mcmc": ["none", "langevin", "mala", "hmc", "auto"],
    "mcmc_steps": ["0", "1", "2"], "step_size": ["0.1", "0.5", "1.9", "1e300"], "leapfrog": ["1", "2"],
    "resample": ["systematic", "multinomial", "residual", "stratified", "median", "none"],
    "resample_when": ["always", "ess", "times"], "ess_threshold": ["0.5", "1", "1e-300"],
    "resample_times": ["[0.5]", "[0.25, 0.75]", "[]"], "weighting": ["exact", "greedy"],
    "annealing": ["auto", "ais", "flow"], "adaptive_temper": ["true", "false"], "seed": ["0", "1", "7", "-1"],
    "output": ["auto", "best", "all", "sample"], "num_samples": ["1", "2", "3"], "max_batch": ["1", "2", "none"],
    "schedule": ["linear", "flux_shift", "[1.0, 0.5, 0.0]", "[0.5, 0.25, 0.0]", "[1.0, 0.5]"],
    "shift": ["auto", "1.0", "3.0", "1e-300"], "cond_updates": ["0", "1"], "cond_lambda": ["0.1", "1e300"],
    "sim_updates": ["0", "1"], "sim_lambda": ["0.5"], "init": ["noise"],
}
FORMATS = {"vector": ["npy", "safetensors"], "image": ["png", "jpg", "npy"], "video": ["gif", "mp4", "npy"]}
WRONG_FORMATS = ["mp3", "", "PNG", "tar.gz"]


@dataclass
class Env:
    numbers: list[str] = field(default_factory=list)
    vectors: dict[int, list[str]] = field(default_factory=dict)  # dimension → expert names
    images: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (h, w) → expert names
    masks: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    pictures: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # loaded images by size
    regions: list[str] = field(default_factory=list)
    rewards: dict[int, list[str]] = field(default_factory=dict)  # vector dimension → reward names
    samples: dict[str, str] = field(default_factory=dict)  # name → kind ("vector", "image")


class ProgramGenerator:
    """`program()` returns the text of one random program; `run_mode` keeps it cheap to sample."""

    def __init__(self, rng: random.Random, corpus: list[str], run_mode: bool = False, edge: float = 0.15):
        self.rng, self.corpus, self.run_mode = rng, corpus, run_mode
        self.edge = edge / 3 if run_mode else edge

    # --- small pieces ------------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def number(self, low: float = -3.0, high: float = 3.0) -> str:
        if self.chance(self.edge):
            return self.rng.choice(EDGE_NUMBERS)
        return f"{self.rng.uniform(low, high):.3g}"

    def positive(self) -> str:
        return self.rng.choice(EDGE_NUMBERS) if self.chance(self.edge) else f"{self.rng.uniform(0.2, 2.0):.3g}"

    def positive_vector(self, d: int) -> str:
        return "[" + ", ".join(self.positive() for _ in range(d)) + "]"

    def input_file(self) -> str:
        """Mostly a readable file; otherwise one of the broken ones."""
        good = ["good.png", "rgba.png", "gray.png", "gray16.png", "float.tif"]
        return self.rng.choice(good if self.chance(0.75) else self.corpus)

    def vector(self, d: int) -> str:
        if self.chance(self.edge / 2):
            return self.rng.choice(["[]", "[5deg]", "[1.0, 50%]", '["a"]'])
        return "[" + ", ".join(self.number() for _ in range(d)) + "]"

    def size(self) -> tuple[int, int]:
        return self.rng.choice([(8, 8), (8, 16), (16, 16)] if self.run_mode else [(8, 8), (16, 16), (32, 32), (64, 64)])

    def length(self, extent: int) -> str:
        if self.chance(0.5):
            return f"{self.rng.randint(0, 100)}%"
        return f"{self.rng.randint(0, extent)}px"

    # --- statements ----------------------------------------------------------------------

    def program(self) -> str:
        self.env, self.lines, self.count, self.saved = Env(), [], 0, set()
        if self.chance(0.1):
            target = "lib.poe" if self.chance(0.6) else self.rng.choice(["missing.poe", ".", "good.png", "notes.txt", "adir.poe"])
            self.lines.append(f'import "{target}"' + (" as lib" if self.chance(0.5) else ""))
        for _ in range(self.rng.randint(1, 8)):
            self.rng.choice([self.let_number, self.let_vector_expert, self.let_image_expert, self.let_mask,
                             self.let_region, self.let_reward, self.let_input])()
        for _ in range(self.rng.randint(1, 2)):
            self.sample()
        for _ in range(self.rng.randint(0, 3)):
            self.save()
        return "\n".join(self.lines) + "\n"

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def let_number(self) -> None:
        name = self.name("n")
        left, right, op = self.number(), self.rng.choice(self.env.numbers or ["1"]), self.rng.choice("+-*/^")
        self.lines.append(f"{name} = " + self.rng.choice([left, f"{left} {op} {right}"]))
        self.env.numbers.append(name)

    def let_vector_expert(self) -> None:
        name, d = self.name("v"), self.rng.choice([1, 2, 3])
        kind = self.rng.choice(["gaussian", "gaussian", "mixture", "simulator"])
        if kind == "gaussian":
            std = self.rng.choice([self.positive(), self.positive_vector(d), "1.0"])
            text = f"gaussian(mean={self.vector(d)}, std={std})" if self.chance(0.8) else f"gaussian(mean=0.0, dim={d})"
        elif kind == "mixture":
            k = self.rng.choice([1, 2, 3])
            means = "[" + ", ".join(self.vector(d) for _ in range(k)) + "]"
            std = self.rng.choice(["1.0", self.positive_vector(k)] + ([self.positive_vector(d)] if self.chance(self.edge) else []))
            text = f"mixture(weights=[{', '.join(self.positive() for _ in range(k))}], means={means}, std={std})"
        else:
            text = f"simulator(target={self.vector(d)}, weight={self.positive()})"
        self.lines.append(f"{name} = {text}")
        self.env.vectors.setdefault(d, []).append(name)

    def let_image_expert(self) -> None:
        name, (h, w) = self.name("g"), self.size()
        pictures = self.env.pictures.get((h, w))
        choices = ["gaussian", "gaussian"] + (["simulator"] if pictures else [])
        if not self.run_mode:
            choices += ["mini_flux", "flux", "wan_t2v"]
        kind = self.rng.choice(choices)
        if kind == "gaussian":
            std = "[1.0, 2.0]" if self.chance(self.edge) else self.rng.choice([self.positive(), "0.5"])
            text = f"gaussian(mean={self.number(-1, 1)}, std={std}, size=({h}, {w}))"
        elif kind == "simulator":
            text = f"simulator(target={self.rng.choice(pictures)}, weight={self.positive()})"
        elif kind == "mini_flux":
            text = f'mini_flux("a blue cone", size=({h}, {w}))'
        else:
            text = f'{kind}("a cat", size=({h}, {w}))'
        self.lines.append(f"{name} = {text}")
        self.env.images.setdefault((h, w), []).append(name)

    def let_mask(self) -> None:
        name, (h, w) = self.name("m"), self.size()
        existing = self.env.masks.get((h, w), [])
        x0, y0 = self.rng.randint(0, 50), self.rng.randint(0, 50)
        options = [f"box_mask(box({x0}%, {y0}%, {x0 + self.rng.randint(1, 50)}%, {y0 + self.rng.randint(1, 50)}%), size=({h}, {w}))",
                   f"box_mask(box({self.length(w)}, {self.length(h)}, {self.length(w)}, {self.length(h)}), size=({h}, {w}))",
                   f'load_mask("{self.input_file()}", size=({h}, {w}))']
        if existing:
            a = self.rng.choice(existing)
            options += [f"blur({a}, {self.rng.choice(['2px', '-3px', '1e308px', '10%'])})", f"dilate({a}, 1px)",
                        f"erode({a}, 2px)", f"!{a}", f"{a} | {self.rng.choice(existing)}", f"{a} & {self.rng.choice(existing)}"]
        self.lines.append(f"{name} = {self.rng.choice(options)}")
        self.env.masks.setdefault((h, w), []).append(name)

    def let_region(self) -> None:
        name = self.name("r")
        x0, y0 = self.rng.randint(0, 40), self.rng.randint(0, 40)
        self.lines.append(f"{name} = box({x0}%, {y0}%, {x0 + self.rng.randint(1, 60)}%, {y0 + self.rng.randint(1, 60)}%)")
        self.env.regions.append(name)

    def let_reward(self) -> None:
        name, d = self.name("q"), self.rng.choice([1, 2, 3])
        if self.chance(0.6):
            text = f"quadratic(center={self.vector(d)}, scale={self.positive()})"
        else:
            text = f"halfspace(normal={self.vector(d)}, offset={self.number()})"
        self.lines.append(f"{name} = {text}")
        self.env.rewards.setdefault(d, []).append(name)

    def let_input(self) -> None:
        name, (h, w) = self.name("i"), self.size()
        kind = self.rng.choice(["load_image", "load_image", "load_depth", "load_video"])
        path = self.rng.choice(["anim.gif", "good.png", "corrupt.gif"]) if kind == "load_video" and self.chance(0.7) else self.input_file()
        size = f", size=({h}, {w})" if self.chance(0.8) else ""
        if kind == "load_video":
            frames = self.rng.choice(["1", "2", "3"] if self.chance(0.8) else ["50", "0"])
            self.lines.append(f'{name}v = load_video("{path}"{size}, frames={frames})')
            self.lines.append(f"{name} = frame({name}v, {self.rng.choice(['0', '-1'] if self.chance(0.8) else ['1', '5'])})")
        else:
            self.lines.append(f'{name} = {kind}("{path}"{size})')
        if kind != "load_depth" and size:
            self.env.pictures.setdefault((h, w), []).append(name)

    # --- products, samples and saves ------------------------------------------------------

    def factor(self, pool: list[str], restrict: list[str]) -> str:
        text = self.rng.choice(pool)
        if self.chance(0.2):
            text = f"{text}^{self.positive()}"
        if restrict and self.chance(0.3):
            text = f"{text}[{self.rng.choice(restrict)}]"
        return text

    def sample(self) -> None:
        canvases = [("vector", d) for d in self.env.vectors] + [("image", s) for s in self.env.images]
        if not canvases:
            self.let_vector_expert()
            canvases = [("vector", d) for d in self.env.vectors]
        kind, key = self.rng.choice(canvases)
        pool = self.env.vectors[key] if kind == "vector" else self.env.images[key]
        restrict = (self.env.masks.get(key, []) + self.env.regions) if kind == "image" else (
            self.env.regions if self.chance(self.edge) else [])
        factors = [self.factor(pool, restrict) for _ in range(self.rng.randint(1, min(3, len(pool))))]
        if len(factors) == 2 and factors[0] != factors[1] and self.chance(0.2):
            factors = [f"({factors[0]} given {factors[1]})", factors[1]]
        product = " * ".join(dict.fromkeys(factors))
        rewards = self.env.rewards.get(key, []) if kind == "vector" else []
        if rewards and self.chance(0.5):
            terms = [f"{self.number(-2, 2)} * {r}" for r in self.rng.sample(rewards, self.rng.randint(1, len(rewards)))]
            product += f" * exp({' + '.join(terms)})"
        settings = {"levels": self.rng.choice(SETTINGS["levels"]), "particles": self.rng.choice(SETTINGS["particles"])}
        for key_ in self.rng.sample(sorted(SETTINGS), self.rng.randint(0, 4)):
            settings.setdefault(key_, self.rng.choice(SETTINGS[key_]))
        block = ", ".join(f"{k} = {v}" for k, v in settings.items())
        name = self.name("x")
        self.lines.append(f"{name} ~ {product} with {{ {block} }}")
        self.env.samples[name] = kind

    def save(self) -> None:
        unsaved = [item for item in sorted(self.env.samples.items()) if item[0] not in self.saved or self.chance(self.edge)]
        if not unsaved:
            return
        name, kind = self.rng.choice(unsaved)
        self.saved.add(name)
        if self.chance(0.2):
            self.lines.append(f'save trace({name}) to "{name}_trace"')
            return
        ext = self.rng.choice(WRONG_FORMATS) if self.chance(self.edge) else self.rng.choice(FORMATS[kind])
        folder = self.rng.choice(["", "", "sub/", "../", "/tmp/poelang-fuzz-"]) if self.chance(self.edge) else ""
        self.lines.append(f'save {name} to "{folder}{name}{"." + ext if ext else ""}"')


def make_corpus(folder: Path) -> list[str]:
    """Good and broken input files in `folder`; returns their names (what programs may load)."""
    import os

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (200, 30, 30)).save(folder / "good.png")
    Image.new("RGBA", (16, 16), (0, 200, 0, 0)).save(folder / "rgba.png")
    Image.new("L", (8, 8), 128).save(folder / "gray.png")
    Image.fromarray((np.arange(256, dtype=np.uint16).reshape(16, 16) * 256)).save(folder / "gray16.png")
    Image.fromarray(np.linspace(0, 5, 64, dtype=np.float32).reshape(8, 8)).save(folder / "float.tif")
    frames = [Image.new("RGB", (16, 16), (60 * i, 0, 0)) for i in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    (folder / "zero.png").write_bytes(b"")
    (folder / "trunc.png").write_bytes((folder / "good.png").read_bytes()[:40])
    (folder / "text.png").write_text("not an image")
    (folder / "corrupt.gif").write_bytes((folder / "anim.gif").read_bytes()[:60])
    (folder / "adir.png").mkdir(exist_ok=True)
    (folder / "adir.poe").mkdir(exist_ok=True)
    (folder / "notes.txt").write_text('secret = "do not show"\n')
    (folder / "lib.poe").write_text("shared = gaussian(mean=[0.0, 0.0])\nscale = 2.0\n")
    if hasattr(os, "mkfifo") and not (folder / "fifo.png").exists():
        os.mkfifo(folder / "fifo.png")
    Image.new("L", (9500, 9500)).save(folder / "big.png")  # 90 Mpx: above the decompression-bomb limit
    return ["good.png", "rgba.png", "gray.png", "gray16.png", "float.tif", "anim.gif", "zero.png", "trunc.png",
            "text.png", "corrupt.gif", "adir.png", "missing.png", "fifo.png", "big.png", "/dev/null"]
