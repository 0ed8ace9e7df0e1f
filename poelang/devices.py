"""Which torch devices a run can use: the one check of `--device` (and `Program.run(device=…)`)."""
from __future__ import annotations

import re


def device_problem(name: str) -> str | None:
    """Why `name` is not a device this run can sample on (a message), or None.

    Accepted: ``cpu``, ``cuda`` / ``cuda:N`` with a CUDA build and that many
    visible GPUs, ``mps`` where Apple's backend is available. ``meta`` holds no
    data and other device types have no kernels here.
    """
    import torch

    if not isinstance(name, str) or not re.fullmatch(r"[a-z]+(:\d+)?", name):  # the name torch is given, as is
        return f"unknown device '{name}': use cpu, cuda, cuda:N or mps"
    kind, _, index = name.partition(":")
    if kind == "cpu":
        return None if not index or index == "0" else f"there is one CPU device: use cpu, not '{name}'"
    if kind == "cuda":
        if torch.version.cuda is None and not getattr(torch.version, "hip", None):
            return f"no CUDA device: this torch ({torch.__version__}) is CPU-only; use --device cpu"
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return "no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES); use --device cpu"
        if index and int(index) >= count:
            return f"there {'is' if count == 1 else 'are'} {count} CUDA device{'s' * (count != 1)} (cuda:0…cuda:{count - 1}), not '{name}'"
        return None
    if kind == "mps":
        available = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        return None if available else "the mps device (Apple GPUs) is not available here; use --device cpu"
    if kind == "meta":
        return "the meta device holds no data, so nothing can be sampled on it; use cpu or cuda"
    return f"unknown device '{name}': use cpu, cuda, cuda:N or mps"
