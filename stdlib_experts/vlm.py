"""Discriminative experts on decoded images: VQAScore, CLIP and SigLIP similarity.

Each is a reward: ``score(x0) -> [B]`` for images ``x0`` of shape ``[B, 3, H, W]``
in [-1, 1], entering the product as ``exp(w * r)``.

* ``vqascore``: ``log P("Yes" | image, question)`` of a transformers VLM
  (``AutoModelForImageTextToText`` + ``AutoProcessor``: Qwen2.5-VL, LLaVA,
  PaliGemma, …), the next-token distribution after the chat-formatted prompt
  (as in VQAScore, Lin et al. 2024). In (-inf, 0]; ``exp(r)`` is the probability.
* ``clip_score``: ``100 · cos(image, caption)`` of a CLIPModel (the CLIPScore /
  T2I-evaluation convention; equal to the OpenAI CLIP logit, whose learned
  scale is 100). In [-100, 100]; ``exp(r)`` is CLIP's unnormalised p(caption | image).
* ``siglip_score``: ``log σ(cos · exp(logit_scale) + logit_bias)`` of a
  SiglipModel, the log-probability that image and caption match. In (-inf, 0].

Models resolve offline through :mod:`poelang.stdlib.hub` and load once per
process; the caption embedding of CLIP/SigLIP is computed once at load. Images
go to the processor as float tensors in [0, 1] (``do_rescale=False``); it
resizes and normalises them. Scoring is batched over particles, in chunks of
``max_batch`` images when that attribute is set.
"""
from __future__ import annotations

from typing import Any

from poelang.experts.spec import ExpertSpec, Param
from poelang.experts.unavailable import ExpertUnavailable
from .hub import model_weights

VQA_QUESTION = 'Does this figure show "{caption}"? Please answer yes or no.'
CLIP_SCALE = 100.0  # clip_score = CLIP_SCALE · cosine


# --- shared plumbing -------------------------------------------------------------


def _device(args: dict, context) -> str:
    return str(args.get("device") or getattr(context, "device", None) or "cpu")


def _from_pretrained(auto_class: str, *, dtype=None, trust_remote_code: bool = False):
    """A ``from_pretrained`` for :func:`hub.shared`: a transformers Auto class, safetensors only.

    Auto classes are not ``nn.Module`` s, so the hub would not give them a dtype;
    this wrapper passes ``dtype`` itself (the hub's cache key has it). Its
    ``__qualname__`` names the class (and remote code), so experts on the same
    directory share one instance.
    """

    def load(path: str, **kwargs: Any):
        import transformers

        from poelang.stdlib import hub

        cls = getattr(transformers, auto_class)
        if dtype is not None:
            kwargs.update(dtype=dtype, use_safetensors=True)
        kwargs["trust_remote_code"] = trust_remote_code  # always explicit: None would prompt on a terminal
        try:
            return cls.from_pretrained(path, **kwargs)
        except ValueError as e:
            refused = hub.remote_code_refused(e, path)
            if refused is not None:
                raise refused from None
            raise

    load.__qualname__ = f"{auto_class}.from_pretrained" + (" [trust_remote_code]" if trust_remote_code else "")
    return load


def _processor(path, model: str, device: str, trust_remote_code: bool = False):
    import importlib.util

    from poelang.stdlib import hub

    try:
        return hub.shared(path, None, None, device, _from_pretrained("AutoProcessor", trust_remote_code=trust_remote_code))
    except ExpertUnavailable:
        raise
    except Exception as e:  # no processor files, or a backend it needs is missing
        missing = [m for m in ("torchvision", "sentencepiece") if importlib.util.find_spec(m) is None]
        hint = (f" (some processors need packages not installed here: pip install {' '.join(missing)}; "
                "Qwen2-VL and Qwen2.5-VL need torchvision, SigLIP's tokenizer sentencepiece)") if missing else ""
        raise ExpertUnavailable(f"cannot load the processor of '{model}': {type(e).__name__}: {e}{hint}") from None


def _unit_images(x0) -> list:
    """``[B, 3, H, W]`` in [-1, 1] → B float32 CPU tensors ``[3, H, W]`` in [0, 1] for a processor."""
    if x0.dim() != 4 or x0.shape[1] != 3:
        raise ValueError(f"expected images [B, 3, H, W], got shape {tuple(x0.shape)}")
    x = ((x0.detach().float() + 1.0) / 2.0).clamp(0.0, 1.0).cpu()
    return list(x.unbind(0))


def _pooled(output):
    """``get_*_features`` return a tensor (transformers 4) or an output whose ``pooler_output`` it is (5)."""
    import torch

    return output if isinstance(output, torch.Tensor) else output.pooler_output


