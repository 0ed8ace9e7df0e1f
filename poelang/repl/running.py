"""`:run`, `:show` and `:save`: sampling a session and looking at what it made.

A run keeps its interpreter, so `:show x` and `:save x out.png` after `:run`
reuse the samples it drew; once the session changes, they sample again (only
what the name needs). Any failure is one line or a diagnostic, never a traceback.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

from poelang.diagnostics import PoeError
from poelang.program import Program

__all__ = ["Runner", "VIEWER_ENV", "PREVIEW_DIR_ENV", "parse_run_args", "preview_dir", "split_run_args"]

VIEWER_ENV = "POELANG_VIEWER"  # a command that opens an image, e.g. "xdg-open", "open" or "feh"
PREVIEW_DIR_ENV = "POELANG_PREVIEW_DIR"


def preview_dir() -> Path:
    """``$POELANG_PREVIEW_DIR``, else ``poelang-preview`` in the system's temporary folder."""
    env = os.environ.get(PREVIEW_DIR_ENV)
    return Path(env).expanduser() if env else Path(tempfile.gettempdir()) / "poelang-preview"


class RunFailed(Exception):
    """A run that failed, with the message to print."""


class Runner:
    """Runs a session's program and keeps the last run's interpreter for `:show` and `:save`."""

    def __init__(self, write: Callable[[str], None], color: bool = False) -> None:
        self.write = write
        self.color = color
        self._source: str | None = None
        self._interpreter: Any = None

    def run(self, program: Program, overrides: dict[str, str], params: list[Any] | None = None) -> Any:
        """Sample every `~` of the program (settings overridden as typed, parameters set); returns the RunResult."""
        source = program.source  # what :show and :save compare with: the session, whatever this run overrode
        if overrides or params:
            program = program.with_settings(params=params or None, typed=overrides)
            program.raise_for_errors()
        interpreter = self._fresh(program)
        result = _guard(lambda: interpreter.run(write=False), self.color)
        self._source, self._interpreter = source, interpreter
        return result

    def value(self, program: Program, name: str) -> Any:
        """A binding's value (a sample's Result), from the last run when the session is unchanged."""
        from poelang import graph as g

        if program.graph is None:
            raise RunFailed("the session does not check; :check shows why")
        node = program.graph.node(name)
        if node is None or isinstance(node, g.ExpertNode):
            what = "an expert" if node is not None else "not a value of the session"
            raise RunFailed(f"'{name}' is {what}; :show and :save take values and samples")
        if self._interpreter is None or self._source != program.source:
            self._interpreter, self._source = self._fresh(program), program.source
        interpreter = self._interpreter
        if isinstance(node, g.SampleNode):
            return _guard(lambda: interpreter.run_sample(node), self.color)
        return _guard(lambda: interpreter.value(name), self.color)

    @staticmethod
    def _fresh(program: Program) -> Any:
        from poelang.interpreter import Interpreter

        return Interpreter(program, progress=True)

    def show(self, program: Program, name: str) -> Path:
        """Write a preview PNG of `name`; open it with ``$POELANG_VIEWER`` when that is set."""
        from poelang.outputs import atomic_path
        from poelang.preview import preview

        value = self.value(program, name)
        try:
            image = preview(value)
        except ValueError as e:
            raise RunFailed(str(e)) from None
        path = preview_dir() / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG")
        viewer = os.environ.get(VIEWER_ENV)
        if viewer:
            try:
                subprocess.Popen([*shlex.split(viewer), str(path)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            except OSError as e:
                self.write(f"cannot open the viewer ${VIEWER_ENV}={viewer}: {e.strerror or e}")
        return path

    def save(self, program: Program, name: str, path: str) -> str:
        """`:save NAME PATH`: write a value or sample (computed now unless the session is unchanged since the
        last run) in the format PATH's suffix names, with its provenance; returns the path written."""
        from poelang import provenance, writers
        from poelang.graph import FILE_FORMATS

        fmt = FILE_FORMATS.get(Path(path).suffix.lower())
        if fmt is None or fmt == "trace":
            raise RunFailed(f"unknown output format '{Path(path).suffix}'; use one of {', '.join(sorted(FILE_FORMATS))}")
        value = self.value(program, name)
        try:
            return writers.write_value(path, fmt, value, {}, provenance.record(program, name))[0]
        except (OSError, ValueError, RuntimeError) as e:
            raise RunFailed(f"cannot write {path}: {getattr(e, 'strerror', None) or e}") from None


def _guard(action: Callable[[], Any], color: bool) -> Any:
    """Run `action`, turning every failure into RunFailed with a one-line message (or the diagnostic)."""
    try:
        return action()
    except KeyboardInterrupt:
        raise RunFailed("interrupted") from None
    except PoeError as e:
        raise RunFailed(e.render(color)) from None
    except ImportError as e:
        raise RunFailed(f"cannot run: {_one_line(e) or type(e).__name__}") from None
    except Exception as e:  # never a traceback in the REPL
        raise RunFailed(f"run failed: {_one_line(e) or type(e).__name__}") from None


def _one_line(e: BaseException | str) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def parse_run_args(arg: str) -> dict[str, str]:
    """`key=value` words as typed (shell-like quoting: `prompt="two red cubes"`)."""
    overrides: dict[str, str] = {}
    try:
        items = shlex.split(arg)
    except ValueError as e:
        raise ValueError(f"usage: :run [setting=value | parameter=value ...]: {e}") from None
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"usage: :run [setting=value | parameter=value ...], not '{item}'")
        overrides[key] = value
    return overrides


def split_run_args(program: Program, words: dict[str, str]) -> tuple[dict[str, str], list[Any]]:
    """`:run` words as settings (source text, read as `--set` reads it) and the program's parameters."""
    from poelang.params import from_command_line

    declared = {p.id for p in program.graph.params} if program.graph is not None else set()
    params = [from_command_line(k, v, option=":run") for k, v in words.items() if k in declared]
    settings = {k: v for k, v in words.items() if k not in declared}
    return settings, params


def describe(value: Any) -> str:
    """A one-line description of a run's value for the REPL: its type and shape (``Tensor 4×2``), or its repr, cut."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        try:
            dims = "×".join(str(int(s)) for s in shape)
        except Exception:
            dims = str(shape)
        return f"{type(value).__name__} {dims}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def summarize(result: Any) -> str:
    """A few lines about a run: each sample's shape, best score and ESS, and the files written."""
    lines: list[str] = []
    for name, sample in getattr(result, "samples", {}).items():
        tensor = getattr(sample, "samples", sample)
        line = f"{name}: {describe(tensor)}"
        scores, trace = getattr(sample, "scores", None), getattr(sample, "trace", None)
        if scores is not None and getattr(scores, "numel", lambda: 0)():
            line += f"  best score {float(scores.max()):.4g}"
        if trace:
            line += f"  final ESS {trace[-1].ess:.1f}"
        lines.append(line + f"   (:show {name}, :save {name} PATH)")
    lines += [f"wrote {path}" for path in getattr(result, "written", [])]
    return "\n".join(lines) or "done"
