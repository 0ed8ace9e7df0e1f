"""Ctrl-C, said the same way everywhere: the line "interrupted" and exit code 130.

This module is imported by the executable's first line (:mod:`poelang._entry`), before anything else of
poelang, so it imports only what the interpreter has already loaded at startup (``os``, ``sys``); the
``signal`` and ``threading`` modules are imported when :func:`held` is first used.
"""
from __future__ import annotations

import os
import sys

EXIT_INTERRUPTED = 130  # the shell's 128 + SIGINT


def interrupted() -> int:
    """Say so in one line and return the exit code. Files already written are complete (each is written
    to a hidden temporary file and renamed); the one being written is removed."""
    try:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return EXIT_INTERRUPTED


class held:
    """Hold Ctrl-C back until the block is done, then raise KeyboardInterrupt: for work that must not be
    cut in the middle (importing torch, writing and listing one output). Only the main thread sees signals.

        with held():
            ...
    """

    def __enter__(self) -> None:
        import signal
        import threading

        self.pending: list[int] = []
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, lambda signum, frame: self.pending.append(signum))

    def __exit__(self, *exc) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.pending and exc[0] is None:
            raise KeyboardInterrupt


def exit_with(code: int) -> None:
    """End the process with `code`. After an interrupt, at once (outputs are already complete or removed; an
    interpreter shutdown after an interrupt inside an import can itself end by SIGINT); otherwise with a
    late Ctrl-C ignored, since the work is done and must not turn into a traceback at shutdown."""
    if code == EXIT_INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
