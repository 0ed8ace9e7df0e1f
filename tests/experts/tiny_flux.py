"""Tiny FLUX.1 models built from configs and saved like real ones (no Hub).

``build(folder, kind)`` writes a diffusers directory (``model_index.json``,
``transformer/``, ``vae/``, ``text_encoder/``, ``text_encoder_2/``,
``tokenizer/``, ``tokenizer_2/``, ``scheduler/``) for kind ``t2i``, ``fill`` or
``depth``, the layouts of FLUX.1 [dev], Fill [dev] and Depth [dev]. The VAE
and text encoders are built from the same seed for every kind, so their files
are byte-identical across kinds, as they are in the real repositories.
"""
from __future__ import annotations

from pathlib import Path

import torch

WORDS = "a an the red green blue cat cats dog two chair armchair in on sunny living room photo of".split()
LATENT_CHANNELS = 2  # the VAE below: two down blocks → scale 2, 2 latent channels → 8 per packed token


def _text_encoders():
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from poelang.stdlib.wordlevel import make_tokenizer

    torch.manual_seed(0)
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(WORDS) + 8, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=16, projection_dim=32, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    ))
    torch.manual_seed(1)
    t5 = T5EncoderModel(T5Config(
        vocab_size=len(WORDS) + 8, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=3, decoder_start_token_id=0,
    ))
    return clip, make_tokenizer(WORDS, 16), t5, make_tokenizer(WORDS, 24)


def _vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(2)
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(4, 8), layers_per_block=1,
        latent_channels=LATENT_CHANNELS, norm_num_groups=1, sample_size=32, scaling_factor=1.5035,
        shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False,
    )


def _transformer(kind: str):
    from diffusers import FluxTransformer2DModel

    token = 4 * LATENT_CHANNELS
    in_channels = {"t2i": token, "fill": token + token + 4 * 2 * 2, "depth": 2 * token}[kind]
    torch.manual_seed({"t2i": 3, "fill": 4, "depth": 5}[kind])
    return FluxTransformer2DModel(
        patch_size=1, in_channels=in_channels, out_channels=token, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=True, axes_dims_rope=(4, 4, 8),
    )


def pipeline_class(kind: str):
    from diffusers import FluxControlPipeline, FluxFillPipeline, FluxPipeline

    return {"t2i": FluxPipeline, "fill": FluxFillPipeline, "depth": FluxControlPipeline}[kind]


def build(folder: Path, kind: str = "t2i") -> Path:
    """Write a tiny FLUX model of ``kind`` to ``folder`` and return it."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    clip, tokenizer, t5, tokenizer_2 = _text_encoders()
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True, base_image_seq_len=16, max_image_seq_len=256, base_shift=0.5, max_shift=1.15,
    )
    pipe = pipeline_class(kind)(
        scheduler=scheduler, vae=_vae(), text_encoder=clip, tokenizer=tokenizer, text_encoder_2=t5,
        tokenizer_2=tokenizer_2, transformer=_transformer(kind),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)
