"""FLUX.1 [dev], Fill [dev] and Depth [dev] (Black Forest Labs) through diffusers.

Signatures only are read by the checker. The run-time adapters (packed
latents, the shifted σ schedule, cached prompt embeddings, shared VAE and text
encoders) are the subject of issue #5 and not in this build yet: loading one
of these experts stops the run with that message instead of faking a result.
"""
from __future__ import annotations

from poelang.experts.spec import ExpertSpec, Param, image_domain
from poelang.experts.unavailable import ExpertUnavailable

_COMMON = (
    Param("size", "Size", (1024, 1024), "canvas (h, w) in pixels when no image fixes it"),
    Param("guidance", "Number", 3.5, "FLUX guidance-embedding scale"),
    Param("dtype", "Text", "bfloat16", "weights' dtype on GPU (float32 on CPU)"),
    Param("device", "Text?", None, "device for this expert, e.g. \"cuda:1\"; default: the run's"),
)


def _with(params: tuple[Param, ...], model: str, guidance: float) -> tuple[Param, ...]:
    common = tuple(Param(p.name, p.type, guidance, p.doc) if p.name == "guidance" else p for p in _COMMON)
    return params + common + (Param("model", "Text", model, "local diffusers directory or Hugging Face id"),)


def load(args: dict, context) -> object:
    raise ExpertUnavailable(
        "the FLUX.1 experts need their diffusers adapters, which are not in this build yet (issue #5); "
        "use the analytic experts (and, once shipped, the mini_* experts) to run on this machine"
    )


EXPERTS = [
    ExpertSpec(
        "flux", "generative", "FLUX.1 [dev] text-to-image flow model",
        _with((Param("prompt", "Text", doc="what the image shows"),), "black-forest-labs/FLUX.1-dev", 3.5),
        loader="stdlib_experts.flux:load", domain=image_domain(), family="flux",
    ),
    ExpertSpec(
        "flux_fill", "generative", "FLUX.1 Fill [dev]: inpaints the masked part of an image",
        _with(
            (
                Param("prompt", "Text", "", "what the filled region shows"),
                Param("image", "Image?", None, "the image to fill; none: a blank canvas"),
                Param("mask", "Mask|Region?", None, "where to paint; none: everywhere"),
            ),
            "black-forest-labs/FLUX.1-Fill-dev", 30.0,
        ),
        loader="stdlib_experts.flux:load", domain=image_domain("image", "mask"), family="flux",
    ),
    ExpertSpec(
        "flux_depth", "generative", "FLUX.1 Depth [dev]: text-to-image following a depth map",
        _with(
            (
                Param("prompt", "Text", "", "what the image shows"),
                Param("depth", "Depth?", None, "the control depth map; none: a constant depth"),
            ),
            "black-forest-labs/FLUX.1-Depth-dev", 10.0,
        ),
        loader="stdlib_experts.flux:load", domain=image_domain("depth"), family="flux",
    ),
]
