"""What a run tells its user while it works: progress on stderr, details on request.

Three verbosities, chosen by the front door (``poelang run -q`` / default / ``-v``):

* ``QUIET``: nothing but errors (the command line still prints its "wrote …" lines);
* ``NORMAL``: one live Rich display on stderr -- a line per model load,
  simulation and inversion with its elapsed time, and the sampler's level bar;
* ``VERBOSE``: also the loading details the library logs (sizes in MiB, where
  the weights are placed) and third-party progress bars.

Library code never prints: it logs to the ``poelang`` logger (at INFO for
details); :func:`configure` decides what reaches the terminal. stdout is left
to results, so that ``poelang run … | …`` and ``--json`` stay clean.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

QUIET, NORMAL, VERBOSE = 0, 1, 2

LOGGER = "poelang"

# third-party libraries' own switches, read when they are imported (setdefault: the user's choice wins)
_QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def log() -> logging.Logger:
    """The logger library code reports details to (shown with ``-v``)."""
    return logging.getLogger(LOGGER)


def verbose_logging() -> bool:
    """Whether the front door asked for details (libraries that configure once, like genesis, read this)."""
    return log().isEnabledFor(logging.INFO)


def configure(verbosity: int, console: Any = None) -> None:
    """Route the poelang logger and quiet third-party output for this process.

    transformers/diffusers/huggingface_hub progress bars are always off
    (poelang shows its own line per model load; tqdm bars would tear its live
    display); at QUIET their log messages below errors and Python warnings
    are off too. VERBOSE shows the poelang logger's details.
    """
    logger = log()
    for handler in list(logger.handlers):
        if isinstance(handler, _ConsoleHandler):
            logger.removeHandler(handler)
    if verbosity >= VERBOSE:
        logger.addHandler(_ConsoleHandler(console or stderr_console()))
        logger.setLevel(logging.INFO)
    else:
        logger.setLevel(logging.WARNING)
    _third_party(errors_only=verbosity <= QUIET)
    if verbosity <= QUIET:
        warnings.simplefilter("ignore")


class _ConsoleHandler(logging.Handler):
    """poelang's details on the Rich console, so that they print above a live display instead of tearing it."""

    def __init__(self, console):
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(f"poelang: {record.getMessage()}", markup=False, highlight=False, soft_wrap=True)


def _third_party(errors_only: bool) -> None:
    env = dict(_QUIET_ENV)
    if not errors_only:
        env = {k: v for k, v in env.items() if k == "HF_HUB_DISABLE_PROGRESS_BARS"}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    # already imported (a test, the REPL): their switches were read at import, so flip them directly
    if "transformers" in sys.modules:
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
        if errors_only:
            tlog.set_verbosity_error()
    if "diffusers" in sys.modules:
        from diffusers.utils import logging as dlog

        dlog.disable_progress_bar()
        if errors_only:
            dlog.set_verbosity_error()
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.utils as hub_utils

        hub_utils.disable_progress_bars()


def stderr_console():
    """Rich on stderr; written to a file or pipe (a log), lines are not cut to a terminal's 80 columns."""
    from rich.console import Console

    console = Console(stderr=True)
    return console if console.is_terminal else Console(stderr=True, width=160)


