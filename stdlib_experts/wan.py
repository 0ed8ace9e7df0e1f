"""Wan2.1 video flow models (text-to-video, image-to-video, depth-controlled video).

Signatures only are read by the checker; the diffusers adapters are the
subject of issue #6 and not in this build yet.
"""
from __future__ import annotations

from poelang.experts.spec import ExpertSpec, Param, video_domain
from poelang.experts.unavailable import ExpertUnavailable


def load(args: dict, context) -> object:
    raise ExpertUnavailable("the Wan2.1 video experts need their diffusers adapters, which are not in this build yet (issue #6)")


def _common(model: str) -> tuple[Param, ...]:
    return (
        Param("frames", "Int", 81, "number of frames when no video fixes it"),
        Param("size", "Size", (480, 832), "frame (h, w) when no image or video fixes it"),
        Param("guidance", "Number", 5.0, "classifier-free guidance scale"),
        Param("model", "Text", model, "local diffusers directory or Hugging Face id"),
        Param("dtype", "Text", "bfloat16", "weights' dtype on GPU (float32 on CPU)"),
        Param("device", "Text?", None, "device for this expert; default: the run's"),
    )


EXPERTS = [
    ExpertSpec(
        "wan_t2v", "generative", "Wan2.1 text-to-video",
        (Param("prompt", "Text", doc="what the video shows"),) + _common("Wan-AI/Wan2.1-T2V-14B-Diffusers"),
        loader="stdlib_experts.wan:load", domain=video_domain(), family="wan",
    ),
    ExpertSpec(
        "wan_i2v", "generative", "Wan2.1 image-to-video from a first frame",
        (Param("prompt", "Text", doc="what the video shows"), Param("image", "Image", doc="the first frame"))
        + _common("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"),
        loader="stdlib_experts.wan:load", domain=video_domain("image"), family="wan",
    ),
    ExpertSpec(
        "wan_depth", "generative", "Wan2.1 VACE video following per-frame depth",
        (Param("prompt", "Text", doc="what the video shows"), Param("depth", "Depth", doc="per-frame depth maps"))
        + _common("Wan-AI/Wan2.1-VACE-14B-diffusers"),
        loader="stdlib_experts.wan:load", domain=video_domain("depth"), family="wan",
    ),
]
