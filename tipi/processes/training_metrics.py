"""Epoch metrics of Train: running means of what the steps return (kept as tensors, read once
per epoch, so no batch waits on the GPU) and validation metrics from torchmetrics by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tipi.processes.training_settings import Named, param_error
from tipi.processes.training_step import PREDICTIONS
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
    """Sample-weighted running means of named scalars (float64 tensors on the device)."""

    def __init__(self, saved: Mapping[str, Any] | None = None) -> None:
        self.sums: dict[str, Any] = {}
        self.count = 0
        if saved:
            import torch

            self.sums = {k: torch.tensor(v, dtype=torch.float64) for k, v in saved["sums"].items()}
            self.count = saved["count"]

    def add(self, values: Mapping[str, Any], n: int) -> None:
        for name, value in values.items():
            if name in PREDICTIONS:
                continue
            value = value.detach().double() * n if hasattr(value, "detach") else float(value) * n
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.count += n

    def all_reduce(self) -> None:
        """Sum over every rank of torch.distributed (each trained on its shard)."""
        import torch
        import torch.distributed as dist

        names = sorted(self.sums)
        totals = torch.tensor(
            [float(self.sums[n]) for n in names] + [float(self.count)], dtype=torch.float64
        )
        dist.all_reduce(totals)
        self.sums = {n: totals[i].double() for i, n in enumerate(names)}
        self.count = int(totals[-1].item())

    def result(self, prefix: str) -> dict[str, float]:
        count = max(self.count, 1)
        return {f"{prefix}{k}": float(v) / count for k, v in self.sums.items()}

    def state(self) -> dict[str, Any]:
        """Plain numbers, for a resume checkpoint taken mid-epoch."""
        return {"sums": {k: float(v) for k, v in self.sums.items()}, "count": self.count}


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
