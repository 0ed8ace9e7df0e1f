"""The mini experts: small FLUX-style models and judges trained on the mini world, shipped with poelang.

They make every example real on a CPU with no downloads. ``mini_flux``,
``mini_flux_fill`` and ``mini_flux_depth`` are FLUX-layout directories under
``stdlib_experts/mini/weights`` loaded by the *same* adapters as FLUX.1
[dev], Fill and Depth (:mod:`stdlib_experts.flux`); they sample 32×32 images
in pixel space. ``mini_vqa`` is a trained image-caption classifier (a
reward), ``mini_rules`` the rule checker on a trained segmenter (a
non-differentiable reward). Captions use the mini world's closed vocabulary;
another word is a diagnostic that lists it.
"""
from __future__ import annotations

from pathlib import Path

from poelang.experts.spec import Bound, ExpertSpec, Param, image_domain
from poelang.experts.unavailable import ExpertUnavailable

WEIGHTS = Path(__file__).parent / "mini" / "weights"
SIZE = (32, 32)


def _vocabulary() -> tuple[str, ...]:
    from stdlib_experts.mini.world import VOCABULARY  # numpy only; genesis loads lazily

    return VOCABULARY


def _check_words(*params: str):
    """A checker rule: every word of these text arguments is in the mini world's vocabulary."""

    def check(bound: Bound) -> None:
        vocabulary = set(_vocabulary())
        for name in params:
            text = bound.values.get(name)
            if not isinstance(text, str):
                continue
            unknown = [w for w in text.lower().replace(",", " ").split() if w not in vocabulary]
            if unknown:
                words = ", ".join(f"'{w}'" for w in unknown)
                bound.error(f"{words} not in the mini experts' vocabulary: {' '.join(sorted(vocabulary))}", name)

    return check


def _model(name: str) -> str:
    folder = WEIGHTS / name
    if not (folder / "transformer").is_dir():
        raise ExpertUnavailable(
            f"the weights of {name} are not in {folder}; train them with `python -m stdlib_experts.mini.train`")
    return str(folder)


def _flux_args(args: dict, name: str) -> dict:
    return {**args, "model": _model(name), "guidance": 1.0, "dtype": "float32"}


def load_mini_flux(args: dict, context):
    from stdlib_experts import flux

    return flux.load_flux(_flux_args(args, "mini_flux"), context)


def load_mini_flux_fill(args: dict, context):
    from stdlib_experts import flux

    return flux.load_flux_fill(_flux_args(args, "mini_flux_fill"), context)


def load_mini_flux_depth(args: dict, context):
    from stdlib_experts import flux

    return flux.load_flux_depth(_flux_args(args, "mini_flux_depth"), context)


class MiniVQAScore:
    """log P(yes) of mini_vqa that the image shows the caption; batched over particles."""

    def __init__(self, name: str, caption: str):
        from stdlib_experts.mini import judges

        self.name = name
        self.model = judges.load("mini_vqa")
        self.ids = judges.caption_ids([caption])

    def score(self, x0):
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            logits = self.model(x0.float().cpu(), self.ids.expand(x0.shape[0], -1))
        return F.logsigmoid(logits).to(x0.device)


class MiniRules:
    """1 when the rule checker finds the caption true of the image (segmenter + rules), else 0: a black box."""

    def __init__(self, name: str, caption: str):
        self.name, self.caption = name, caption

    def score(self, x0):
        import torch

        from stdlib_experts.mini import judges

        return torch.tensor(judges.check(x0.float().cpu(), self.caption), dtype=x0.dtype, device=x0.device)


def load_mini_vqa(args: dict, context):
    return MiniVQAScore(context.name, args["caption"])


def load_mini_rules(args: dict, context):
    from stdlib_experts.mini import rules

    try:
        rules.parse_caption(args["caption"])
    except ValueError as e:
        raise ExpertUnavailable(f"mini_rules cannot judge this caption: {e}") from None
    return MiniRules(context.name, args["caption"])


_SIZE = Param("size", "Size", SIZE, "canvas (h, w) in pixels when no image fixes it (trained at 32×32)")

EXPERTS = [
    ExpertSpec(
        "mini_flux", "generative", "mini FLUX: caption → 32×32 image of the mini world (CPU, shipped weights)",
        (Param("prompt", "Text", doc="a caption of the mini world, e.g. \"two red cubes\""), _SIZE),
        loader="stdlib_experts.mini_experts:load_mini_flux", domain=image_domain(), family="mini",
        check=_check_words("prompt"),
    ),
    ExpertSpec(
        "mini_flux_fill", "generative", "mini FLUX Fill: paints the masked part of an image",
        (Param("prompt", "Text", "", "what the filled part shows"),
         Param("image", "Image?", None, "the image to fill; none: a blank canvas"),
         Param("mask", "Mask|Region?", None, "where to paint; none: everywhere"), _SIZE),
        loader="stdlib_experts.mini_experts:load_mini_flux_fill", domain=image_domain("image", "mask"),
        family="mini", check=_check_words("prompt"),
    ),
    ExpertSpec(
        "mini_flux_depth", "generative", "mini FLUX Depth: an image following a depth map",
        (Param("prompt", "Text", "", "what the image shows"),
         Param("depth", "Depth?", None, "the control depth (inverse depth, near is bright); none: constant"), _SIZE),
        loader="stdlib_experts.mini_experts:load_mini_flux_depth", domain=image_domain("depth"), family="mini",
        check=_check_words("prompt"),
    ),
    ExpertSpec(
        "mini_vqa", "reward", 'log P("yes") of the mini VQA model that the image shows the caption',
        (Param("caption", "Text", doc="what the image should show"),),
        loader="stdlib_experts.mini_experts:load_mini_vqa", family="mini", check=_check_words("caption"),
    ),
    ExpertSpec(
        "mini_rules", "reward", "1 if the rule checker finds the caption true of the image, else 0 (not differentiable)",
        (Param("caption", "Text", doc="a caption of the mini world's grammar"),),
        loader="stdlib_experts.mini_experts:load_mini_rules", family="mini", check=_check_words("caption"),
    ),
]
