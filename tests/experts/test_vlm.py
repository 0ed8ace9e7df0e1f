"""The VLM / CLIP / SigLIP reward experts, on tiny random models built here and saved to disk.

The models go through the same loaders as real weights (``load_vqascore(args,
context)`` …): hub resolution, shared components, processors. Nothing touches
the network.
"""
from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from poelang.experts.unavailable import ExpertUnavailable  # noqa: E402
from poelang.stdlib import hub, vlm  # noqa: E402

from . import tiny_vlm  # noqa: E402

H, W = 40, 48  # not the processors' size: they resize


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "clip": tiny_vlm.build_clip(root / "clip"),
        "siglip": tiny_vlm.build_siglip(root / "siglip"),
        "llava": tiny_vlm.build_llava(root / "llava"),
    }


@pytest.fixture(autouse=True)
def fresh_hub():
    hub.clear()
    yield
    hub.clear()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a scorer test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv(hub.ALLOW_DOWNLOAD_ENV, raising=False)


def context(base_dir: Path, name: str = "r") -> SimpleNamespace:
    return SimpleNamespace(name=name, event_shape=(3, H, W), device="cpu", base_dir=base_dir)


def args(model: str, caption: str = "two cats", **extra) -> dict:
    return {"caption": caption, "model": model, "dtype": "bfloat16", "device": None, **extra}


def images(b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, H, W, generator=g) * 2 - 1


LOADERS = {
    "vqascore": (vlm.load_vqascore, "llava"),
    "clip_score": (vlm.load_clip_score, "clip"),
    "siglip_score": (vlm.load_siglip_score, "siglip"),
}


def load(expert: str, models, **extra):
    loader, model = LOADERS[expert]
    a = args(str(models[model]), **extra)
    if expert == "vqascore":
        a.setdefault("question", vlm.VQA_QUESTION)
    return loader(a, context(models[model].parent, name=expert))


# --- every scorer ---------------------------------------------------------------------


@pytest.mark.parametrize("expert", sorted(LOADERS))
def test_scores_are_finite_batched_and_match_unbatched(expert, models, no_network):
    reward = load(expert, models)
    assert reward.name == expert
    x = images(5)
    with torch.no_grad():
        batched = reward.score(x)
        single = torch.cat([reward.score(x[i:i + 1]) for i in range(len(x))])
    assert batched.shape == (5,) and batched.dtype == torch.float32
    assert torch.isfinite(batched).all()
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batched, batched[:1].expand(5)), "different images should score differently"
    reward.max_batch = 2  # chunks of 2, 2, 1
    torch.testing.assert_close(reward.score(x), batched, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("expert", sorted(LOADERS))
def test_models_load_in_eval_mode_without_grad_in_float32_on_cpu(expert, models):
    reward = load(expert, models)
    assert not reward.model.training
    assert all(not p.requires_grad for p in reward.model.parameters())
    assert next(reward.model.parameters()).dtype == torch.float32  # bfloat16 is asked for; CPU runs float32


def test_scales(models):
    x = images(3)
    clip = load("clip_score", models).score(x)
    assert (clip.abs() <= vlm.CLIP_SCALE + 1e-4).all()
    for expert in ("siglip_score", "vqascore"):
        assert (load(expert, models).score(x) <= 0).all()  # log-probabilities


# --- VQAScore ----------------------------------------------------------------------


def test_vqascore_equals_the_log_softmax_at_yes_computed_by_hand(models):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    reward = load("vqascore", models, caption="a red cat")
    x = images(3, seed=1)
    scores = reward.score(x)

    path = models["llava"]
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    yes = processor.tokenizer.convert_tokens_to_ids("▁Yes")  # SentencePiece-like vocabulary: "▁Yes"
    assert reward.yes_id == yes
    question = 'Does this figure show "a red cat"? Please answer yes or no.'
    prompt = f"USER: <image>\n{question} ASSISTANT:"  # the tiny LLaVA chat template, written out
    assert reward.prompt == prompt
    for i in range(len(x)):
        image = ((x[i] + 1) / 2).clamp(0, 1)
        inputs = processor(text=prompt, images=image, return_tensors="pt", do_rescale=False)
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1]
        expected = torch.log_softmax(logits, dim=-1)[yes]
        torch.testing.assert_close(scores[i], expected, atol=1e-5, rtol=1e-5)


def test_vqascore_last_logits_only_equals_full_logits(models):
    reward = load("vqascore", models)
    x = images(3)
    fast = reward.score(x)
    reward._keep_last = False  # full [B, T, V] logits, gathered at each row's last real token
    torch.testing.assert_close(reward.score(x), fast, atol=1e-5, rtol=1e-5)


def test_last_positions_for_left_and_right_padding():
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]])
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    assert vlm.last_positions(left).tolist() == [3, 3, 3]
    assert vlm.last_positions(right).tolist() == [1, 3, 0]


def test_vqascore_pads_left_and_uses_the_question_template(models):
    reward = load("vqascore", models, question="Is it {caption}?")
    assert reward.processor.tokenizer.padding_side == "left"
    assert reward.prompt == "USER: <image>\nIs it two cats? ASSISTANT:"
    batch = reward.inputs(images(2))
    assert batch["input_ids"].shape[0] == 2 and batch["attention_mask"][:, -1].all()


