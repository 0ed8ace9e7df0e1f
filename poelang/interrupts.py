"""Ctrl-C, said the same way everywhere: the line "interrupted" and exit code 130."""
from __future__ import annotations

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
