"""Writing a run's outputs: each `save`, and the traces the runner asks for, under the output directory."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from poelang import graph as g
from poelang import writers
from poelang.latents import _decode

if TYPE_CHECKING:
    from poelang.interpreter import Interpreter


class Saver:
    """Writes the outputs of one interpreter's run (its samples are drawn already)."""

    def __init__(self, interpreter: "Interpreter"):
        self.interp = interpreter
        self.program = interpreter.program
        self.result = interpreter.result

    def save(self, outputs: list[g.OutputNode], given: int, output_dir: str | None, every_sample: bool,
             trace_dir: str | None) -> None:
        """Write every output; ``given`` is the index of the one whose path the runner gave (``--output``)."""
        from poelang import provenance

        graph = self.interp.graph
        for index, out in enumerate(outputs):
            target = out.value.ref
            path = Path(out.path).name if output_dir is not None and Path(out.path).is_absolute() else out.path
            if out.format == "trace":
                sample_id = graph.node(target).args["sample"].ref
                self._write(path, target, lambda p: self._write_trace(p, sample_id), index, index == given)
            else:
                data = self.result.samples[target] if target in self.result.samples else self.interp.value(target)
                write_one = writers.write_every_sample if every_sample else writers.write_value
                record = provenance.record(self.program, target)
                self._write(path, target, lambda p: write_one(p, out.format, data, out.options, record), index,
                            index == given)
        if trace_dir is not None:
            for sample_id in self.result.samples:
                folder = trace_dir if len(self.result.samples) == 1 else str(Path(trace_dir) / sample_id)
                self._write(folder, sample_id, lambda p: self._write_trace(p, sample_id), None, runner_path=True)

    def traced(self, sample_id: str):
        """The sample's result with its trace images in pixels; decoded only when a trace is written, once."""
        from dataclasses import replace

        result = self.result.samples[sample_id]
        codec = self.interp.latent_samples.pop(sample_id, None)
        if codec is not None:
            trace = [replace(t, x0_hat=None if t.x0_hat is None else _decode(codec, t.x0_hat)) for t in result.trace]
            result = self.result.samples[sample_id] = replace(result, trace=trace)
        return result

    def _write_trace(self, folder: str, sample_id: str) -> list[str]:
        from poelang import provenance

        return writers.write_trace(folder, sample_id, self.traced(sample_id), provenance.record(self.program, sample_id))

    def _is_trace(self, index: int) -> bool:
        outputs = self.interp.graph.outputs
        return index < len(outputs) and outputs[index].format == "trace"

    def _write(self, path: str, target: str, write: Callable[[str], list[str]], index: int | None,
               runner_path: bool = False) -> None:
        """Write one output; a program's save path resolves against the output directory, a path the
        runner gave (``--trace``, ``--output``) as it was given. A failure points at the save statement."""
        from poelang.interrupts import held

        full = path if runner_path else str(self.interp.out_dir / path)
        if not runner_path and not self.program.allow_outside:
            outside = _leaves_through_a_link(self.interp.out_dir, full, folder=index is not None and self._is_trace(index))
            if outside:
                span_id = f"save:{index}" if index is not None and f"save:{index}" in self.program.spans else target
                raise self.interp.fail(f"cannot write {full}: a symbolic link leads it out of the output directory "
                                       f"(to {outside}); the runner can allow it with --allow-outside", span_id)
        try:
            with held():  # Ctrl-C lands between outputs: each is written, renamed and listed, or not begun
                for written in write(full):
                    self.result.written.append(written)
                    if self.interp.on_write is not None:
                        self.interp.on_write(written)
        except (OSError, ValueError, UnicodeError) as e:  # ValueError: a NUL byte; UnicodeError: an unencodable name
            reason = getattr(e, "strerror", None) or str(e)
            span_id = f"save:{index}" if index is not None and f"save:{index}" in self.program.spans else target
            raise self.interp.fail(f"cannot write {full}: {reason}", span_id) from None


def _leaves_through_a_link(out_dir: Path, full: str, folder: bool) -> str | None:
    """Where a save path really leads when a symbolic link on the way takes it out of the output directory
    (the path itself is checked to stay inside; a link already there is the only way out), else None.
    A file's own name is not followed: the write replaces a link there rather than writing through it."""
    import os

    root = os.path.realpath(out_dir)
    where = os.path.realpath(full if folder else os.path.dirname(full) or ".")
    return None if os.path.commonpath([root, where]) == root else where