def test_yes_token_id_byte_level_and_sentencepiece():
    from tokenizers import Tokenizer, models as tm, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    def fast(pre, vocab):
        tok = Tokenizer(tm.WordLevel(vocab, unk_token="<unk>"))
        tok.pre_tokenizer = pre
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")

    byte_level = fast(pre_tokenizers.ByteLevel(add_prefix_space=False), {"<unk>": 0, "Yes": 7, "ĠYes": 8})
    sentencepiece = fast(pre_tokenizers.Metaspace(prepend_scheme="first"), {"<unk>": 0, "Yes": 3, "▁Yes": 5})
    assert vlm.yes_token_id(byte_level) == 7
    assert vlm.yes_token_id(sentencepiece) == 5


def test_trust_remote_code_is_not_a_program_argument():
    """Whether a model folder's own code may run is the runner's decision (ExpertContext.trust_remote_code)."""
    assert all(p.name != "trust_remote_code" for e in vlm.EXPERTS for p in e.params)
    assert {e.name: e.loader for e in vlm.EXPERTS} == {
        "vqascore": "poelang.stdlib.vlm:load_vqascore",
        "clip_score": "poelang.stdlib.vlm:load_clip_score",
        "siglip_score": "poelang.stdlib.vlm:load_siglip_score",
    }
    for e in vlm.EXPERTS:
        assert e.load_function() is getattr(vlm, e.loader.partition(":")[2])


# --- CLIP and SigLIP ---------------------------------------------------------------


@pytest.mark.parametrize("expert,model_class", [("clip_score", "CLIPModel"), ("siglip_score", "SiglipModel")])
def test_caption_embedding_is_computed_once(expert, model_class, models):
    import transformers

    path = models[LOADERS[expert][1]]
    model = hub.shared(path, None, torch.float32, "cpu", getattr(transformers, model_class).from_pretrained)
    calls = []
    model.text_model.register_forward_hook(lambda *a: calls.append(1))
    reward = load(expert, models)
    assert reward.model is model and len(calls) == 1
    for seed in range(3):
        reward.score(images(2, seed))
    assert len(calls) == 1


def test_contrastive_scores_equal_the_models_own_logits(models):
    from transformers import AutoProcessor, CLIPModel, SiglipModel

    x = images(3, seed=2)
    unit = list(((x + 1) / 2).clamp(0, 1))
    for expert, cls, key in (("clip_score", CLIPModel, "clip"), ("siglip_score", SiglipModel, "siglip")):
        reward = load(expert, models, caption="a red cat")
        model = cls.from_pretrained(models[key]).eval()
        processor = AutoProcessor.from_pretrained(models[key])
        padding = "max_length" if key == "siglip" else True
        inputs = processor(text=["a red cat"], images=unit, padding=padding, return_tensors="pt", do_rescale=False)
        if key == "siglip":  # SigLIP attends to its padding, as trained; its own tokenizer gives no mask
            inputs.pop("attention_mask", None)
        with torch.no_grad():
            out = model(**inputs)
        logits = out.logits_per_image[:, 0]
        expected = logits if key == "clip" else torch.nn.functional.logsigmoid(logits)
        if key == "clip":
            expected = expected / model.logit_scale.exp() * vlm.CLIP_SCALE
        torch.testing.assert_close(reward.score(x), expected, atol=1e-5, rtol=1e-5)


# --- hub: missing models, sharing ------------------------------------------------------


@pytest.mark.parametrize("expert", sorted(LOADERS))
def test_missing_model_is_unavailable_and_offline(expert, no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loader = LOADERS[expert][0]
    a = args("nobody/missing-model", question=vlm.VQA_QUESTION)
    with pytest.raises(ExpertUnavailable) as info:
        loader(a, context(tmp_path))
    message = str(info.value)
    assert "nobody/missing-model" in message and "hf download nobody/missing-model" in message
    assert not hub.LOADS


def test_missing_directory_is_unavailable(tmp_path, no_network):
    with pytest.raises(ExpertUnavailable, match="does not exist"):
        vlm.load_clip_score(args("./no/such/dir"), context(tmp_path))


def test_directory_without_processor_is_unavailable(models, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(models["clip"] / name, bare / name)
    with pytest.raises(ExpertUnavailable, match="processor of"):
        vlm.load_clip_score(args(str(bare)), context(tmp_path))


def test_experts_on_one_model_directory_share_its_components(models):
    a = load("clip_score", models, caption="two cats")
    loads = dict(hub.LOADS)
    b = load("clip_score", models, caption="a dog")
    assert dict(hub.LOADS) == loads == {(str(models["clip"]), None): 2}  # the model and the processor, once each
    assert a.model is b.model and a.processor is b.processor
    assert not torch.equal(a.text_embedding, b.text_embedding)

    v1 = load("vqascore", models, caption="two cats")
    v2 = load("vqascore", models, caption="a dog")
    assert v1.model is v2.model and hub.LOADS[(str(models["llava"]), None)] == 2


def test_relative_model_path_resolves_against_the_program_folder(models):
    ctx = context(models["clip"].parent)
    reward = vlm.load_clip_score(args("clip"), ctx)  # "clip" next to the program
    assert reward.score(images(2)).shape == (2,)


def test_scorers_doc_examples_check():
    import re

    import poelang

    doc = (Path(__file__).resolve().parents[2] / "docs" / "experts" / "scorers.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```poe\n(.*?)```", doc, re.S)
    assert blocks
    for block in blocks:
        program = poelang.parse(block, "docs/experts/scorers.md")
        assert program.ok, program.render_diagnostics()


def test_nan_scores_become_minus_infinity(models):
    reward = load("clip_score", models)
    reward._score = lambda x: torch.tensor([float("nan"), float("-inf"), 1.5])
    assert reward.score(images(3)).tolist() == [float("-inf"), float("-inf"), 1.5]
