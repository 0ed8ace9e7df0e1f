"""Sampling within the device's memory: when it runs out, halve ``max_batch`` and try again (saying so once on
stderr), down to one particle at a time; then stop with a message that names the sample, the level and the expert.
Batches give identical results, so a retried sample is the sample the smaller batch would have given."""
from __future__ import annotations

import gc
import sys


class OutOfMemory(Exception):
    """Sampling ran out of memory even one particle at a time; the message says where."""


def sample_within_memory(sample_id: str, problem, settings, on_level, device):
    """``infer.sample``, retried with ``max_batch`` halved each time the device runs out of memory
    (OutOfMemory when even a batch of one does not fit)."""
    from poelang import infer

    last_level = [-1]

    def tracked(info):
        last_level[0] = info.level
        return on_level(info)  # False stops the run

    said = False
    while True:
        try:
            return infer.sample(problem, settings, callback=tracked, device=device)
        except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError
            if not _out_of_memory(e) or isinstance(e, infer.SamplerError):
                raise
            culprit = _expert_in_traceback(e.__traceback__, problem)
            batch = settings.max_batch or settings.particles
            where = f"at level {last_level[0] + 1}" + (f" in '{culprit}'" if culprit else "")
            if batch <= 1:
                gc.collect()
                raise OutOfMemory(f"not enough memory to sample '{sample_id}' {where}, even one particle at a time "
                                  "(max_batch = 1): lower the canvas size, or use a device with more memory") from None
            if not said:
                print(f"poelang: '{sample_id}' ran out of memory {where}; retrying with max_batch = {batch // 2} "
                      "(halved again while it does not fit)", file=sys.stderr)
                said = True
            settings = settings.replace(max_batch=batch // 2)
            last_level[0] = -1
            _free_memory()


def _out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or "out of memory" in text or "can't allocate memory" in text)


def _expert_in_traceback(tb, problem) -> str | None:
    """The name of the innermost expert (factor or reward) whose method was running when the error came."""
    experts = {id(f.expert): f.name for f in problem.factors} | {id(r.expert): r.name for r in problem.rewards}
    name = None
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if id(owner) in experts:
            name = experts[id(owner)]
        tb = tb.tb_next
    return name


def _free_memory() -> None:
    import gc

    gc.collect()
    if "torch" in __import__("sys").modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
