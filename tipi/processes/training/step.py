"""What one batch means to Train: the loss by name, the TrainingModule hook (your
`training_step` / `validation_step`), and batches as tuples, dicts or objects."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from tipi.errors import ConfigError
from tipi.processes.training.settings import Named, param_error
from tipi.suggest import did_you_mean

# Keys of a validation_step result that feed torchmetrics instead of being averaged.
PREDICTIONS = ("preds", "target")


class TrainingModule:
    """The hook for anything beyond supervised classification (`module = "pkg.mod:Class"`).

    Train builds it as `Class(model, **options)` (the table's other keys), moves each batch to
    the device and calls, under the step's precision:

    - `training_step(batch)` → the loss tensor, or a dict with `loss` and other scalars
      (averaged over the epoch as `train_<name>`);
    - `validation_step(batch)` → a dict of scalars (averaged as `val_<name>`; `loss` becomes
      `val_loss`), optionally with `preds` and `target` tensors for the torchmetrics named in
      `metrics`. Left out, it is `training_step` without gradients.

    `self.model` is the network being trained; Train sets it before each use (to the
    DistributedDataParallel wrapper while training under torch.distributed, to the EMA copy
    while EMA weights are validated). Subclassing is optional: any class with these methods
    works.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def training_step(self, batch: Any) -> Any:
        raise NotImplementedError("write training_step(batch) -> loss")

    def validation_step(self, batch: Any) -> Any:
        return training_result(self.training_step(batch), "training_step")


class SupervisedStep(TrainingModule):
    """The default step: `loss(model(input), target)`; accuracy too when the outputs are
    class scores (N, C) and the targets class indices (N,)."""

    def __init__(self, model: Any, loss: Any, input_key: str, target_key: str) -> None:
        super().__init__(model)
        self.loss, self.input_key, self.target_key = loss, input_key, target_key

    def training_step(self, batch: Any) -> Any:
        x, y = split_batch(batch, self.input_key, self.target_key)
        return self.loss(self.model(x), y)

    def validation_step(self, batch: Any) -> dict[str, Any]:
        x, y = split_batch(batch, self.input_key, self.target_key)
        out = self.model(x)
        result = {"loss": self.loss(out, y), "preds": out, "target": y}
        if out.ndim == 2 and y.ndim == 1 and not y.is_floating_point():
            result["accuracy"] = (out.argmax(1) == y).float().mean()
        return result


def split_batch(batch: Any, input_key: str, target_key: str) -> tuple[Any, Any]:
    """(input, target) of a batch: items 0 and 1 of a tuple or list, keys of a dict,
    attributes of an object."""
    if isinstance(batch, list | tuple):
        if len(batch) < 2:
            raise ValueError(
                f"a batch of {len(batch)} item(s) has no target; expected (input, target)"
            )
        return batch[0], batch[1]
    if isinstance(batch, Mapping):
        missing = [k for k in (input_key, target_key) if k not in batch]
        if missing:
            raise KeyError(
                f"the batch has no key {missing[0]!r} (keys: {', '.join(map(str, batch))}); "
                "set input_key / target_key"
            )
        return batch[input_key], batch[target_key]
    try:
        return getattr(batch, input_key), getattr(batch, target_key)
    except AttributeError:
        raise AttributeError(
            f"a {type(batch).__name__} batch has no attribute {input_key!r} or {target_key!r}; "
            "set input_key / target_key"
        ) from None


def to_device(batch: Any, device: Any, non_blocking: bool = False) -> Any:
    """The batch with every tensor in it on `device` (tuples, lists, dicts, dataclasses and
    objects with a `.to()` method)."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(to_device(b, device, non_blocking) for b in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(b, device, non_blocking) for b in batch)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, non_blocking) for k, v in batch.items()}
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        moved = {
            f.name: to_device(getattr(batch, f.name), device, non_blocking)
            for f in dataclasses.fields(batch)
        }
        return dataclasses.replace(batch, **moved)
    if hasattr(batch, "to") and callable(batch.to):
        return batch.to(device)
    return batch


def batch_size(batch: Any) -> int:
    """The number of samples in a batch: the length of the first tensor found in it."""
    if type(batch) in (tuple, list) and batch and getattr(batch[0], "ndim", 0):
        found = int(batch[0].shape[0])  # the common (input, target): no search
        if found:
            return found
    if hasattr(batch, "shape") and getattr(batch, "ndim", 0):
        return int(batch.shape[0])
    if isinstance(batch, list | tuple):
        items: Any = batch
    elif isinstance(batch, Mapping):
        items = batch.values()
    elif dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        items = [getattr(batch, f.name) for f in dataclasses.fields(batch)]
    else:
        items = list(vars(batch).values()) if hasattr(batch, "__dict__") else []
    for item in items:
        found = batch_size(item)
        if found:
            return found
    return 0


def training_result(result: Any, where: str) -> dict[str, Any]:
    """A hook's result as a dict holding `loss` (a bare tensor is the loss)."""
    if isinstance(result, Mapping):
        if where == "training_step" and "loss" not in result:
            raise ValueError(f"{where} returned a dict without 'loss' (keys: {', '.join(result)})")
        return dict(result)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Mapping):
        return {"loss": result[0], **result[1]}
    if hasattr(result, "backward") or where != "training_step":
        return {"loss": result}
    raise TypeError(f"{where} returned {type(result).__name__}; expected a loss tensor or a dict")


