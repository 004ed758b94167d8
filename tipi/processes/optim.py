"""Optimizers and schedulers by name from TOML, per parameter group, and freezing by name
patterns (frozen modules kept in eval mode so their BatchNorm statistics stay frozen)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tipi.errors import ConfigError
from tipi.processes.training.settings import GroupSpec, Named, SchedulerSpec, param_error
from tipi.siblings import import_as_script
from tipi.suggest import did_you_mean


def load_attr(path: str, what: str) -> Any:
    """The object a `module:attr` path names (a dotted attr reaches nested names).

    Raises:
        ConfigError: the module cannot be imported or has no such attribute.
    """
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = import_as_script(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {what} '{path}': {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            close = did_you_mean(part, [n for n in dir(obj) if not n.startswith("_")])
            raise ConfigError(f"module '{module_name}' has no {what} '{attr}'", hint=close)
        obj = getattr(obj, part)
    return obj


def _optimizer_class(name: str) -> type:
    import torch

    cls = load_attr(name, "optimizer") if ":" in name else getattr(torch.optim, name, None)
    if not isinstance(cls, type) or not issubclass(cls, torch.optim.Optimizer):
        known = sorted(n for n in dir(torch.optim) if n[:1].isupper() and n != "Optimizer")
        close = did_you_mean(name, known)
        raise ConfigError(
            f"unknown optimizer '{name}'",
            hint=(f"{close} " if close else "") + f"torch.optim has: {', '.join(known)}",
        )
    return cls


def _scheduler_class(name: str) -> type:
    from torch.optim import lr_scheduler

    cls = load_attr(name, "scheduler") if ":" in name else getattr(lr_scheduler, name, None)
    if not isinstance(cls, type):
        known = sorted(
            n for n in dir(lr_scheduler) if n[:1].isupper() and n.endswith(("LR", "Plateau"))
        )
        close = did_you_mean(name, known)
        raise ConfigError(
            f"unknown scheduler '{name}'",
            hint=(f"{close} " if close else "")
            + f"torch.optim.lr_scheduler has: {', '.join(known)}",
        )
    return cls


def build_optimizer(parameters: Iterable[Any], spec: Mapping[str, Any], lr: float) -> Any:
    """`{"name": "AdamW", "weight_decay": 0.01}` → torch.optim.AdamW(parameters, lr=lr, ...)."""
    options = dict(spec)
    name = options.pop("name", "Adam")
    cls = _optimizer_class(name)
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ConfigError("every parameter is frozen: nothing to optimize", hint="check `freeze`")
    try:
        return cls(params, **{"lr": lr, **options})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optimizer {name} rejected {options}: {exc}") from exc


def build_scheduler(optimizer: Any, spec: Mapping[str, Any] | None) -> Any:
    """`{"name": "StepLR", "step_size": 5}` → a torch.optim.lr_scheduler, or None.

    `lr_lambda = "module:function"` names a function (LambdaLR, MultiplicativeLR);
    `schedulers = [{ name = ... }, ...]` builds the inner ones (SequentialLR, ChainedScheduler).
    """
    if not spec:
        return None
    options = dict(spec)
    name = str(options.pop("name", None))
    cls = _scheduler_class(name)
    for key in ("lr_lambda",):
        if isinstance(options.get(key), str):
            options[key] = load_attr(options[key], "function")
    if isinstance(options.get("schedulers"), list):
        options["schedulers"] = [
            build_scheduler(optimizer, inner) for inner in options["schedulers"]
        ]
    check_arguments(cls, options, f"scheduler {name}")
    try:
        return cls(optimizer, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"scheduler {name} rejected {options}: {exc}") from exc


def check_arguments(cls: type, options: Mapping[str, Any], what: str) -> None:
    """A ConfigError for the first option `cls` has no argument for, with "did you mean"."""
    import inspect

    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    names = [n for n in parameters if n not in ("self", "params", "optimizer")]
    for key in options:
        if key not in parameters:
            close = did_you_mean(key, names)
            raise ConfigError(
                f"{what} has no argument '{key}'",
                hint=(f"{close} " if close else "") + f"its arguments: {', '.join(names)}",
            )


def apply_freeze(model: Any, freeze: Iterable[str]) -> list[str]:
    """Freeze parameters whose names match any pattern (fnmatch, e.g. "features.*");
    every other parameter is trainable. Returns the frozen names.

    Raises:
        ConfigError: a pattern matches no parameter (a typo would silently train everything).
    """
    patterns = list(freeze)
    names = [name for name, _ in model.named_parameters()]
    for pattern in patterns:
        _check_matches(pattern, names, "freeze pattern")
    frozen = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not _matches(name, patterns)
        if not parameter.requires_grad:
            frozen.append(name)
    return frozen


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _check_matches(pattern: str, names: list[str], what: str) -> None:
    if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
        raise ConfigError(
            f"{what} '{pattern}' matches no parameter",
            hint=f"parameters look like: {', '.join(names[:6])}",
        )


def assign_groups(
    step: str, model: Any, groups: Sequence[GroupSpec], freeze: Sequence[str]
) -> tuple[list[list[Any]], list[str]]:
    """The parameters of each group, and the names of the frozen ones.

    A parameter matched by `freeze`, or by no group, is frozen (`requires_grad = False`);
    every other one is trainable in exactly one group.

    Raises:
        ConfigError: a pattern matches nothing, or one parameter is matched by two groups
            (or frozen by `freeze` and matched by a group's own pattern); the message names both.
    """
    names = [name for name, _ in model.named_parameters()]
    for pattern in freeze:
        try:
            _check_matches(pattern, names, "freeze pattern")
        except ConfigError as error:
            raise param_error(step, "freeze", error.message, error.hint) from None
    single = len(groups) == 1 and groups[0].patterns == ("*",)
    for group in groups:
        for pattern in group.patterns:
            try:
                _check_matches(pattern, names, "pattern")
            except ConfigError as error:
                raise param_error(step, f"{group.key}.params", error.message, error.hint) from None
    members: list[list[Any]] = [[] for _ in groups]
    frozen = []
    for name, parameter in model.named_parameters():
        owners = [i for i, g in enumerate(groups) if _matches(name, g.patterns)]
        if len(owners) > 1:
            first, second = (groups[i] for i in owners[:2])
            raise param_error(
                step,
                "optimizers",
                f"parameter '{name}' is matched by {first.key} ({', '.join(first.patterns)}) "
                f"and by {second.key} ({', '.join(second.patterns)})",
                "each parameter belongs to one optimizer: narrow one of the patterns",
            )
        if _matches(name, freeze) and owners and not single:
            raise param_error(
                step,
                "freeze",
                f"parameter '{name}' is frozen by `freeze` but {groups[owners[0]].key} trains it",
                "leave it out of one of them",
            )
        trainable = bool(owners) and not _matches(name, freeze)
        parameter.requires_grad = trainable
        if trainable:
            members[owners[0]].append(parameter)
        else:
            frozen.append(name)
    for group, params in zip(groups, members, strict=True):
        if not params:
            raise param_error(
                step,
                group.key if not single else "freeze",
                "every parameter it names is frozen: nothing to optimize",
                "check `freeze`",
            )
    return members, frozen


def build_optimizers(step: str, groups: Sequence[GroupSpec], members: list[list[Any]]) -> list[Any]:
    """One optimizer per group, each from torch.optim (or a `module:Class`)."""
    built = []
    for group, params in zip(groups, members, strict=True):
        spec: Named = group.optimizer
        try:
            cls = _optimizer_class(spec.name)
        except ConfigError as error:
            raise param_error(step, f"{spec.key}.name", error.message, error.hint) from None
        try:
            check_arguments(cls, spec.options, f"optimizer {spec.name}")
            built.append(cls(params, **spec.options))
        except ConfigError as error:
            raise param_error(step, spec.key, error.message, error.hint) from None
        except (TypeError, ValueError) as exc:
            raise param_error(
                step, spec.key, f"optimizer {spec.name} rejected {dict(spec.options)}: {exc}"
            ) from None
    return built


def build_schedulers(
    step: str, groups: Sequence[GroupSpec], optimizers: Sequence[Any]
) -> list[Any]:
    """Each group's scheduler (None where it has none)."""
    built = []
    for group, optimizer in zip(groups, optimizers, strict=True):
        spec: SchedulerSpec | None = group.scheduler
        if spec is None:
            built.append(None)
            continue
        try:
            built.append(
                build_scheduler(optimizer, {"name": spec.named.name, **spec.named.options})
            )
        except ConfigError as error:
            raise param_error(step, spec.named.key, error.message, error.hint) from None
    return built


def frozen_modules(model: Any) -> list[Any]:
    """The outermost submodules whose every parameter is frozen (their BatchNorm statistics
    and dropout are switched off by putting them in eval mode)."""
    found: list[Any] = []
    covered: set[str] = set()
    for name, module in model.named_modules():
        if any(name == c or name.startswith(c + ".") for c in covered if c) or "" in covered:
            continue
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            found.append(module)
            covered.add(name)
    return found
