"""Tiny, randomly initialised CLIP, SigLIP and LLaVA models written to disk in ``save_pretrained`` layout.

Everything is built from configs and local tokenizers (no Hub access), small
enough that loading and a forward pass take milliseconds on a CPU. The
scorer tests load these directories through the same loader code as real
weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

CORPUS = [
    "Does this figure show two cats? Please answer yes or no.",
    "Yes No yes no a cat and a dog on a sofa, red blue green.",
    "USER: ASSISTANT: system user assistant",
] * 4

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>\n{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %} {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def _bpe(special: list[str], *, metaspace: bool, vocab_size: int = 200, template: str | None = None):
    """A BPE `tokenizers.Tokenizer` trained on CORPUS: SentencePiece-like ("▁Yes") or byte-level ("Yes")."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>" if "<unk>" in special else None))
    if metaspace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        alphabet = sorted(set("".join(CORPUS)) | set("▁"))
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    if template is not None:
        tokens = [t for t in special if t in template]
        tok.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(t, tok.token_to_id(t)) for t in tokens])
    return tok


def build_clip(path: Path, *, projection_dim: int = 16, image_size: int = 32, seed: int = 0) -> Path:
    """CLIPModel + CLIPProcessor (CLIPTokenizer on a character vocabulary, CLIPImageProcessor)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    chars = sorted(set("".join(CORPUS).lower()) - {" "})
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32)
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=32, projection_dim=projection_dim,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=8, projection_dim=projection_dim),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(path)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return Path(path)


def build_siglip(path: Path, *, image_size: int = 32, max_length: int = 16, seed: int = 0) -> Path:
    """SiglipModel + SiglipProcessor (a SentencePiece-like fast tokenizer appending </s>, SiglipImageProcessor)."""
    from transformers import (PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessor, SiglipModel,
                              SiglipProcessor)

    special = ["<pad>", "</s>", "<unk>"]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_bpe(special, metaspace=True, template="$A </s>"),
        pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=max_length)
    image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    config = SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=max_length,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=8),
    )
    torch.manual_seed(seed)
    model = SiglipModel(config)
    with torch.no_grad():  # SigLIP's init (scale 1, bias 0) → give the logit a non-trivial scale and bias
        model.logit_scale.fill_(2.0)
        model.logit_bias.fill_(-1.5)
    model.save_pretrained(path)
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return Path(path)


def build_llava(path: Path, *, image_size: int = 32, seed: int = 0) -> Path:
    """LlavaForConditionalGeneration (tiny CLIP vision tower + tiny Llama) + LlavaProcessor with a chat template.

    The tokenizer is SentencePiece-like (Metaspace), so "Yes" encodes as "▁Yes", as for LLaVA-1.5's Llama.
    """
    from transformers import (CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor,
                              PreTrainedTokenizerFast)

    special = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_bpe(special, metaspace=True, vocab_size=160, template="<s> $A"),
        bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_special_tokens={"image_token": "<image>"},
        padding_side="left")
    patch = 8
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=LLAVA_CHAT_TEMPLATE)
    n_tokens = (image_size // patch) ** 2
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2, image_size=image_size, patch_size=patch,
                           projection_dim=32),
        text_config=dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=128, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=n_tokens,
        vision_feature_select_strategy="default", vision_feature_layer=-2,
    )
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)
