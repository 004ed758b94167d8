"""Train's ranks under torch.distributed: they agree on when to checkpoint and stop, and rank 0
collects what each rank alone holds (its epoch sums, its generators) into the checkpoint."""

from __future__ import annotations

from typing import Any


class Ranks:
    """The ranks of one DDP Train step, seen from one of them.

    A checkpoint holds every rank's state, so every rank must take part in it at the same
    optimizer step: each decides alone (the clock, a callback's stop) and `agree` makes one
    decision of them all. The collectives run on a CPU (gloo) group: on NCCL, a flag read on the
    host every optimizer step would make the host wait for the GPU.
    """

    def __init__(self, rank: int, world: int) -> None:
        import torch.distributed as dist

        self.rank, self.world = rank, world
        self.group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")

    def agree(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag true on every rank when it is on any one."""
        import torch
        import torch.distributed as dist

        values = torch.tensor([int(f) for f in flags], dtype=torch.int64)
        dist.all_reduce(values, op=dist.ReduceOp.MAX, group=self.group)
        return tuple(bool(v) for v in values.tolist())

    def gather(self, mine: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Every rank's `mine`, in rank order, on rank 0 (None on the others). The objects go
        between this step's own processes, in memory; nothing read from a file is unpickled."""
        import torch.distributed as dist

        found: list[Any] | None = [None] * self.world if self.rank == 0 else None
        dist.gather_object(mine, found, dst=0, group=self.group)
        return found
