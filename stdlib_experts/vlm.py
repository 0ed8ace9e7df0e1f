"""Discriminative experts on decoded images: VQAScore, CLIP and SigLIP similarity.

Signatures only are read by the checker; the transformers-based scorers are the
subject of issue #5 and not in this build yet.
"""
from __future__ import annotations

from poelang.experts.spec import ExpertSpec, Param
from poelang.experts.unavailable import ExpertUnavailable

VQA_QUESTION = 'Does this figure show "{caption}"? Please answer yes or no.'


def load(args: dict, context) -> object:
    raise ExpertUnavailable(
        "the VLM/CLIP/SigLIP scorers need their transformers adapters, which are not in this build yet (issue #5)"
    )


def _device_params(model: str) -> tuple[Param, ...]:
    return (
        Param("model", "Text", model, "local transformers directory or Hugging Face id"),
        Param("dtype", "Text", "bfloat16", "weights' dtype on GPU (float32 on CPU)"),
        Param("device", "Text?", None, "device for this expert; default: the run's"),
    )


EXPERTS = [
    ExpertSpec(
        "vqascore", "reward", 'log P("yes") of a VLM asked whether the image shows the caption',
        (Param("caption", "Text", doc="what the image should show"),
         Param("question", "Text", VQA_QUESTION, "the question; {caption} is replaced"))
        + _device_params("Qwen/Qwen2.5-VL-7B-Instruct"),
        loader="stdlib_experts.vlm:load", scores=("image",), family="vlm",
    ),
    ExpertSpec(
        "clip_score", "reward", "CLIP image-text cosine similarity",
        (Param("caption", "Text", doc="what the image should show"),) + _device_params("openai/clip-vit-large-patch14"),
        loader="stdlib_experts.vlm:load", scores=("image",), family="vlm",
    ),
    ExpertSpec(
        "siglip_score", "reward", "SigLIP image-text log-sigmoid score",
        (Param("caption", "Text", doc="what the image should show"),) + _device_params("google/siglip-so400m-patch14-384"),
        loader="stdlib_experts.vlm:load", scores=("image",), family="vlm",
    ),
]
