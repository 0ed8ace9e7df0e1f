"""Writing files atomically: a failed or interrupted write loses nothing.

A file is written under a hidden temporary name beside its target and renamed
over it. The temporary name carries the writer's process id,
``.NAME.poetmp<pid>.<random><suffix>``, because a process killed with SIGKILL
cannot remove its own: the next write into that folder removes the temporary
files of writers that are gone (no such process, and untouched for
:data:`STALE_AFTER` seconds, so that a writer on another machine sharing the
folder is left alone while it writes). Nothing else in the folder is touched.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TEMP_MARK = ".poetmp"
_TEMP = re.compile(r"^\..+\.poetmp(\d+)\.[a-z0-9_]{8}[^/]*$")  # mkstemp's 8 random characters
STALE_AFTER = 2.0  # seconds untouched before a dead writer's temporary file is removed
_swept: set[str] = set()  # folders cleaned by this process already


def is_stale_temp(entry: Path, now: float | None = None) -> bool:
    """A temporary file of ours whose writer (the pid in its name) is gone and that nobody wrote to lately."""
    match = _TEMP.match(entry.name)
    if not match or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
        return False
    try:
        info = entry.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and (now or time.time()) - info.st_mtime > STALE_AFTER


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the stale temporary files of killed writers in ``folder`` (see the module's docstring)."""
    removed = []
    try:
        entries = [e for e in os.scandir(folder) if TEMP_MARK in e.name]
    except OSError:
        return removed
    for entry in entries:
        path = Path(entry.path)
        if is_stale_temp(path):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass  # gone already, or not ours to remove
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process: not ours to judge
    return True


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file stands where a folder of the path should be
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)) from None
    folder = os.path.abspath(path.parent)
    if folder not in _swept:
        _swept.add(folder)
        remove_stale_temps(Path(folder))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}{os.getpid()}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _mode_for(path: Path) -> int:
    """The permissions of the file being replaced (a program `fmt` rewrites keeps its mode), else the usual
    ones (mkstemp makes 0600)."""
    try:
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode):
            return stat.S_IMODE(info.st_mode)
    except OSError:
        pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text_atomic(path: str | Path, text: str) -> None:
    """UTF-8 text; a character UTF-8 cannot hold (a file name's undecodable byte, which Python carries as a
    lone surrogate) is written as '?' rather than failing the write."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="replace")


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
