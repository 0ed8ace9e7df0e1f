"""The Ray backend: the same workers as Ray actors, on one machine or a cluster.

One actor per GPU (`num_gpus=1`: Ray gives it one device, seen as `cuda`) or
per CPU slot. The driver keeps one row in flight per actor and takes rows
from the same queue as the local backend, so the order, the affinity of rows
to the experts a worker holds and the manifest are the same. When an actor's
process dies, Ray restarts it and runs the row again (`max_restarts`,
`max_task_retries`); a row whose actor keeps dying is recorded as failed.

Ray is an optional dependency: `pip install 'poelang[ray]'`.
"""
from __future__ import annotations

from typing import Any, Callable

from poelang.sweeps.dispatch import DEFAULT_ATTEMPTS, Queue
from poelang.sweeps.plan import Job


class RayUnavailable(RuntimeError):
    pass


def _ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--backend ray needs Ray: pip install 'poelang[ray]'") from None
    return ray


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the cluster at `address`, or start Ray on this machine; True when this call started it."""
    ray = _ray()
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(num_cpus=num_cpus, **options)
    return True


def run_ray(jobs: list[Job], runner_args: dict[str, Any], on_record: Callable[[dict], None], *,
            address: str | None = None, workers: int | None = None, gpus: bool = False,
            attempts: int = DEFAULT_ATTEMPTS, on_start: Callable[[str, int], None] | None = None,
            stall_timeout: float | None = None, threads: int | None = None) -> None:
    """`stall_timeout`: give up when no row has finished for this long (an actor asking for a
    resource the cluster lacks waits forever otherwise). `threads`: torch threads per actor
    (a CPU actor holds `threads` CPUs of the cluster; default 1)."""
    ray = _ray()
    started = connect(address, num_cpus=workers * (threads or 1) if workers and not gpus else None)
    try:
        _run(ray, jobs, {**runner_args, "threads": threads or (None if gpus else 1)}, on_record, workers, gpus,
             attempts, on_start, stall_timeout)
    finally:
        if started:
            ray.shutdown()


def _run(ray, jobs, runner_args, on_record, workers, gpus, attempts, on_start, stall_timeout) -> None:
    from poelang.sweeps.runner import RowRunner

    resources = ray.cluster_resources()
    cpus = 0 if gpus else runner_args["threads"]
    count = workers or int(resources.get("GPU", 1) if gpus else resources.get("CPU", 1) // cpus)
    if gpus and resources.get("GPU", 0) < 1:
        raise RayUnavailable("the Ray cluster has no GPU; leave out --devices cuda to run on its CPUs")
    actor_class = ray.remote(RowRunner).options(
        num_gpus=1 if gpus else 0, num_cpus=cpus, max_restarts=attempts - 1,
        max_task_retries=attempts - 1)
    args = {**runner_args, "device": "cuda" if gpus else "cpu"}
    actors = [actor_class.remote(**args) for _ in range(max(1, count))]
    queue = Queue(jobs, attempts)
    holds: dict[int, tuple[str, ...] | None] = {i: None for i in range(len(actors))}
    in_flight: dict[Any, tuple[int, Job]] = {}
    while queue or in_flight:
        busy = {i for i, _ in in_flight.values()}
        for i in range(len(actors)):
            if i not in busy and queue:
                job, attempt = queue.take(holds[i])
                if on_start is not None:
                    on_start(job.id, ray.get(actors[i].pid.remote()))
                in_flight[actors[i].run.remote(job, attempt)] = (i, job)
        done, _ = ray.wait(list(in_flight), num_returns=1, timeout=stall_timeout)
        if not done:
            raise RayUnavailable(f"no row finished in {stall_timeout:g} s: is the cluster short of what the workers ask for?")
        for ref in done:
            i, job = in_flight.pop(ref)
            try:
                on_record(ray.get(ref))
                holds[i] = job.experts
            except ray.exceptions.RayActorError as e:  # Ray's own retries are spent
                queue.attempts[job.id] = attempts
                queue.worker_died(job, f"Ray: {type(e).__name__}", on_record)
                actors[i] = actor_class.remote(**args)
                holds[i] = None
