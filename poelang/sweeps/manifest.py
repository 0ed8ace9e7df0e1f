"""OUTDIR/manifest.jsonl: one JSON line per finished row, the sweep's record and its memory.

Only the sweep's driver writes it, one whole line per `write` on a file opened
for appending and flushed to disk, so a crash or Ctrl-C leaves complete lines
only (a torn last line, from a machine losing power, is skipped on reading).
A row may appear more than once (failed, then run again by `--resume`); its
last line is its state.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

MANIFEST = "manifest.jsonl"


class Manifest:
    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / MANIFEST

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            written = os.write(fd, line)
            while written < len(line):  # a regular file takes it whole; a short write is continued, not lost
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line
            if isinstance(record, dict) and "id" in record:
                records.append(record)
        return records

    def latest(self) -> dict[str, dict[str, Any]]:
        """Each row's last record, by id."""
        return {r["id"]: r for r in self.records()}


def done_ids(records: Iterable[dict[str, Any]], jobs) -> set[str]:
    """The rows `--resume` skips: finished ok with the same program and the same row content."""
    latest = {r["id"]: r for r in records}
    done = set()
    for job in jobs:
        r = latest.get(job.id)
        if r and r.get("status") == "ok" and r.get("program_hash") == job.program_hash and r.get("row_hash") == job.row_hash:
            done.add(job.id)
    return done
