"""Ctrl-C, said the same way everywhere: the line "interrupted" and exit code 130."""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

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


@contextmanager
def held() -> Iterator[None]:
    """Hold Ctrl-C back until the block is done, then raise KeyboardInterrupt: for work that must not be
    cut in the middle (importing torch, writing and listing one output). Only the main thread sees signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
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
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
