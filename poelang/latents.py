"""The latent space of a sample: the codec its experts share, rewards that score decoded pixels, decoding results."""
from __future__ import annotations

from typing import Any


def shared_codec(shape: tuple[int, ...], experts: list[tuple[str, Any]]):
    """The latent space shared by a sample's generative experts; they must agree (ValueError if not).

    An expert with ``adopts_codec`` (a simulator's Gaussian) has no latent
    space of its own: it is left out of the comparison and then told the
    product's codec (None: pixels) with ``use_codec`` before sampling. A
    product of such experts alone samples in pixels.
    """
    fixed = [(name, getattr(e, "codec", None)) for name, e in experts if not getattr(e, "adopts_codec", False)]
    first_name, first = fixed[0] if fixed else (None, None)
    for name, c in fixed[1:]:
        if c != first:
            what = lambda c: "pixels" if c is None else f"the latent space {c.key[0]}"  # noqa: E731
            raise ValueError(f"'{first_name}' samples in {what(first)} but '{name}' in {what(c)}: "
                             "experts of one product must share their latent space")
    if first is not None:
        first.latent_shape(shape)  # ValueError when the canvas does not fit the codec
    for name, e in experts:
        if getattr(e, "adopts_codec", False):
            try:
                e.use_codec(first)
            except ValueError as err:
                raise ValueError(f"'{name}' cannot follow the product into its latent space: {err}") from None
    return first


class _Decoded:
    """A reward seen through a codec: it scores the decoded pixels of the latent x0_hat."""

    def __init__(self, reward, codec):
        self.reward, self.codec = reward, codec
        self.name = getattr(reward, "name", "reward")

    def score(self, x0):
        return self.reward.score(_decode(self.codec, x0))


def _decode(codec, latents, chunk: int = 4):
    """Decode in chunks, so a 1024-px VAE decode of many particles fits in memory."""
    import torch

    return torch.cat([codec.decode(latents[i:i + chunk]) for i in range(0, latents.shape[0], chunk)])


def _decode_result(result, codec):
    """The engine's result with its samples and particles in pixels (the trace stays latent until written)."""
    from dataclasses import replace

    return replace(result, samples=_decode(codec, result.samples), particles=_decode(codec, result.particles))
