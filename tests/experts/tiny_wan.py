"""Tiny Wan2.1 models built from configs and saved like real ones (no Hub).

``build(folder, kind)`` writes a diffusers directory (``model_index.json``,
``transformer/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
``scheduler/``; I2V also ``image_encoder/`` and ``image_processor/``) for kind
``t2v``, ``i2v`` or ``vace``, the layouts of Wan2.1 T2V, I2V and VACE. The
transformer, VAE and CLIP configs are those of diffusers' own WanPipeline,
WanImageToVideoPipeline and WanVACEPipeline tests, except that I2V's
transformer reads the CLIP tokens through added K/V projections as the real
Wan2.1 I2V does (``added_kv_proj_dim``, which makes it expect 512 text tokens)
and CLIP uses 4-px patches. The text encoder is a tiny UMT5 over a word-level
vocabulary (the tests' ``tiny-random-t5`` is on the Hub). The VAE and text
encoder are built from the same seeds for every kind, so their files are
byte-identical across kinds, as in the real repositories. The scheduler is
Wan's own kind, UniPC on flow sigmas, with ``flow_shift = 3``.
"""
from __future__ import annotations

from pathlib import Path

import torch

WORDS = "a an the red ball falls bounces on wooden table cat runs across room dance monkey negative blurry".split()
LATENT_CHANNELS = 16
FLOW_SHIFT = 3.0


def _text_encoder():
    from transformers import UMT5Config, UMT5EncoderModel

    from poelang.stdlib.wordlevel import make_tokenizer

    torch.manual_seed(1)
    t5 = UMT5EncoderModel(UMT5Config(
        vocab_size=len(WORDS) + 8, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=3, decoder_start_token_id=0,
    ))
    return t5, make_tokenizer(WORDS, 512)


def _vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(2)
    return AutoencoderKLWan(base_dim=3, z_dim=LATENT_CHANNELS, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def _transformer(kind: str):
    from diffusers import WanTransformer3DModel, WanVACETransformer3DModel

    common = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, out_channels=LATENT_CHANNELS,
                  text_dim=32, freq_dim=256, ffn_dim=32, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                  rope_max_seq_len=32)
    torch.manual_seed({"t2v": 3, "i2v": 4, "vace": 5}[kind])
    if kind == "t2v":
        return WanTransformer3DModel(in_channels=LATENT_CHANNELS, num_layers=2, **common)
    if kind == "i2v":  # latents + 4 mask channels + first-frame latents; CLIP tokens through added K/V, as Wan2.1 I2V
        return WanTransformer3DModel(in_channels=4 + 2 * LATENT_CHANNELS, num_layers=2, image_dim=4,
                                     added_kv_proj_dim=24, **common)
    return WanVACETransformer3DModel(in_channels=LATENT_CHANNELS, num_layers=3, vace_layers=[0, 2],
                                     vace_in_channels=2 * LATENT_CHANNELS + 64, **common)


def _image_encoder():
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(6)
    encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2,
                                               num_attention_heads=2, image_size=32, intermediate_size=16,
                                               patch_size=4))
    return encoder, CLIPImageProcessor(crop_size=32, size=32)


def scheduler():
    """Wan2.1's scheduler: UniPC on flow sigmas (what the real repositories ship)."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=FLOW_SHIFT,
                                   num_train_timesteps=1000)


def pipeline_class(kind: str):
    from diffusers import WanImageToVideoPipeline, WanPipeline, WanVACEPipeline

    return {"t2v": WanPipeline, "i2v": WanImageToVideoPipeline, "vace": WanVACEPipeline}[kind]


def build(folder: Path, kind: str = "t2v") -> Path:
    """Write a tiny Wan2.1 model of ``kind`` to ``folder`` and return it."""
    text_encoder, tokenizer = _text_encoder()
    parts = dict(tokenizer=tokenizer, text_encoder=text_encoder, vae=_vae(), scheduler=scheduler(),
                 transformer=_transformer(kind))
    if kind == "i2v":
        parts["image_encoder"], parts["image_processor"] = _image_encoder()
    pipeline_class(kind)(**parts).save_pretrained(folder, safe_serialization=True)
    return Path(folder)
