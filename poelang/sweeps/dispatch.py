"""The queue both backends share: rows wait in order; an idle worker takes the first row that needs
the experts it already holds, else the first row; a row whose worker died goes back to the front."""
from __future__ import annotations

from collections import deque
from typing import Callable, Iterable

from poelang.sweeps.plan import Job

DEFAULT_ATTEMPTS = 3


class Queue:
    def __init__(self, jobs: Iterable[Job], attempts: int = DEFAULT_ATTEMPTS):
        self.pending: deque[Job] = deque(jobs)
        self.attempts: dict[str, int] = {}
        self.max_attempts = attempts

    def __bool__(self) -> bool:
        return bool(self.pending)

    def take(self, holds: tuple[str, ...] | None) -> tuple[Job, int]:
        """The next row for a worker holding these experts, and which attempt at it this is."""
        job = next((j for j in self.pending if j.experts == holds), self.pending[0])
        self.pending.remove(job)
        self.attempts[job.id] = self.attempts.get(job.id, 0) + 1
        return job, self.attempts[job.id]

    def worker_died(self, job: Job, reason: str, on_record: Callable[[dict], None]) -> None:
        """Put the row back in front, or record it failed once it has used up its attempts."""
        if self.attempts[job.id] < self.max_attempts:
            self.pending.appendleft(job)
            return
        on_record(failed_record(job, f"the worker died {self.attempts[job.id]} times running this row ({reason})",
                                self.attempts[job.id]))


def failed_record(job: Job, error: str, attempt: int) -> dict:
    from poelang.version import __version__

    return {"id": job.id, "row": job.number, "status": "failed", "outputs": [], "seed": None, "params": {},
            "settings": {}, "given": job.given, "scores": {}, "program_hash": job.program_hash,
            "row_hash": job.row_hash, "poelang": __version__, "seconds": 0.0, "error": error, "worker": None,
            "attempt": attempt}
