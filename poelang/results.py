"""What :meth:`poelang.Program.run` returns, and the per-level callback it takes.

    >>> result = program.run(seed=1)                       # doctest: +SKIP
    >>> result["x"].samples                                # the engine's Result: tensors
    >>> result.images("x")[0].save("x.png")               # PIL images, like diffusers' output_type="pil"
    >>> result.videos("y")[0][0]                           # a video as a list of PIL frames

A callback ``callback(sample, info)`` is called after every level of every
sample with the sample's name and a :class:`~poelang.infer.LevelInfo`;
returning False, or raising :class:`~poelang.infer.StopSampling`, ends that
sample's run at this level (``result[sample].stopped_at``). See
docs/python-api.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Protocol

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from poelang.infer.result import LevelInfo, Result

__all__ = ["LevelCallback", "RunResult"]


class LevelCallback(Protocol):
    """``callback(sample, info) -> bool | None``: False (or raising StopSampling) stops the sample's run."""

    def __call__(self, sample: str, info: "LevelInfo", /) -> Optional[bool]: ...


@dataclass
class RunResult:
    """The samples of a run, by name, and the files it wrote."""

    samples: "dict[str, Result]" = field(default_factory=dict)  # sample name → the engine's Result
    written: list[str] = field(default_factory=list)
    seconds: float = 0.0
    sample_seconds: dict[str, float] = field(default_factory=dict)  # sample name → its sampler's wall time

    def __getitem__(self, name: str) -> "Result":
        """The engine's :class:`~poelang.infer.Result` of sample `name` (tensors, particles, trace)."""
        try:
            return self.samples[name]
        except KeyError:
            raise KeyError(f"no sample '{name}'; this run has {', '.join(self.samples) or 'none'}") from None

    def tensor(self, name: str) -> "torch.Tensor":
        """The chosen output of sample `name`: ``[n, *shape]`` (images in [-1, 1], as the experts see them)."""
        return self[name].samples

    def images(self, name: str) -> "list[Image]":
        """The chosen outputs of an image sample as PIL images (RGB, 8 bits)."""
        from poelang.preview import to_pil

        samples = self.tensor(name)
        if samples.dim() != 4:
            raise ValueError(f"sample '{name}' is not an image (its outputs have shape {tuple(samples.shape)})")
        return [to_pil(image) for image in samples]

    def videos(self, name: str) -> "list[list[Image]]":
        """The chosen outputs of a video sample, each a list of PIL frames."""
        from poelang.preview import to_frames

        samples = self.tensor(name)
        if samples.dim() != 5:
            raise ValueError(f"sample '{name}' is not a video (its outputs have shape {tuple(samples.shape)})")
        return [to_frames(video) for video in samples]