class Reporter:
    """The live display of one run on stderr: a line per step (load, simulate) and a bar per sample."""

    def __init__(self, verbosity: int = NORMAL, console: Any = None):
        self.verbosity = verbosity
        self.console = console
        self._progress = None
        self._depth = 0  # re-entrant: a run, and a sample drawn on its own (the REPL's :show), share one display

    @property
    def enabled(self) -> bool:
        return self.verbosity >= NORMAL

    def __enter__(self) -> "Reporter":
        self._depth += 1
        if self.enabled and self._depth == 1:
            console = self.console or stderr_console()
            self._progress = _live(console) if console.is_terminal else _Lines(console)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._progress is not None and self._depth == 0:
            self._progress.__exit__(*exc)
            self._progress = None

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A line with a spinner while the body runs (loading a model, simulating), then a check mark."""
        if self._progress is None:
            yield
            return
        from rich.markup import escape

        task = self._progress.add_task(escape(description), total=1, info="", bar=False)
        try:
            yield
        finally:
            self._progress.update(task, completed=1)

    def sampling(self, name: str, levels: int, chunks: int = 1, inverting: bool = False) -> "LevelBar":
        """The bar for one `~` statement: ``levels`` per chunk (the autoregressive path runs levels 0..T per chunk)."""
        width = None if self._progress is None or isinstance(self._progress, _Lines) else self._progress.console.width
        return LevelBar(self._progress, name, levels, chunks, inverting,
                        info_width=None if width is None else width - _fixed_width(width))


# The live display's columns: a spinner, the description, the bar, the elapsed time (0:00:00), then the
# one column that gives way, the level's numbers; Rich puts one space between columns.
_SPINNER, _ELAPSED, _GAPS = 1, 7, 4


def _description_width(width: int) -> int:
    return min(28, max(16, width - 56))  # 24 at 80 columns: "loading judge (mini_vqa)" whole


def _bar_width(width: int) -> int:
    return 16 if width >= 120 else 8  # a narrow terminal keeps the numbers, not the bar


def _fixed_width(width: int) -> int:
    """The columns left of the numbers, at a terminal `width` columns wide."""
    return _SPINNER + _description_width(width) + _bar_width(width) + _ELAPSED + _GAPS


def _live(console):
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Column

    fixed = lambda width: Column(width=width, no_wrap=True)  # noqa: E731
    bar = _bar_width(console.width)
    return Progress(
        SpinnerColumn(finished_text="[green]✓", table_column=fixed(_SPINNER)),
        TextColumn("{task.description}", table_column=Column(max_width=_description_width(console.width),
                                                              no_wrap=True, overflow="ellipsis")),
        _SamplingBar(bar_width=bar, table_column=fixed(bar)), TimeElapsedColumn(table_column=fixed(_ELAPSED)),
        # the numbers never wrap and are the column that gives way: LevelBar fits them to the width, what it
        # cannot (a terminal narrower than 60 columns, or resized) ends in …
        TextColumn("{task.fields[info]}", table_column=Column(max_width=max(1, console.width - _fixed_width(console.width)),
                                                              no_wrap=True, overflow="ellipsis")),
        console=console, transient=False)


class _Lines:
    """The display for a stderr that is a file or a pipe (a CI log): a live display would show nothing
    until the run ends, so each step is one line, printed when it finishes, with its time."""

    def __init__(self, console):
        self.console = console
        self.tasks: list[dict] = []

    def __enter__(self) -> "_Lines":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def add_task(self, description: str, total: int, info: str = "", **fields: Any) -> int:
        import time

        self.tasks.append({"description": description, "total": total, "info": info, "started": time.perf_counter()})
        return len(self.tasks) - 1

    def update(self, task: int, completed: int, info: str | None = None) -> None:
        import time

        t = self.tasks[task]
        if info is not None:
            t["info"] = info
        if completed >= t["total"] and "done" not in t:
            t["done"] = True
            line = f"✓ {t['description']}  {time.perf_counter() - t['started']:.1f} s  {t['info']}".rstrip()
            self.console.print(line, highlight=False, soft_wrap=True)


def _SamplingBar(**kwargs):
    """A bar for the samplers' tasks only; a loading or simulating line has nothing to measure."""
    from rich.progress import BarColumn
    from rich.text import Text

    class SamplingBar(BarColumn):
        def render(self, task):
            return super().render(task) if task.fields.get("bar") else Text("")

    return SamplingBar(**kwargs)


class LevelBar:
    """Level, σ, ESS and best score of a running sampler ("chunk k/K" on the autoregressive path), and a bar
    of its steps while ``init = inversion`` inverts the input (see :meth:`inversion_step`).

    ``info_width``: the columns the numbers may take (None: any); narrower, σ goes first, then the ESS.
    """

    def __init__(self, progress, name: str, levels: int, chunks: int, inverting: bool,
                 info_width: int | None = None):
        self.progress, self.levels, self.chunks, self.inverting = progress, levels, chunks, inverting
        self.name, self.info_width = name, info_width
        self.total = chunks * (levels + 1) - 1  # the trace numbers levels 0..T of every chunk on from the last
        self.task = self.inversion_task = None
        self.level = -1  # the last level shown
        if progress is not None and not inverting:  # an inversion's line comes first, the levels' when they start
            self.task = self._add(self.total, "starting")

    def _add(self, total: int, info: str):
        from rich.markup import escape

        return self.progress.add_task(escape(f"{self.name} ~"), total=total, info=info, bar=True)

    def text(self, info) -> str:
        chunk, level = divmod(info.level, self.levels + 1)
        best = float(info.scores.max()) if info.scores.numel() else float("nan")
        where = [f"chunk {chunk + 1}/{self.chunks}"] * (self.chunks > 1) + [f"level {level}/{self.levels}"]
        if self.inverting and level == self.levels and chunk + 1 < self.chunks:
            return _fit(where + [f"inverting chunk {chunk + 2}"], [], self.info_width)
        return _fit(where, [f"σ={info.sigma:.3f}", f"ESS={info.ess:.1f}", f"best={best:.3g}"], self.info_width)

    def update(self, info) -> None:
        self.level = info.level
        if self.progress is None:
            return
        if self.task is None:
            self.task = self._add(self.total, "")
        self.progress.update(self.task, completed=info.level, info=self.text(info))

    def inversion_step(self, done: int, total: int) -> None:
        """The hook :func:`poelang.infer.inversion.invert` calls: ``done`` of ``total`` steps (0: a new inversion,
        one per chunk on the autoregressive path)."""
        if self.progress is None:
            return
        chunk = (self.level + 1) // (self.levels + 1) + 1  # the chunk about to start
        where = ["inverting"] + [f"chunk {chunk}/{self.chunks}"] * (self.chunks > 1) + [f"step {done}/{total}"]
        if done == 0 or self.inversion_task is None:
            self.inversion_task = self._add(total, "")
        self.progress.update(self.inversion_task, completed=done, info=_fit(where, [], self.info_width))


def _fit(where: list[str], stats: list[str], width: int | None) -> str:
    """``where`` and ``stats`` joined by two spaces; where that is wider than ``width``, by one, then without
    the first stats (σ, then the ESS: the schedule fixes σ, the best score says most)."""
    candidates = ["  ".join(where + stats)] + [" ".join(where + stats[k:]) for k in range(min(len(stats), 2) + 1)]
    return next((text for text in candidates if width is None or len(text) <= width), candidates[-1])
