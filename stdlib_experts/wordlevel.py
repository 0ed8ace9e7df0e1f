"""Word-level tokenizers for closed vocabularies (the mini experts, and tiny test models).

A ``PreTrainedTokenizerFast`` over a fixed word list, saved and loaded like any
transformers tokenizer (``AutoTokenizer.from_pretrained``), so that models with
such a vocabulary go through the same loading code as real FLUX or VLM weights.
"""
from __future__ import annotations

SPECIAL = ("<pad>", "<unk>", "<s>", "</s>")


def make_tokenizer(words, model_max_length: int = 16):
    """A lower-casing, whitespace/punctuation-splitting tokenizer that ends every text with ``</s>``."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(list(SPECIAL) + sorted(set(words) - set(SPECIAL)))}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("removed")])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=model_max_length, pad_token="<pad>", unk_token="<unk>",
        bos_token="<s>", eos_token="</s>",
    )


def unknown_words(tokenizer, text: str) -> list[str]:
    """Words of ``text`` the tokenizer maps to ``<unk>`` (outside the vocabulary)."""
    words = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text.lower())
    vocab = tokenizer.get_vocab()
    return [w for w, _ in words if w not in vocab]
