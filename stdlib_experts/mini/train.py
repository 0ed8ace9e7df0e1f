"""Train the mini experts on the mini world, on a CPU, and save them as FLUX-layout directories.

    python -m poelang.stdlib.mini.train data   --out build/mini_data            # render the training set
    python -m poelang.stdlib.mini.train flux   --data build/mini_data --minutes 60
    python -m poelang.stdlib.mini.train flux   --resume --decay --lr 5e-4 --minutes 40
    python -m poelang.stdlib.mini.train flux   --resume --decay --lr 5e-4 --minutes 15 --drop-captions 0.1
    python -m poelang.stdlib.mini.train fill   --data build/mini_data --minutes 8
    python -m poelang.stdlib.mini.train depth  --data build/mini_data --minutes 8
    python -m poelang.stdlib.mini.train video  --data build/mini_clips --minutes 12

``mini_flux`` is a FluxTransformer2DModel with CLIP and T5 text encoders, all
small, trained from scratch by flow matching (x_sigma = (1 - sigma) x0 +
sigma eps, target eps - x0, FLUX's convention) in pixel space
(:class:`~poelang.stdlib.codecs.PixelCodec`). ``mini_flux_fill`` and
``mini_flux_depth`` start from it, as FLUX.1 Fill and Depth start from
FLUX.1 [dev]: the input projection grows zero-initialised columns for the
condition tokens, and so does ``mini_video``, a frame-wise model whose
condition is the two previous frames (two frames show a velocity, one does
not); it is sampled frame by frame on the autoregressive path, and the text encoders stay frozen, so all three ship
byte-identical encoders that a program loads once. Everything is seeded; the
saved weights are float16 (the loaders upcast on a CPU). Each saved
``training.json`` lists the runs behind its weights (the shipped mini_flux:
the three flux commands above, 12,232 steps); the last run also trains on the
empty caption, which mini_flux's classifier-free guidance needs.
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from poelang.stdlib.codecs import PixelCodec, pack, pack_mask

WEIGHTS = Path(__file__).parent / "weights"
CODEC = PixelCodec(2)
TEXT_LENGTH = 16
TOKEN = 4 * CODEC.channels  # channels of one packed token (48)


# --- data -----------------------------------------------------------------------------------------


def make_dataset(out: Path, images: int, seed: int, size: int = 32) -> None:
    """Render ``images`` scenes with training-split captions to ``out/images.npz`` (the world's own writer)."""
    from poelang.stdlib.mini import world

    Path(out).mkdir(parents=True, exist_ok=True)
    world.write_images(str(Path(out) / "images.npz"), images, size, seed, split="train")


def load_dataset(folder: Path, name: str = "images") -> dict:
    """``folder/images.npz`` (renders) or ``folder/clips.npz`` (simulated clips) as a dict of arrays."""
    data = np.load(Path(folder) / f"{name}.npz", allow_pickle=False)
    return {k: data[k] for k in data.files}


def depth_image(depth):
    """Depth in meters → the control image the depth experts read: what ``render(...).depth`` gives a program.

    Inverse depth scaled to [0, 1] per image (1 at its nearest point, 0 at the sky), like the relative depth maps
    FLUX.1 Depth is conditioned on; ``depth`` is one map ``[H, W]`` or a stack ``[N, H, W]``.
    """
    from poelang.stdlib.mini.world import FAR_DEPTH
    from poelang.stdlib.scene import Z_FAR, inverse_depth

    depth = np.asarray(depth, np.float32)
    depth = np.where(depth >= FAR_DEPTH * 0.999, Z_FAR, depth)  # the world's sky is nearer than the engine's
    return inverse_depth(depth) if depth.ndim == 2 else np.stack([inverse_depth(d) for d in depth])


# --- models ---------------------------------------------------------------------------------------


def text_models(seed: int):
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from poelang.stdlib.mini.world import VOCABULARY
    from poelang.stdlib.wordlevel import make_tokenizer

    tokenizer = make_tokenizer(VOCABULARY, TEXT_LENGTH)
    vocab = len(tokenizer.get_vocab())
    torch.manual_seed(seed)
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=TEXT_LENGTH, projection_dim=64, pad_token_id=0, bos_token_id=2, eos_token_id=3))
    t5 = T5EncoderModel(T5Config(
        vocab_size=vocab, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
        pad_token_id=0, eos_token_id=3, decoder_start_token_id=0, dropout_rate=0.0))
    return clip, t5, tokenizer


