"""Epoch metrics of Train: running means of what the steps return (kept as tensors, read once
per epoch, so no batch waits on the GPU) and validation metrics from torchmetrics by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tipi.processes.training.settings import Named, param_error
from tipi.processes.training.step import PREDICTIONS
from tipi.suggest import did_you_mean

# Short names → (torchmetrics class, defaults). Classification ones get `task` and
# `num_classes` from the first batch (class scores (N, C) → multiclass, C classes).
SHORT: dict[str, tuple[str, dict[str, Any]]] = {
    "accuracy": ("Accuracy", {"average": "micro"}),
    "f1": ("F1Score", {"average": "macro"}),
    "precision": ("Precision", {"average": "macro"}),
    "recall": ("Recall", {"average": "macro"}),
    "auroc": ("AUROC", {}),
    "average_precision": ("AveragePrecision", {}),
    "mse": ("MeanSquaredError", {}),
    "mae": ("MeanAbsoluteError", {}),
    "r2": ("R2Score", {}),
    "psnr": ("image.PeakSignalNoiseRatio", {}),
}
NEEDS_TASK = {"Accuracy", "F1Score", "Precision", "Recall", "AUROC", "AveragePrecision"}


class Means:
    """Sample-weighted running means of named scalars.

    Each batch's values are kept as they come (tensors, no copy, no sync) and summed once per
    epoch, in batch order, into Python floats: the same sums whether or not the epoch was
    resumed halfway, and no batch waits on the GPU.
    """

    def __init__(self, saved: Mapping[str, Any] | None = None) -> None:
        self.sums: dict[str, float] = dict(saved["sums"]) if saved else {}
        self.count: int = saved["count"] if saved else 0
        self.pending: dict[str, list[Any]] = {}
        self.sizes: list[int] = []

    def add_loss(self, loss: Any, n: int) -> None:
        """The common case: a step that returns its loss alone."""
        pending = self.pending.get("loss")
        if pending is None or len(pending) != len(self.sizes):
            self.add({"loss": loss}, n)
            return
        pending.append(loss.detach())
        self.sizes.append(n)

    def add(self, values: Mapping[str, Any], n: int) -> None:
        for name, value in values.items():
            if name in PREDICTIONS:
                continue
            kept = self.pending.setdefault(name, [None] * len(self.sizes))
            kept.append(value.detach() if hasattr(value, "detach") else float(value))
        self.sizes.append(n)
        for kept in self.pending.values():  # a name some batches did not report
            if len(kept) < len(self.sizes):
                kept.append(None)

    def fold(self) -> None:
        """Add what is pending to the sums, batch after batch."""
        if not self.sizes:
            return
        import torch

        for name, kept in self.pending.items():
            tensors = [v for v in kept if v is not None and not isinstance(v, float)]
            as_floats = iter(torch.stack(tensors).double().tolist()) if tensors else iter(())
            total = self.sums.get(name, 0.0)
            for value, n in zip(kept, self.sizes, strict=True):
                if value is None:
                    continue
                number = value if isinstance(value, float) else next(as_floats)
                total += number * n
            self.sums[name] = total
        self.count += sum(self.sizes)
        self.pending, self.sizes = {}, []

    def all_reduce(self) -> None:
        """Sum over every rank of torch.distributed (each trained on its shard)."""
        import torch
        import torch.distributed as dist

        self.fold()
        names = sorted(self.sums)
        totals = torch.tensor(
            [self.sums[n] for n in names] + [float(self.count)], dtype=torch.float64
        )
        dist.all_reduce(totals)
        self.sums = {n: float(totals[i]) for i, n in enumerate(names)}
        self.count = int(totals[-1].item())

    def result(self, prefix: str) -> dict[str, float]:
        self.fold()
        count = max(self.count, 1)
        return {f"{prefix}{k}": v / count for k, v in self.sums.items()}

    def state(self) -> dict[str, Any]:
        """Plain numbers, for a resume checkpoint taken mid-epoch."""
        self.fold()
        return {"sums": dict(self.sums), "count": self.count}


class TorchMetrics:
    """The metrics `metrics = [...]` names, fed with each validation batch's `preds` and
    `target`, computed once per validation."""

    def __init__(self, step: str, specs: Sequence[Named]) -> None:
        self.step = step
        self.specs = list(specs)
        self.classes = {spec.key: _metric_class(step, spec) for spec in self.specs}
        self.built: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.specs)

    def update(self, result: Mapping[str, Any]) -> None:
        if "preds" not in result or "target" not in result:
            raise ValueError(
                "metrics are named but validation_step returned no 'preds' and 'target'"
            )
        preds, target = result["preds"].detach(), result["target"]
        if self.built is None:
            self.built = {s.key: self._build(s, preds) for s in self.specs}
        for metric in self.built.values():
            metric.update(preds.float() if preds.is_floating_point() else preds, target)

    def compute(self, prefix: str) -> dict[str, float]:
        if not self.built:
            return {}
        values = {}
        for spec in self.specs:
            metric = self.built[spec.key]
            value = metric.compute()
            metric.reset()
            if getattr(value, "numel", lambda: 1)() != 1:
                raise param_error(self.step, spec.key, f"metric {spec.name} is not a single number")
            label = spec.options.get("label", spec.name)
            values[f"{prefix}{label}"] = float(value)
        return values

    def _build(self, spec: Named, preds: Any) -> Any:
        cls, defaults = self.classes[spec.key]
        options = {**defaults, **{k: v for k, v in spec.options.items() if k != "label"}}
        if cls.__name__ in NEEDS_TASK and "task" not in options:
            if preds.ndim == 2 and preds.shape[1] > 1:
                options.update(task="multiclass", num_classes=int(preds.shape[1]))
            else:
                options["task"] = "binary"
                options.pop("average", None)
        try:
            return cls(**options).to(preds.device)
        except (TypeError, ValueError) as exc:
            raise param_error(
                self.step, spec.key, f"metric {spec.name} rejected {options}: {exc}"
            ) from None


def _metric_class(step: str, spec: Named) -> tuple[type, dict[str, Any]]:
    import torchmetrics

    name, defaults = SHORT.get(spec.name, (spec.name, {}))
    found: Any = torchmetrics
    for part in name.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, type):
        known = [*SHORT, *(n for n in dir(torchmetrics) if n[:1].isupper())]
        close = did_you_mean(spec.name, known)
        raise param_error(
            step,
            spec.key,
            f"unknown metric '{spec.name}'",
            (f"{close} " if close else "")
            + f"short names: {', '.join(SHORT)}; or any torchmetrics class name",
        )
    return found, dict(defaults)