class _ImageReward:
    """Chunking, dtype/device handling and the never-NaN guarantee, shared by the three scorers."""

    name: str
    max_batch: int | None = None

    def score(self, x0):
        import torch

        with torch.no_grad():
            n = x0.shape[0]
            step = int(self.max_batch) if self.max_batch else max(n, 1)
            parts = [self._score(x0[i:i + step]) for i in range(0, n, step)]
            r = torch.cat(parts) if parts else x0.new_zeros(0)
            r = r.float()
            r = torch.where(torch.isnan(r), torch.full_like(r, float("-inf")), r)  # never NaN
            return r.to(x0.device)

    def _score(self, x0):  # [b, 3, H, W] → [b]
        raise NotImplementedError

    def _pixel_values(self, images) -> "Any":
        batch = self.processor.image_processor(images=_unit_images(images), return_tensors="pt", do_rescale=False)
        return batch["pixel_values"].to(self.device, self.dtype)


# --- VQAScore ----------------------------------------------------------------------


def yes_token_id(tokenizer) -> int:
    """The vocabulary id whose probability VQAScore reads.

    ``tokenizer.encode("Yes", add_special_tokens=False)`` when that is a single
    token: the word-initial piece a model emits as its answer's first token,
    "Yes" for byte-level BPE (Qwen, Llama 3) and "▁Yes" for SentencePiece
    vocabularies (Llama 2 / LLaVA-1.5, Gemma / PaliGemma), whose encoding adds
    the word-start marker. Otherwise the first of "Yes", "▁Yes", "ĠYes" in
    the vocabulary.
    """
    ids = tokenizer.encode("Yes", add_special_tokens=False)
    if len(ids) == 1:
        return int(ids[0])
    vocab = tokenizer.get_vocab()
    for token in ("Yes", "▁Yes", "ĠYes"):
        if token in vocab:
            return int(vocab[token])
    raise ExpertUnavailable(f"'Yes' is not a single token of this tokenizer (it encodes as {ids}); "
                            "vqascore needs a VLM whose vocabulary has it")


def chat_prompt(processor, question: str) -> str:
    """The question after one image, as a user turn of the processor's chat template, ready for the answer.

    Without a chat template (PaliGemma) the question itself: such processors put the image tokens in.
    """
    if getattr(processor, "chat_template", None):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return question


class VQAScore(_ImageReward):
    """log P("Yes") of the next token after ``prompt`` with each image, one batched forward per chunk."""

    def __init__(self, name: str, model, processor, prompt: str, yes_id: int, device: str, dtype,
                 max_batch: int | None = None):
        self.name, self.model, self.processor = name, model, processor
        self.prompt, self.yes_id = prompt, int(yes_id)
        self.device, self.dtype, self.max_batch = device, dtype, max_batch
        import inspect

        self._keep_last = "logits_to_keep" in inspect.signature(model.forward).parameters

    def inputs(self, x0) -> dict:
        """The processor's batch for these images (left-padded), on the model's device and dtype."""
        import torch

        images = _unit_images(x0)
        batch = self.processor(text=[self.prompt] * len(images), images=images, return_tensors="pt",
                               padding=True, do_rescale=False)
        return {k: (v.to(self.device, self.dtype) if torch.is_floating_point(v) else v.to(self.device))
                if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _score(self, x0):
        import torch

        inputs = self.inputs(x0)
        mask = inputs.get("attention_mask")
        left_padded = mask is None or bool(mask[:, -1].all())
        if left_padded and self._keep_last:  # only the last position's logits: [b, 1, V]
            logits = self.model(**inputs, logits_to_keep=1).logits[:, -1]
        else:
            logits = self.model(**inputs).logits
            logits = logits[torch.arange(logits.shape[0], device=logits.device), last_positions(mask)]
        return torch.log_softmax(logits.float(), dim=-1)[:, self.yes_id]


def last_positions(attention_mask):
    """Index of each row's last real token, for left or right padding."""
    import torch

    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask.bool() * (positions + 1)).argmax(dim=1)