def transformer(in_channels: int, seed: int):
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    return FluxTransformer2DModel(
        patch_size=1, in_channels=in_channels, out_channels=TOKEN, num_layers=2, num_single_layers=3,
        attention_head_dim=32, num_attention_heads=3, joint_attention_dim=64, pooled_projection_dim=64,
        guidance_embeds=False, axes_dims_rope=(8, 12, 12))


def grow_inputs(model, in_channels: int):
    """A copy of ``model`` taking ``in_channels`` inputs; the new columns start at zero (the condition is ignored at first)."""
    from diffusers import FluxTransformer2DModel

    config = dict(model.config)
    config["in_channels"] = in_channels
    grown = FluxTransformer2DModel.from_config(config)
    state = model.state_dict()
    w = state["x_embedder.weight"]
    state["x_embedder.weight"] = torch.cat([w, torch.zeros(w.shape[0], in_channels - w.shape[1])], dim=1)
    grown.load_state_dict(state)
    return grown


def encode_text(clip, t5, tokenizer, captions: list[str]):
    ids = tokenizer(captions, padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt").input_ids
    return t5(ids)[0], clip(ids).pooler_output


# --- conditions ---------------------------------------------------------------------------------


def fill_condition(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Fill's input, as poelang.stdlib.flux.load_flux_fill builds it: packed masked image, packed binary mask."""
    masked = images * (1 - masks)
    return torch.cat([pack(CODEC.encode(masked)), pack_mask(masks, CODEC.scale)], dim=2)


def video_condition(previous: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """mini_video's input: the packed previous frame, then the one before it (the first frame twice at the start)."""
    return torch.cat([pack(CODEC.encode(previous)), pack(CODEC.encode(before))], dim=2)


def depth_condition(depth: torch.Tensor) -> torch.Tensor:
    control = (depth * 2 - 1).unsqueeze(1).expand(-1, 3, -1, -1)
    return pack(CODEC.encode(control))


def fill_masks(index_map: np.ndarray, rng: np.random.Generator, objects: list) -> tuple[np.ndarray, list[str]]:
    """Half the time one object's mask, dilated (captioned by its noun phrase), else a random box (the full caption)."""
    from scipy.ndimage import binary_dilation

    from poelang.stdlib.mini.world import noun_phrase

    n, h, w = index_map.shape
    masks = np.zeros((n, h, w), np.float32)
    captions = []
    for i in range(n):
        present = [k for k in range(1, index_map[i].max() + 1) if (index_map[i] == k).any()]
        if present and rng.random() < 0.5:
            k = present[rng.integers(len(present))]
            masks[i] = binary_dilation(index_map[i] == k, iterations=int(rng.integers(1, 4)))
            obj = objects[i][k - 1]
            captions.append(noun_phrase(1, obj["color"], obj["shape"], obj["size"] if rng.random() < 0.5 else None))
        else:
            bh, bw = rng.integers(h // 4, h, endpoint=True), rng.integers(w // 4, w, endpoint=True)
            y, x = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
            masks[i, y:y + bh, x:x + bw] = 1
            captions.append(None)
    return masks, captions


# --- training -----------------------------------------------------------------------------------


def train(kind: str, data: dict, minutes: float, seed: int, batch: int, lr: float, base: Path | None,
          log_every: int = 50, resume: bool = False, steps_before: int = 0, decay: bool = False,
          drop_captions: float = 0.0, keep_encoders: bool = False) -> dict:
    """Flow-matching training of one expert for ``minutes``; returns the EMA models.

    ``drop_captions``: the fraction of examples trained on the empty caption, so that the model also learns the
    unconditional flow that classifier-free guidance (``true_cfg``) extrapolates away from. ``keep_encoders``: a new
    mini_flux transformer on ``base``'s frozen text encoders, so that the experts grown from it stay valid.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    captions = [str(c) for c in data["captions"]]
    if kind == "video":  # clips [N, F, H, W, 3]: frame t is the target, frames t-1 and t-2 the condition
        clips = torch.from_numpy(data["rgb"]).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
        images = clips[:, 0]
    else:
        images = torch.from_numpy(data["rgb"]).permute(0, 3, 1, 2).float() / 127.5 - 1
        objects = [json.loads(s) for s in data["objects_json"]]
        depth = torch.from_numpy(depth_image(data["depth"]))
    if kind == "flux" and (resume or keep_encoders):  # the transformer only: grown experts keep the text encoders
        clip, t5, tokenizer, model = load_trained(base)
        clip.requires_grad_(False), t5.requires_grad_(False)
        if keep_encoders and not resume:
            model = transformer(TOKEN, seed)
        params = list(model.parameters())
    elif kind == "flux":
        clip, t5, tokenizer = text_models(seed)
        model = transformer(TOKEN, seed)
        params = list(model.parameters()) + list(clip.parameters()) + list(t5.parameters())
    else:
        clip, t5, tokenizer, flux = load_trained(base)
        in_channels = TOKEN + {"fill": TOKEN + 4 * CODEC.scale ** 2, "depth": TOKEN, "video": 2 * TOKEN}[kind]
        model = grow_inputs(flux, in_channels)
        clip.requires_grad_(False), t5.requires_grad_(False)
        params = list(model.parameters())
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    ids = None
    started, step, losses = time.perf_counter(), 0, []
    while time.perf_counter() - started < minutes * 60:
        idx = rng.integers(0, len(images), batch)
        text = [captions[i] for i in idx]
        condition = None
        if kind == "video":
            t = torch.from_numpy(rng.integers(1, clips.shape[1], batch))
            rows = torch.from_numpy(idx)
            x0 = CODEC.encode(clips[rows, t])
            condition = video_condition(clips[rows, t - 1], clips[rows, (t - 2).clamp(min=0)])
        else:
            x0 = CODEC.encode(images[idx])
        if kind == "fill":
            masks, object_captions = fill_masks(data["masks"][idx], rng, [objects[i] for i in idx])
            text = [c or t for c, t in zip(object_captions, text)]
            condition = fill_condition(images[idx], torch.from_numpy(masks)[:, None])
        elif kind == "depth":
            condition = depth_condition(depth[idx])
        if drop_captions:
            text = ["" if drop else t for t, drop in zip(text, rng.random(batch) < drop_captions)]
        embeds, pooled = encode_text(clip, t5, tokenizer, text)
        sigma = torch.sigmoid(torch.randn(batch))  # logit-normal, as SD3 / FLUX train
        eps = torch.randn_like(x0)
        s = sigma.view(-1, 1, 1, 1)
        tokens = pack((1 - s) * x0 + s * eps)
        if condition is not None:
            tokens = torch.cat([tokens, condition], dim=2)
        if ids is None:
            from poelang.stdlib.codecs import image_ids

            ids = image_ids(x0.shape[-2], x0.shape[-1])
        out = model(hidden_states=tokens, timestep=sigma, pooled_projections=pooled, encoder_hidden_states=embeds,
                    txt_ids=torch.zeros(TEXT_LENGTH, 3), img_ids=ids, return_dict=False)[0]
        loss = F.mse_loss(out, pack(eps - x0))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        # a short warm-up, then constant, or with --decay falling linearly to zero when the time is up (a final
        # anneal sharpens a model that has plateaued at a constant rate)
        left = 1 - (time.perf_counter() - started) / (minutes * 60) if decay else 1.0
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 200) * max(left, 0.0)
        optimizer.step()
        with torch.no_grad():
            ema_decay = min(0.999, (1 + step) / (10 + step))
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, 1 - ema_decay)
        losses.append(float(loss.detach()))
        step += 1
        if step % log_every == 0:
            elapsed = time.perf_counter() - started
            print(f"{kind} step {step} loss {np.mean(losses[-log_every:]):.4f} ({elapsed / step:.2f} s/step)", flush=True)
    return {"transformer": ema, "clip": clip, "t5": t5, "tokenizer": tokenizer, "steps": steps_before + step,
            "loss": float(np.mean(losses[-200:]))}


def save(models: dict, out: Path, run: dict, history: list[dict]) -> None:
    """A FLUX-layout directory: transformer/, text_encoder(_2)/, tokenizer(_2)/, scheduler/, codec.json.

    training.json lists every run that led to these weights (a resumed model keeps its base's runs), so the
    weights can be reproduced command by command.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    models["transformer"].to(torch.float16).save_pretrained(tmp / "transformer", safe_serialization=True)
    models["transformer"].float()
    for sub, m in (("text_encoder", models["clip"]), ("text_encoder_2", models["t5"])):
        m.to(torch.float16).save_pretrained(tmp / sub, safe_serialization=True)
        m.float()
    models["tokenizer"].save_pretrained(tmp / "tokenizer")
    models["tokenizer"].save_pretrained(tmp / "tokenizer_2")
    FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False).save_pretrained(tmp / "scheduler")
    (tmp / "codec.json").write_text(json.dumps({"pixels": CODEC.factor}) + "\n")
    runs = [*history, {**run, "steps": models["steps"] - sum(r["steps"] for r in history),
                       "final_loss": round(models["loss"], 5)}]
    (tmp / "training.json").write_text(json.dumps(
        {"kind": run["kind"], "minutes": sum(r["minutes"] for r in runs), "steps": models["steps"],
         "final_loss": runs[-1]["final_loss"], "runs": runs}, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def runs_of(folder: Path) -> list[dict]:
    """The runs recorded in a saved expert's training.json (older files recorded one run without a list)."""
    record = json.loads((Path(folder) / "training.json").read_text())
    if "runs" in record:
        return record["runs"]
    return [{k: record[k] for k in ("kind", "seed", "minutes", "steps", "final_loss") if k in record}]


def load_trained(folder: Path):
    from diffusers import FluxTransformer2DModel
    from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

    return (CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32),
            T5EncoderModel.from_pretrained(folder / "text_encoder_2", torch_dtype=torch.float32),
            AutoTokenizer.from_pretrained(folder / "tokenizer"),
            FluxTransformer2DModel.from_pretrained(folder / "transformer", torch_dtype=torch.float32))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m poelang.stdlib.mini.train")
    parser.add_argument("what", choices=["data", "flux", "fill", "depth", "video"])
    parser.add_argument("--data", type=Path, default=Path("build/mini_data"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--base", type=Path, default=WEIGHTS / "mini_flux",
                        help="the mini_flux that --resume continues and that fill/depth/video grow from")
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue training the --base mini_flux")
    parser.add_argument("--decay", action="store_true", help="let the learning rate fall linearly to zero")
    parser.add_argument("--keep-encoders", action="store_true",
                        help="flux: a new transformer on the --base model's frozen text encoders")
    parser.add_argument("--drop-captions", type=float, default=0.0,
                        help="fraction of examples trained on the empty caption (for classifier-free guidance)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "data":
        make_dataset(args.out or args.data, args.images, args.seed)
        return
    name = {"flux": "mini_flux", "fill": "mini_flux_fill", "depth": "mini_flux_depth", "video": "mini_video"}[args.what]
    out = args.out or WEIGHTS / name
    history = runs_of(args.base) if args.resume else []
    steps_before = sum(r["steps"] for r in history)
    data = load_dataset(args.data, "clips" if args.what == "video" else "images")
    models = train(args.what, data, args.minutes, args.seed + steps_before, args.batch, args.lr, base=args.base,
                   resume=args.resume, steps_before=steps_before, decay=args.decay, drop_captions=args.drop_captions,
                   keep_encoders=args.keep_encoders)
    run = {"kind": args.what, "seed": args.seed, "minutes": args.minutes, "lr": args.lr, "batch": args.batch,
           "decay": args.decay, "drop_captions": args.drop_captions, "resumed": args.resume,
           "keep_encoders": args.keep_encoders}
    save(models, out, run, history)
    print(f"saved {out} ({models['steps']} steps, loss {models['loss']:.4f})")


if __name__ == "__main__":
    main()
