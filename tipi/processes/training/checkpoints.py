"""Train's files: weights with the pipeline's metadata, and the resume checkpoint.

Weights (`model.pt`, `best.pt`, `ema.pt`, the `top_k` files) are `torch.save`d dicts
`{"state_dict": <the model's state dict>, "metadata": {...}}`, loadable with
`torch.load(path, weights_only=True)`: metadata holds only strings, numbers, booleans, None,
lists and dicts. Its keys: `format` (1), `kind` (last | best | ema | top_k), `pipeline`,
`step`, `phase` ({index, name}: index 0 for a phase that starts from no `init`, else the
init's + 1), `epoch`, `global_step` (optimizer steps, counted on from the init's), `params`
(the step's), `fingerprint` (of the step's run, as its resume binding holds it), `run_id`,
`metrics` (of that epoch), `phases` (the summary of every phase up to this one).
`tipi.permanences.network.read_checkpoint` reads these and bare state dicts alike.

The resume file (`resume.pt` in the step's scratch folder, written atomically) holds
`version` (3), `model`, `optimizers`, `schedulers`, `scaler` (16-mixed's grad scaler),
`ema`, `callbacks` (each one's state_dict), `torch_rng`, `cuda_rng` (one state per GPU, or
None), `numpy_rng`, `python_rng` and `state` (epoch, batch, history, best weights, running
sums of the epoch so far...). It is written only between optimizer steps, never in the middle
of an accumulation. Under torch.distributed, `ranks` holds what differs from rank to rank, one
map per rank in rank order: `epoch_means` (the running sums of its shard of the epoch so far, or
None at an epoch's end) and its `torch_rng`, `cuda_rng`, `numpy_rng` and `python_rng`; `state`
then has no `epoch_means`. Elsewhere `ranks` is None. Version 2 (no `ranks`) still resumes a
single process; under torch.distributed it starts over, as it kept rank 0's sums alone.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tipi.atomic import atomic_path

FORMAT = 1
RESUME_VERSION = 3
RNG_KEYS = ("torch_rng", "cuda_rng", "numpy_rng", "python_rng")


def plain(value: Any) -> Any:
    """`value` with only what `weights_only=True` and JSON both read (paths become text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return str(value)


def write_weights(
    path: Path, state_dict: Mapping[str, Any], metadata: Mapping[str, Any], atomic: bool = False
) -> None:
    """Save `{"state_dict", "metadata"}` at `path`; `atomic` for files that must survive a
    crash whole (the top-k files in the scratch folder). Outputs need not be: they are
    written to staging paths the engine moves into place only after success."""
    import torch

    payload = {"state_dict": dict(state_dict), "metadata": plain(metadata)}
    path.parent.mkdir(parents=True, exist_ok=True)
    if not atomic:
        torch.save(payload, path)
        return
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def rng_states() -> dict[str, Any]:
    """Every random generator a training step draws from: torch (CPU, each GPU), numpy's
    global one and Python's `random`."""
    import numpy
    import torch

    kind, keys, pos, has_gauss, gauss = numpy.random.get_state()
    return {
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy_rng": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(numpy.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python_rng": random.getstate(),
    }


def restore_rng(saved: Mapping[str, Any]) -> str | None:
    """Put back what `rng_states` took. Returns a note when the CUDA states could not be
    (another number of GPUs, or none now)."""
    import numpy
    import torch

    torch.set_rng_state(saved["torch_rng"])
    random.setstate(_as_random_state(saved["python_rng"]))
    state = saved.get("numpy_rng")
    if state is not None:
        keys = state["keys"].numpy().astype(numpy.uint32)
        numpy.random.set_state(
            (state["kind"], keys, state["pos"], state["has_gauss"], state["gauss"])
        )
    cuda = saved.get("cuda_rng")
    if cuda:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all(cuda)
        else:
            now = torch.cuda.device_count() if torch.cuda.is_available() else 0
            return f"the checkpoint has CUDA RNG states of {len(cuda)} GPU(s), this run {now}"
    return None


def _as_random_state(saved: Any) -> tuple:
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)


def save_resume(path: Path, payload: dict[str, Any]) -> None:
    """Write the resume checkpoint (fsynced: a power cut keeps a whole one)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save({"version": RESUME_VERSION, **payload, **rng_states()}, tmp)


def load_resume(path: Path) -> dict[str, Any] | None:
    """The resume checkpoint at `path` (tensors only) as this process resumes it: under
    torch.distributed, with its own rank's epoch sums and generators. None for another layout
    version or another number of ranks (the run then starts over: only the same code
    resumes, and code is in the binding)."""
    import torch

    from tipi.processes.data import distributed_rank

    saved = torch.load(path, map_location="cpu", weights_only=True)
    shard = distributed_rank()
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict):
        return None
    if saved.get("version") == 2 and shard is None:
        return saved
    if saved.get("version") != RESUME_VERSION:
        return None
    ranks = saved.get("ranks")
    if shard is None:
        return saved if ranks is None else None
    return _as_rank(saved, ranks, *shard)


def _as_rank(saved: dict[str, Any], ranks: Any, rank: int, world: int) -> dict[str, Any] | None:
    """`saved` with rank `rank`'s entry of `ranks` in place of rank 0's sums and generators."""
    if not isinstance(ranks, list) or len(ranks) != world or not isinstance(ranks[rank], dict):
        return None
    own = ranks[rank]
    if any(key not in own for key in (*RNG_KEYS, "epoch_means")):
        return None
    state = {k: v for k, v in saved["state"].items() if k != "epoch_means"}
    if own["epoch_means"] is not None:
        state["epoch_means"] = own["epoch_means"]
    return {**saved, **{key: own[key] for key in RNG_KEYS}, "state": state}
