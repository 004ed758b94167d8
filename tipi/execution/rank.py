"""One rank of a step under torch.distributed: `python -m tipi.execution.rank TASK.json`,
started by `torch.distributed.run` (see distributed.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tipi.execution.distributed import report
from tipi.execution.task import run_here
from tipi.execution.types import Task


def backend(local_world_size: int) -> str:
    """NCCL when every rank on this node has a GPU of its own, else gloo (CPU)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() >= local_world_size:
        return "nccl"
    return "gloo"


def main(argv: list[str]) -> int:
    import torch
    import torch.distributed as dist

    spec = Path(argv[1])
    task = Task.from_data(json.loads(spec.read_text()))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = backend(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if chosen == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(chosen)
    if rank == 0:
        outputs = dict(task.outputs)
    else:  # the other ranks write the same files where nobody keeps them
        own = spec.parent / f"rank{rank}"
        (own / "out").mkdir(parents=True, exist_ok=True)
        outputs = {k: str(own / "out" / f"{k}-{Path(v).name}") for k, v in task.outputs.items()}
    # One scratch folder for every rank: all resume from the same checkpoint (rank 0 writes
    # it), so they agree on where they are and never wait for each other in vain.
    result = run_here(task, outputs, task.scratch)
    report(spec.parent, rank, result)
    if result.outcome not in ("ran", "skipped"):
        return 1  # torch.distributed.run then stops the other ranks
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
