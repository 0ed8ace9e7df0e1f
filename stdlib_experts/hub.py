"""Finding and loading pretrained components: offline by default, each loaded once.

Every real expert (FLUX, Wan, the VLM scorers) loads its weights through
this module, so that

* a model is a local directory (``save_pretrained`` layout) or a Hugging Face
  id looked up in the local cache; nothing is downloaded unless the user
  sets ``POELANG_ALLOW_DOWNLOAD=1``. A missing model is an
  :class:`ExpertUnavailable` naming the model and the command that fetches it;
* a component that several experts share (FLUX's VAE and text encoders, say)
  is loaded once per process: :func:`shared` caches by (model, subfolder,
  dtype, device) and counts real loads in :data:`LOADS` for the tests;
* weights come from safetensors only (``use_safetensors=True``) and
  ``trust_remote_code`` stays off unless the person running the program allows
  it (``poelang run --trust-remote-code``); a program cannot.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from poelang.experts.unavailable import ExpertUnavailable
from poelang.progress import log

ALLOW_DOWNLOAD_ENV = "POELANG_ALLOW_DOWNLOAD"

_CACHE: dict[tuple, Any] = {}
LOADS: Counter = Counter()  # (model, subfolder) → how many times it was really loaded


def downloads_allowed() -> bool:
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "") not in ("", "0", "false", "no")


def resolve_model(model: str, base_dir: Path | None = None) -> Path:
    """The local directory holding ``model``, a path or a Hugging Face id.

    Relative paths are tried against the program's folder first. A Hugging Face
    id is looked up in the local cache (``HF_HOME``); with downloads allowed it
    is fetched. No network access happens otherwise.
    """
    folder = _local_folder(model, base_dir)
    if folder is not None:
        return folder
    if _looks_like_id(model):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(model, cache_dir=hub_cache(), local_files_only=not downloads_allowed()))
        except Exception as e:  # not cached (offline), gated, or no such repo
            reason = "" if not downloads_allowed() else f" ({type(e).__name__}: {e})"
            raise ExpertUnavailable(_missing(model) + reason) from None
    raise ExpertUnavailable(f"model directory '{model}' does not exist")


def _local_folder(model: str, base_dir: Path | None) -> Path | None:
    """``model`` as a folder: relative paths are tried against the program's folder first."""
    candidates = [Path(model).expanduser()]
    if base_dir is not None and not Path(model).is_absolute():
        candidates.insert(0, Path(base_dir) / model)
    return next((path.resolve() for path in candidates if path.is_dir()), None)


def locate(model: str, base_dir: Path | None = None) -> Path | None:
    """Where ``model`` (a folder or a Hugging Face id) is on this machine, or None; never downloads."""
    folder = _local_folder(model, base_dir)
    if folder is not None:
        return folder
    if _looks_like_id(model):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(model, cache_dir=hub_cache(), local_files_only=True))
        except Exception:  # not in the cache
            return None
    return None


def fetch_command(model: str) -> str:
    """The command that puts ``model`` into the Hugging Face cache (a folder: none can)."""
    return f"hf download {model}" if _looks_like_id(model) else f"# '{model}' is a folder: create it or fix the path"


def model_weights(param: str = "model") -> Callable[[dict, Path], list]:
    """An :class:`ExpertSpec` ``weights`` rule: the model named by the ``param`` argument."""
    from poelang.experts.spec import Weights

    def rule(args: dict, base_dir: Path) -> list:
        model = args.get(param)
        if not isinstance(model, str):
            return []
        found = locate(model, base_dir)
        return [Weights(model, None if found is None else str(found), fetch_command(model),
                        downloads=downloads_allowed() and _looks_like_id(model))]

    return rule


def _looks_like_id(model: str) -> bool:
    return model.count("/") == 1 and not model.startswith((".", "/", "~"))


def remote_code_refused(error: Exception, path) -> ExpertUnavailable | None:
    """transformers' refusal to run a model folder's own code (trust_remote_code off), as a message that
    says whose decision it is; None for any other error."""
    if "trust_remote_code" not in str(error):
        return None
    return ExpertUnavailable(
        f"the model in {path} ships its own Python code, which poelang runs only when the person running the "
        "program allows it: read that code, then run with `poelang run --trust-remote-code` "
        "(Python: Program.run(trust_remote_code=True))")