def load_vqascore(args: dict, context) -> VQAScore:
    from poelang.stdlib import hub

    model_id = args["model"]
    path = hub.resolve_model(model_id, getattr(context, "base_dir", None))
    device = _device(args, context)
    dtype = hub.torch_dtype(args.get("dtype", "bfloat16"), device)
    trust = bool(getattr(context, "trust_remote_code", False))  # the runner's decision, never the program's
    processor = _processor(path, model_id, device, trust)
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:
        raise ExpertUnavailable(f"'{model_id}' has no tokenizer in its processor; vqascore needs a VLM")
    tokenizer.padding_side = "left"  # the next token of every row is then at the last position
    model = hub.shared(path, None, dtype, device,
                       _from_pretrained("AutoModelForImageTextToText", dtype=dtype, trust_remote_code=trust))
    question = str(args.get("question") or VQA_QUESTION).replace("{caption}", str(args["caption"]))
    return VQAScore(getattr(context, "name", "vqascore"), model, processor, chat_prompt(processor, question),
                    yes_token_id(tokenizer), device, dtype)


# --- CLIP and SigLIP -------------------------------------------------------------


class _Contrastive(_ImageReward):
    """Image embedding against a caption embedding computed once, at construction."""

    def __init__(self, name: str, model, processor, caption: str, device: str, dtype, max_batch: int | None = None):
        import torch

        self.name, self.model, self.processor = name, model, processor
        self.device, self.dtype, self.max_batch = device, dtype, max_batch
        with torch.no_grad():
            text = self._tokenize(caption)
            embedding = _pooled(model.get_text_features(**text)).float()
        self.text_embedding = torch.nn.functional.normalize(embedding, dim=-1)[0]  # [D], unit norm

    def _tokenize(self, caption: str) -> dict:
        raise NotImplementedError

    def cosine(self, x0):
        import torch

        image = _pooled(self.model.get_image_features(pixel_values=self._pixel_values(x0))).float()
        return torch.nn.functional.normalize(image, dim=-1) @ self.text_embedding


def _max_length(tokenizer, model) -> int:
    limit = getattr(tokenizer, "model_max_length", None) or 10**9
    positions = getattr(model.config.text_config, "max_position_embeddings", None) or limit
    return int(min(limit, positions))


class ClipScore(_Contrastive):
    """``CLIP_SCALE · cos(image, caption)``."""

    def _tokenize(self, caption):
        t = self.processor.tokenizer
        batch = t([caption], padding=True, truncation=True, max_length=_max_length(t, self.model), return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def _score(self, x0):
        return CLIP_SCALE * self.cosine(x0)


class SiglipScore(_Contrastive):
    """``log σ(cos · exp(logit_scale) + logit_bias)``: the log-probability that image and caption match."""

    def _tokenize(self, caption):
        t = self.processor.tokenizer  # SigLIP was trained on captions padded to the full length (64)
        batch = t([caption], padding="max_length", truncation=True, max_length=_max_length(t, self.model),
                  return_tensors="pt")
        return {"input_ids": batch["input_ids"].to(self.device)}

    def _score(self, x0):
        import torch

        scale = self.model.logit_scale.float().exp()
        bias = self.model.logit_bias.float()
        return torch.nn.functional.logsigmoid(self.cosine(x0) * scale + bias)


def _load_contrastive(args: dict, context, model_class: str, scorer: type) -> _Contrastive:
    import transformers

    from poelang.stdlib import hub

    model_id = args["model"]
    path = hub.resolve_model(model_id, getattr(context, "base_dir", None))
    device = _device(args, context)
    dtype = hub.torch_dtype(args.get("dtype", "bfloat16"), device)
    processor = _processor(path, model_id, device)
    model = hub.shared(path, None, dtype, device, getattr(transformers, model_class).from_pretrained)
    return scorer(getattr(context, "name", scorer.__name__), model, processor, str(args["caption"]), device, dtype)


def load_clip_score(args: dict, context) -> ClipScore:
    return _load_contrastive(args, context, "CLIPModel", ClipScore)


def load_siglip_score(args: dict, context) -> SiglipScore:
    return _load_contrastive(args, context, "SiglipModel", SiglipScore)


# --- signatures --------------------------------------------------------------------


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
        loader="poelang.stdlib.vlm:load_vqascore", scores=("image",), family="vlm",
        weights=model_weights(),
    ),
    ExpertSpec(
        "clip_score", "reward", "CLIP image-text cosine similarity, ×100",
        (Param("caption", "Text", doc="what the image should show"),) + _device_params("openai/clip-vit-large-patch14"),
        loader="poelang.stdlib.vlm:load_clip_score", scores=("image",), family="vlm",
        weights=model_weights(),
    ),
    ExpertSpec(
        "siglip_score", "reward", "SigLIP image-text log-sigmoid score",
        (Param("caption", "Text", doc="what the image should show"),) + _device_params("google/siglip-so400m-patch14-384"),
        loader="poelang.stdlib.vlm:load_siglip_score", scores=("image",), family="vlm",
        weights=model_weights(),
    ),
]