def resolve_loss(step: str, spec: Named) -> Any:
    """The loss callable `loss = ...` names: a torch.nn.functional function
    ("cross_entropy"), a torch.nn class ("SmoothL1Loss"), or any `module:attr` (a class is
    built with the table's other keys, a function called with them)."""
    import torch

    if ":" in spec.name:
        from tipi.processes.optim import load_attr

        try:
            found = load_attr(spec.name, "loss")
        except ConfigError as error:
            raise param_error(step, spec.key, error.message, error.hint) from None
    else:
        found = getattr(torch.nn.functional, spec.name, None) or getattr(torch.nn, spec.name, None)
        if found is None or not callable(found):
            known = [n for n in dir(torch.nn) if n.endswith("Loss") and n != "_Loss"]
            known += [n for n in dir(torch.nn.functional) if n.endswith(("_loss", "entropy"))]
            close = did_you_mean(spec.name, known)
            raise param_error(
                step,
                spec.key,
                f"unknown loss '{spec.name}'",
                (f"{close} " if close else "")
                + "name a torch.nn.functional function, a torch.nn class, or 'module:function'",
            )
    if isinstance(found, type):
        try:
            return found(**spec.options)
        except TypeError as exc:
            raise param_error(
                step, spec.key, f"loss {spec.name} rejected {dict(spec.options)}: {exc}"
            ) from None
    return functools.partial(found, **spec.options) if spec.options else found


def build_hook(step: str, spec: Named, model: Any) -> Any:
    """The user's TrainingModule-style class, built as `Class(model, **options)`."""
    from tipi.processes.optim import load_attr

    if ":" not in spec.name:
        raise param_error(
            step,
            spec.key,
            f"'{spec.name}' is not a 'module:Class' path",
            'e.g. module = "vae:VAEStep"',
        )
    try:
        cls = load_attr(spec.name, "class")
    except ConfigError as error:
        raise param_error(step, spec.key, error.message, error.hint) from None
    if not callable(getattr(cls, "training_step", None)):
        raise param_error(
            step, spec.key, f"{spec.name} has no training_step(batch) method", "see TrainingModule"
        )
    try:
        hook = cls(model, **spec.options)
    except TypeError as exc:
        raise param_error(
            step, spec.key, f"{spec.name}(model, ...) rejected {dict(spec.options)}: {exc}"
        ) from None
    if not callable(getattr(hook, "validation_step", None)):
        hook.validation_step = functools.partial(TrainingModule.validation_step, hook)
    return hook
