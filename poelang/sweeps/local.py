"""The local backend: one worker process per device (or N on the CPU), each holding its experts.

Workers are spawned (not forked: torch and CUDA do not survive a fork) and
ignore Ctrl-C; the driver stops them. The driver alone talks to each worker
over its own pipe, so it always knows which row a worker holds: when a worker
dies (killed, out of memory) its row goes back to the queue and a new worker
takes its place.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

from poelang.sweeps.dispatch import DEFAULT_ATTEMPTS, Queue
from poelang.sweeps.plan import Job

MAX_WORKER_STARTS = 3  # a worker that dies this many times before it is ready stops the sweep


def _worker_main(conn: Connection, runner_args: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    from poelang.sweeps.runner import RowRunner

    runner = RowRunner(**runner_args)
    conn.send(("ready", runner.pid()))
    try:
        while True:
            message = conn.recv()
            if message is None:
                return
            job, attempt = message
            conn.send(("record", runner.run(job, attempt)))
    except KeyboardInterrupt:  # a Ctrl-C held back over a write (poelang.interrupts.held) lands here: the driver stops us
        return


class _Worker:
    def __init__(self, context, runner_args: dict, device: str, threads: int | None):
        self.device = device
        self.conn, child = context.Pipe()
        args = {**runner_args, "device": device, "threads": threads}
        self.process = context.Process(target=_worker_main, args=(child, args), daemon=True)
        self.process.start()
        child.close()
        self.job: Job | None = None
        self.holds: tuple[str, ...] | None = None
        self.pid: int | None = None

    def stop(self, grace: float = 0.0) -> None:
        self.process.join(timeout=grace)  # a worker told to stop ends on its own
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def run_local(jobs: list[Job], runner_args: dict[str, Any], devices: list[str], on_record: Callable[[dict], None],
              attempts: int = DEFAULT_ATTEMPTS, on_start: Callable[[str, int], None] | None = None,
              threads: int | None = None) -> None:
    """Run every job on workers for these devices; `on_record` gets each finished row's record
    (`on_start(row id, worker pid)` when a worker takes a row: tests kill workers with it).
    `threads`: torch threads per worker; by default CPU workers share the cores evenly."""
    context = multiprocessing.get_context("spawn")
    if threads is None and all(d == "cpu" for d in devices):
        threads = max(1, (os.cpu_count() or 1) // len(devices))
    queue = Queue(jobs, attempts)
    workers = [_Worker(context, runner_args, d, threads) for d in devices]
    failed_starts = [0] * len(workers)
    try:
        while queue or any(w.job for w in workers):
            for w in workers:
                if w.job is None and queue:
                    w.job, attempt = queue.take(w.holds)
                    w.conn.send((w.job, attempt))
                    if on_start is not None and w.pid is not None:
                        on_start(w.job.id, w.pid)
            ready = wait([w.conn for w in workers] + [w.process.sentinel for w in workers])
            for i, w in enumerate(workers):
                if w.conn in ready or w.process.sentinel in ready:
                    if _receive(w, on_record, on_start):
                        continue
                    failed_starts[i] = failed_starts[i] + 1 if w.pid is None else 0
                    if failed_starts[i] >= MAX_WORKER_STARTS:
                        raise RuntimeError(f"the worker for {w.device} died {MAX_WORKER_STARTS} times before it "
                                           f"started (exit code {w.process.exitcode})")
                    workers[i] = _replace(w, context, runner_args, threads, queue, on_record)
    finally:
        for w in workers:
            try:
                w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for w in workers:
            w.stop(grace=0.0 if w.job is not None else 10.0)


def _receive(w: _Worker, on_record, on_start) -> bool:
    """Read what the worker sent; False when it has died."""
    try:
        while w.conn.poll():
            kind, payload = w.conn.recv()
            if kind == "ready":
                w.pid = payload
                if w.job is not None and on_start is not None:
                    on_start(w.job.id, w.pid)
            else:
                w.holds = w.job.experts
                w.job = None
                on_record(payload)
    except (EOFError, OSError):
        return False
    return w.process.is_alive()


def _replace(w: _Worker, context, runner_args, threads, queue: Queue, on_record) -> _Worker:
    code = w.process.exitcode
    w.stop()
    if w.job is not None:
        reason = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        queue.worker_died(w.job, reason, on_record)
    return _Worker(context, runner_args, w.device, threads)
