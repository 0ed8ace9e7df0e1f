"""The mini experts: small FLUX-style models and judges trained on the mini world, shipped with poelang.

They make every example real on a CPU with no downloads. ``mini_flux``,
``mini_flux_fill`` and ``mini_flux_depth`` are FLUX-layout directories under
``stdlib_experts/mini/weights`` loaded by the *same* adapters as FLUX.1
[dev], Fill and Depth (:mod:`poelang.stdlib.flux`); they sample 32×32 images
in pixel space. ``mini_vqa`` is a trained judge of images against captions, a
calibrated P(yes) (a reward, :mod:`poelang.stdlib.mini.vqa`), ``mini_rules`` the rule checker on a trained segmenter (a
non-differentiable reward). ``mini_video`` is frame-wise (FramePack's role in
the paper): each frame from the two before it, on the autoregressive path. Captions use the mini world's closed vocabulary;
another word is a diagnostic that lists it.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from poelang.experts.spec import Bound, ExpertSpec, Param, image_domain, video_domain
from poelang.experts.unavailable import ExpertUnavailable
from poelang.stdlib.mini import TRUE_CFG  # the default guidance scale of mini_flux (re-exported)

WEIGHTS = Path(__file__).parent / "mini" / "weights"
SIZE = (32, 32)


def _vocabulary() -> tuple[str, ...]:
    from poelang.stdlib.mini.world import VOCABULARY  # numpy only; genesis loads lazily

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
            f"the weights of {name} are not in {folder}; train them with `python -m poelang.stdlib.mini.train`")
    return str(folder)


def _shipped(name: str, marker: str):
    """A ``weights`` rule for a model that ships with poelang: the folder ``WEIGHTS/name`` holding ``marker``."""
    from poelang.experts.spec import Weights

    def rule(args: dict, base_dir: Path) -> list:
        folder = WEIGHTS / name
        found = str(folder) if (folder / marker).exists() else None
        return [Weights(name, found, "pip install --force-reinstall poelang  # the mini weights ship with it; "
                                     "or retrain: python -m poelang.stdlib.mini.train")]

    return rule


def _flux_args(args: dict, name: str) -> dict:
    return {**args, "model": _model(name), "guidance": 1.0, "dtype": "float32"}


def load_mini_flux(args: dict, context):
    from poelang.stdlib import flux

    return flux.load_flux(_flux_args({"true_cfg": TRUE_CFG, **args}, "mini_flux"), context)


def load_mini_flux_fill(args: dict, context):
    from poelang.stdlib import flux

    return flux.load_flux_fill(_flux_args(args, "mini_flux_fill"), context)


def load_mini_flux_depth(args: dict, context):
    from poelang.stdlib import flux

    return flux.load_flux_depth(_flux_args(args, "mini_flux_depth"), context)


class MiniVideoFlow:
    """mini_video as a frame-wise expert (``chunk_velocity``, see poelang.infer.protocol).

    Frame 0 is the given first frame: its flow is that of a point mass, ``(x - x0) / sigma``. Each later frame is
    the FLUX-layout transformer's flow conditioned, like Control, on the packed latents of the two frames before it
    (the first frame twice for frame 1: objects start at rest).
    """

    def __init__(self, name: str, flow, first):
        self.name, self.flow, self.codec = name, flow, flow.codec
        self.first = first  # [1, C, h, w] latent of frame 0

    def chunk_velocity(self, x, sigma, context):
        import torch

        from .codecs import pack

        b, c = x.shape[:2]
        if c != 1:
            raise ValueError(f"mini_video draws one frame at a time (chunk = 1), got chunks of {c} frames")
        k = context.shape[1]
        if k == 0:
            s = sigma.to(x.dtype).view(-1, *([1] * (x.dim() - 1))).clamp_min(1e-6)
            return (x - self.first.to(x)[:, None]) / s
        previous, before = context[:, -1], context[:, -2] if k >= 2 else context[:, -1]
        self.flow.condition = torch.cat([pack(previous), pack(before)], dim=2).to(self.flow.device, self.flow.dtype)
        try:
            return self.flow.velocity(x[:, 0], sigma)[:, None]
        finally:
            self.flow.condition = None


class MiniVQAScore:
    """log P(yes) of mini_vqa that the image shows the caption (calibrated); batched over particles."""

    def __init__(self, name: str, caption: str):
        from poelang.stdlib.mini import judges, vqa

        self.name = name
        self.model = judges.load("mini_vqa")
        self.spec = vqa.caption_tensors([caption])

    def score(self, x0):
        import torch
        import torch.nn.functional as F

        from poelang.stdlib.mini import vqa

        spec = vqa.repeat_spec(self.spec, x0.shape[0])
        with torch.no_grad():
            logits = self.model(x0.float().cpu(), spec)
        return F.logsigmoid(logits).to(x0.device)


class MiniRules:
    """1 when the rule checker finds the caption true of the image (segmenter + rules), else 0: a black box."""

    def __init__(self, name: str, caption: str):
        self.name, self.caption = name, caption

    def score(self, x0):
        import torch

        from poelang.stdlib.mini import judges

        return torch.tensor(judges.check(x0.float().cpu(), self.caption), dtype=x0.dtype, device=x0.device)


def load_mini_video(args: dict, context):
    import torch

    from poelang.stdlib import flux

    if context.region is not None:
        raise ExpertUnavailable("mini_video paints whole frames; it cannot take a region")
    frame_context = replace(context, event_shape=tuple(context.event_shape[1:]), canvas=tuple(context.canvas[1:]))
    flow = flux.load_flux(_flux_args({k: v for k, v in args.items() if k != "image"}, "mini_video"), frame_context)
    image = torch.as_tensor(args["image"], dtype=torch.float32)
    if tuple(image.shape[-2:]) != tuple(context.event_shape[-2:]):
        raise ExpertUnavailable(f"the first frame is {tuple(image.shape[-2:])} but the video's frames are "
                                f"{tuple(context.event_shape[-2:])}")
    return MiniVideoFlow(context.name, flow, flow.codec.encode(image[None]))


def load_mini_vqa(args: dict, context):
    return MiniVQAScore(context.name, args["caption"])


def load_mini_rules(args: dict, context):
    return MiniRules(context.name, args["caption"])


def _check_caption(param: str):
    """A checker rule: the text is a caption of the mini world's grammar (what the judges can read)."""

    def check(bound: Bound) -> None:
        from poelang.stdlib.mini import rules

        text = bound.values.get(param)
        if not isinstance(text, str):
            return
        vocabulary = set(_vocabulary())
        if any(w not in vocabulary for w in text.lower().replace(",", " ").split()):
            return  # _check_words says which
        try:
            rules.parse_caption(text)
        except ValueError as e:
            bound.error(f"not a caption of the mini world: {e} (captions read like \"two red cubes and a blue "
                        f"sphere\" or \"a red cube left of a blue sphere\")", param)

    return check


