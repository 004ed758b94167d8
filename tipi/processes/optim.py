"""Optimizers and schedulers by name from TOML, and freezing parameters by name patterns."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from tipi.errors import ConfigError


def build_optimizer(parameters: Iterable[Any], spec: Mapping[str, Any], lr: float) -> Any:
    """`{"name": "AdamW", "weight_decay": 0.01}` → torch.optim.AdamW(parameters, lr=lr, ...)."""
    import torch

    options = dict(spec)
    name = options.pop("name", "Adam")
    cls = getattr(torch.optim, name, None)
    if not isinstance(cls, type) or not issubclass(cls, torch.optim.Optimizer):
        known = sorted(n for n in dir(torch.optim) if n[:1].isupper() and n != "Optimizer")
        raise ConfigError(
            f"unknown optimizer '{name}'", hint=f"torch.optim has: {', '.join(known)}"
        )
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ConfigError("every parameter is frozen: nothing to optimize", hint="check `freeze`")
    try:
        return cls(params, lr=lr, **options)
    except TypeError as exc:
        raise ConfigError(f"optimizer {name} rejected {options}: {exc}") from exc


def build_scheduler(optimizer: Any, spec: Mapping[str, Any] | None) -> Any:
    """`{"name": "StepLR", "step_size": 5}` → a torch.optim.lr_scheduler, or None."""
    if not spec:
        return None
    from torch.optim import lr_scheduler

    options = dict(spec)
    name = options.pop("name", None)
    cls = getattr(lr_scheduler, str(name), None)
    if not isinstance(cls, type):
        known = sorted(
            n for n in dir(lr_scheduler) if n[:1].isupper() and n.endswith(("LR", "Plateau"))
        )
        raise ConfigError(
            f"unknown scheduler '{name}'", hint=f"torch.optim.lr_scheduler has: {', '.join(known)}"
        )
    try:
        return cls(optimizer, **options)
    except TypeError as exc:
        raise ConfigError(f"scheduler {name} rejected {options}: {exc}") from exc


def apply_freeze(model: Any, freeze: Iterable[str]) -> list[str]:
    """Freeze parameters whose names match any pattern (fnmatch, e.g. "features.*");
    every other parameter is trainable. Returns the frozen names.

    Raises:
        ConfigError: a pattern matches no parameter (a typo would silently train everything).
    """
    patterns = list(freeze)
    names = [name for name, _ in model.named_parameters()]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            raise ConfigError(
                f"freeze pattern '{pattern}' matches no parameter",
                hint=f"parameters look like: {', '.join(names[:6])}",
            )
    frozen = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not any(fnmatch.fnmatchcase(name, p) for p in patterns)
        if not parameter.requires_grad:
            frozen.append(name)
    return frozen