def hub_cache() -> str:
    """The Hugging Face cache folder, read from the environment now (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return os.path.join(home, "hub")


def _missing(model: str) -> str:
    return (
        f"model '{model}' is not on this machine (looked for a local directory and in the Hugging Face "
        f"cache {hub_cache()}); fetch it with `{fetch_command(model)}` (gated models need `hf auth login` "
        f"first), or let poelang download it by setting {ALLOW_DOWNLOAD_ENV}=1"
    )


def torch_dtype(name: str, device: str):
    """The dtype a component runs in: the requested one on GPU, float32 on CPU (bf16 matmuls are slow there)."""
    import torch

    if not str(device).startswith("cuda"):
        return torch.float32
    try:
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]
    except KeyError:
        raise ValueError(f"dtype must be bfloat16, float16 or float32, got '{name}'") from None


def shared(path: Path, subfolder: str | None, dtype, device: str, load: Callable[..., Any]) -> Any:
    """``load(path, subfolder=…, torch_dtype=…)`` once per process for each key; later calls reuse it.

    ``load`` is a ``from_pretrained`` (or a function with its signature). The
    component is moved to ``device`` and put in eval mode.
    """
    owner = getattr(load, "__self__", None)  # CLIPModel.from_pretrained and CLIPVisionModel's share a __qualname__
    name = f"{getattr(owner, '__module__', '')}.{getattr(owner, '__qualname__', '')}.{getattr(load, '__qualname__', load)}"
    key = (fingerprint(path, subfolder), str(dtype), str(device), name)
    if key not in _CACHE:
        kwargs: dict[str, Any] = {"use_safetensors": True} if _is_model_loader(load) else {}
        if getattr(owner, "__name__", "").startswith("Auto") and getattr(owner, "__module__", "").startswith("transformers"):
            kwargs["trust_remote_code"] = False  # an Auto class would run a folder's code (or prompt for it) otherwise
        if subfolder:
            kwargs["subfolder"] = subfolder
        if dtype is not None and _is_model_loader(load):
            kwargs["torch_dtype"] = dtype
        component = load(str(path), **kwargs)
        if _PLACEMENT.get(str(path)) == "offload" and hasattr(component, "enable_group_offload"):
            component.enable_group_offload(onload_device=device, offload_type="leaf_level", use_stream=True)
        elif hasattr(component, "to") and dtype is not None:
            component = component.to(device)
        if hasattr(component, "eval"):
            component.eval()
        if hasattr(component, "requires_grad_"):
            component.requires_grad_(False)
        _CACHE[key] = component
        LOADS[(str(path), subfolder)] += 1
    return _CACHE[key]


def fingerprint(path: Path, subfolder: str | None = None) -> str:
    """What a component *is*, so that two model folders holding the same one share it.

    FLUX.1 Fill and Depth ship byte-identical VAEs and text encoders. In the
    Hugging Face cache every file is a link to a blob named by its sha256, so
    the link targets identify the content for free; plain small files are
    hashed; big plain files are identified by their path (two copies of a
    20 GB encoder on disk then load twice, which hashing would cost more than).
    """
    folder = Path(path) / subfolder if subfolder else Path(path)
    digest = hashlib.sha256()
    for f in sorted(folder.rglob("*")) if folder.is_dir() else [folder]:
        if not f.is_file():
            continue
        digest.update(str(f.relative_to(folder)).encode())
        if f.is_symlink():
            digest.update(Path(os.path.realpath(f)).name.encode())
        elif f.stat().st_size <= _HASH_LIMIT:
            digest.update(hashlib.sha256(f.read_bytes()).digest())
        else:
            digest.update(os.path.realpath(f).encode())
    return digest.hexdigest()


_HASH_LIMIT = 64 << 20


def weights_bytes(path: Path, dtype=None) -> int:
    """The size the model's safetensors take in memory at ``dtype`` (stored size when None)."""
    total = 0
    for f in Path(path).rglob("*.safetensors"):
        size = f.stat().st_size
        if dtype is not None:
            size = size * _itemsize(dtype) // _stored_itemsize(f)
        total += size
    return total


def _itemsize(dtype) -> int:
    import torch

    return torch.empty((), dtype=dtype).element_size()


def _stored_itemsize(f: Path) -> int:
    """Bytes per value of the file's first tensor, read from its JSON header."""
    with open(f, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    for name, entry in header.items():
        if name != "__metadata__":
            return {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1}.get(entry["dtype"], 4)
    return 4


def announce_memory(model: str, path: Path, dtype, device: str) -> str:
    """Log (shown with ``poelang run -v``), before loading, how much memory the weights need and where they will live.

    Returns the placement: 'device' (everything on the accelerator) or 'offload'
    (components stream onto it block by block; diffusers' group offloading).
    """
    need = weights_bytes(path, dtype)
    placement, free_text = "device", ""
    if str(device).startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        free_text = f", {free / 2**20:,.0f} MiB free on {device}"
        placement = "device" if need < 0.85 * free else "offload"
    _PLACEMENT[str(path)] = placement
    if str(path) not in _ANNOUNCED:
        _ANNOUNCED.add(str(path))
        where = f"on {device}" if placement == "device" else f"offloaded, streamed onto {device} block by block"
        log().info(f"{model}: {need / 2**20:,.1f} MiB of weights ({str(dtype).removeprefix('torch.')}){free_text}, {where}")
    return placement


_PLACEMENT: dict[str, str] = {}
_ANNOUNCED: set[str] = set()


def _is_model_loader(load: Callable) -> bool:
    """Models take dtype and safetensors options; tokenizers and processors do not."""
    owner = getattr(load, "__self__", None)
    import torch

    return isinstance(owner, type) and issubclass(owner, torch.nn.Module)


def clear() -> None:
    """Forget every cached component (tests; freeing memory between programs)."""
    _CACHE.clear()
    LOADS.clear()
    _PLACEMENT.clear()
    _ANNOUNCED.clear()