def _check_all(*checks):
    def check(bound: Bound) -> None:
        for c in checks:
            c(bound)

    return check


_SIZE = Param("size", "Size", SIZE, "canvas (h, w) in pixels when no image fixes it (trained at 32×32)")

EXPERTS = [
    ExpertSpec(
        "mini_flux", "generative", "mini FLUX: caption → 32×32 image of the mini world (CPU, shipped weights)",
        (Param("prompt", "Text", doc="a caption of the mini world, e.g. \"two red cubes\""), _SIZE,
         Param("true_cfg", "Number", TRUE_CFG, "classifier-free guidance scale s: the flow of "
               "p(x|prompt)^s p(x|negative)^(1-s); 1 turns it off (one transformer pass, not a batch of two)"),
         Param("negative_prompt", "Text", "", "what true_cfg steers away from; \"\" is the unconditional model")),
        loader="poelang.stdlib.mini_experts:load_mini_flux", weights=_shipped("mini_flux", "transformer"),
        domain=image_domain(), family="mini",
        check=_check_words("prompt", "negative_prompt"),
    ),
    ExpertSpec(
        "mini_flux_fill", "generative", "mini FLUX Fill: paints the masked part of an image",
        (Param("prompt", "Text", "", "what the filled part shows"),
         Param("image", "Image?", None, "the image to fill; none: a blank canvas"),
         Param("mask", "Mask|Region?", None, "where to paint; none: everywhere"), _SIZE),
        loader="poelang.stdlib.mini_experts:load_mini_flux_fill",
        weights=_shipped("mini_flux_fill", "transformer"),
        domain=image_domain("image", "mask"),
        family="mini", check=_check_words("prompt"),
    ),
    ExpertSpec(
        "mini_flux_depth", "generative", "mini FLUX Depth: an image following a depth map",
        (Param("prompt", "Text", "", "what the image shows"),
         Param("depth", "Depth?", None, "the control depth (inverse depth, near is bright); none: constant"), _SIZE),
        loader="poelang.stdlib.mini_experts:load_mini_flux_depth",
        weights=_shipped("mini_flux_depth", "transformer"),
        domain=image_domain("depth"), family="mini",
        check=_check_words("prompt"),
    ),
    ExpertSpec(
        "mini_video", "generative",
        "mini video: a clip of the mini world from its first frame, frame by frame (path = autoregressive)",
        (Param("prompt", "Text", "", "what the clip shows"), Param("image", "Image", doc="the first frame"),
         Param("frames", "Int", 8, "number of frames (trained on 8 at 8 fps)"), _SIZE),
        loader="poelang.stdlib.mini_experts:load_mini_video",
        weights=_shipped("mini_video", "transformer"),
        domain=video_domain("image"), family="mini",
        check=_check_words("prompt"),
    ),
    ExpertSpec(
        "mini_vqa", "reward",
        'log P("yes"), calibrated, of the mini judge that the image shows the caption (every object, counts, sizes, '
        'relations)',
        (Param("caption", "Text", doc="a caption of the mini world's grammar"),),
        loader="poelang.stdlib.mini_experts:load_mini_vqa", weights=_shipped("mini_vqa", "model.safetensors"),
        family="mini", check=_check_all(_check_words("caption"), _check_caption("caption")),
    ),
    ExpertSpec(
        "mini_rules", "reward", "1 if the rule checker finds the caption true of the image, else 0 (not differentiable)",
        (Param("caption", "Text", doc="a caption of the mini world's grammar"),),
        loader="poelang.stdlib.mini_experts:load_mini_rules", weights=_shipped("segmenter", "model.safetensors"),
        family="mini", check=_check_all(_check_words("caption"), _check_caption("caption")),
    ),
]
