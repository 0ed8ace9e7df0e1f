"""The progress of a whole sweep: rows done and failed, the rate and the time left."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class SweepProgress:
    total: int  # rows this run will do (not those --resume skipped)
    skipped: int = 0
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.perf_counter)
    last: dict | None = None  # the record of the row that just finished

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        """Rows per second so far (0 before the first)."""
        return self.finished / self.elapsed if self.finished and self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (None before the first row)."""
        return (self.total - self.finished) / self.rate if self.rate else None


class ProgressReporter:
    """Counts records; draws a Rich bar on stderr (when asked) and calls the user's callback."""

    def __init__(self, total: int, skipped: int, bar: bool, callback: Callable[[SweepProgress], None] | None):
        self.state = SweepProgress(total, skipped)
        self.callback = callback
        self.bar = None
        if bar and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                TimeElapsedColumn(), TimeRemainingColumn(), console=Console(file=sys.stderr))
            self.task = self.bar.add_task("sweep", total=total, info="")
            self.bar.start()

    def record(self, record: dict) -> None:
        s = self.state
        if record["status"] == "ok":
            s.done += 1
        else:
            s.failed += 1
        s.last = record
        if self.bar is not None:
            info = f"{s.failed} failed  {s.rate * 60:.1f} rows/min" if s.failed else f"{s.rate * 60:.1f} rows/min"
            self.bar.update(self.task, completed=s.finished, info=info)
        if self.callback is not None:
            self.callback(s)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
