"""What the real-expert tests share: a one-expert poelang run from fixed noise, and an offline hub."""
from __future__ import annotations

import socket

import torch

import poelang
from poelang import infer
from poelang.interpreter import Interpreter
from poelang.stdlib import hub


def interpreter_for(source: str, folder):
    """(program, interpreter) of a program text whose files lie in ``folder``; a diagnostic fails the test."""
    program = poelang.parse(source, str(folder / "p.poe"), base_dir=folder)
    program.raise_for_errors()
    return program, Interpreter(program)


def poelang_run(source: str, folder):
    """Sample the program's first product from seeded noise: (interpreter, problem, codec, noise, result)."""
    program, interp = interpreter_for(source, folder)
    node = program.graph.samples[0]
    problem, codec = interp.problem(node)
    noise = torch.randn((1,) + problem.shape, generator=torch.Generator().manual_seed(0))
    settings = interp.settings(node.settings).replace(init=noise)
    return interp, problem, codec, noise, infer.sample(problem, settings)


def offline(monkeypatch, tmp_path) -> None:
    """An empty Hugging Face cache, downloads not allowed, and any socket connection a test failure."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv(hub.ALLOW_DOWNLOAD_ENV, raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def loads_by_component() -> dict:
    """How many times each component (transformer, vae, …) was loaded from disk, over every model directory."""
    loads: dict = {}
    for (_, sub), n in hub.LOADS.items():
        loads[sub] = loads.get(sub, 0) + n
    return loads
