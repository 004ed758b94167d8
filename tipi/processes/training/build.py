"""Builds what one Train phase trains with from its params: parameter groups and their
optimizers and schedulers, precision, EMA, the step hook, metrics, callbacks and loaders."""

from __future__ import annotations

from typing import Any

from tipi.errors import ConfigError
from tipi.permanences.sampling import EpochSampler, build_loader
from tipi.processes.callbacks import Callback, EarlyStopping, ModelCheckpoint, Transition
from tipi.processes.callbacks import build_callback as _build_callback
from tipi.processes.optim import assign_groups, build_optimizers, build_schedulers, frozen_modules
from tipi.processes.training.loop import Loaders, Parts
from tipi.processes.training.metrics import TorchMetrics
from tipi.processes.training.numerics import EMA, Precision, resolve_precision
from tipi.processes.training.settings import param_error
from tipi.processes.training.step import SupervisedStep, build_hook, resolve_loss

VAL_BATCH = 256


def build_parts(step: Any, model: Any, device: Any, shard: tuple[int, int] | None) -> Parts:
    """Groups, optimizers, schedulers, precision, EMA, hook, metrics and callbacks of `step`.

    Raises:
        ConfigError: anything the params name that does not exist or does not fit, located
            at the step and key.
    """
    name = step.name
    members, frozen = assign_groups(name, model, step.groups, step.freeze)
    optimizers = build_optimizers(name, step.groups, members)
    schedulers = build_schedulers(name, step.groups, optimizers)
    precision = Precision(
        resolve_precision(name, step.precision, step.mixed_precision, device), device
    )
    forward = model
    if shard is not None:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        forward = DistributedDataParallel(model, device_ids=ids)
    if step.module_spec is not None:
        hook = build_hook(name, step.module_spec, forward)
    else:
        loss = resolve_loss(name, step.loss_spec)
        hook = SupervisedStep(forward, loss, step.input_key, step.target_key)
    callbacks, keys = build_callbacks(step)
    return Parts(
        model=model,
        forward=forward,
        device=device,
        optimizers=optimizers,
        schedulers=schedulers,
        scheduler_specs=[g.scheduler for g in step.groups],
        group_labels=[g.label for g in step.groups],
        params=[p for group in members for p in group],
        frozen=frozen,
        frozen_modules=frozen_modules(model) if step.freeze_bn else [],
        precision=precision,
        ema=EMA(model, step.ema, step.params.get("ema_warmup", True)) if step.ema else None,
        hook=hook,
        val_metrics=TorchMetrics(name, step.metric_specs),
        callbacks=callbacks,
        shard=shard,
        callback_keys=keys,
    )


def build_callbacks(step: Any) -> tuple[list[Callback], list[str]]:
    """The built-in checkpointing, `early_stopping`, `until` and the `callbacks` entries,
    each with the param key its errors point at."""
    name = step.name
    made: list[tuple[Any, str]] = []
    for spec in step.callback_specs:
        made.append((_build_callback(name, spec), spec.key))
    checkpoints = [c for c, _ in made if isinstance(c, ModelCheckpoint)]
    if len(checkpoints) > 1:
        raise param_error(name, "callbacks", "names ModelCheckpoint twice")
    if not checkpoints:
        try:
            made.insert(0, (ModelCheckpoint(step.monitor, save_top_k=step.save_top_k), "monitor"))
        except ConfigError as error:
            raise param_error(name, "save_top_k", error.message) from None
    elif step.monitor or step.save_top_k != 1:
        raise param_error(
            name,
            "monitor" if step.monitor else "save_top_k",
            "is also set by the ModelCheckpoint in `callbacks`",
            "set it in one place",
        )
    if step.early_stopping:
        try:
            made.append((EarlyStopping(**step.early_stopping), "early_stopping"))
        except (TypeError, ConfigError) as exc:
            raise param_error(name, "early_stopping", str(exc)) from None
    if step.until_rule is not None:
        rule = step.until_rule
        made.append(
            (
                Transition(rule.metric, rule.above, rule.below, rule.mode, rule.required),
                "until.metric",
            )
        )
    return [c for c, _ in made], [k for _, k in made]


def model_checkpoint(parts: Parts) -> ModelCheckpoint:
    return next(c for c in parts.callbacks if isinstance(c, ModelCheckpoint))


def transition(parts: Parts) -> Transition | None:
    return next((c for c in parts.callbacks if isinstance(c, Transition)), None)


def build_loaders(
    step: Any, train_set: Any, val_set: Any, data: Any, shard: tuple[int, int] | None, on_cuda: bool
) -> Loaders:
    """The train loader (an EpochSampler: the step's seed + epoch, resumable at any batch)
    and the val loader. The step's `num_workers`, `persistent_workers` and `pin_memory`
    apply on both routes; unset, a Data permanence's own settings do (the splits-file route:
    no workers, pinned on CUDA)."""
    p = step.params
    batch = step.batch_size or (data.batch_size if data is not None else 64)
    tag = bool(data is not None and data.seed_samples)
    sampler = EpochSampler(len(train_set), True, step.seed, shard, tag=tag)
    val_sampler = EpochSampler(len(val_set), False, 0, tag=tag)
    settings = {
        "num_workers": p.get("num_workers"),
        "persistent_workers": p.get("persistent_workers"),
        "pin_memory": p.get("pin_memory"),
    }
    if data is not None:
        pinned = settings["pin_memory"]
        pinned = data.pin_memory is not False if pinned is None else pinned
        return Loaders(
            train=data.loader("train", batch_size=batch, sampler=sampler, **settings),
            sampler=sampler,
            val=data.loader("val", batch_size=VAL_BATCH, sampler=val_sampler, **settings),
            batch_size=batch,
            pinned=on_cuda and pinned,
        )
    pin = on_cuda if settings["pin_memory"] is None else on_cuda and settings["pin_memory"]
    options = {
        "num_workers": settings["num_workers"] or 0,
        "persistent_workers": bool(settings["persistent_workers"]),
        "pin_memory": pin,
    }
    return Loaders(
        train=build_loader(train_set, batch, sampler, **options),
        sampler=sampler,
        val=build_loader(val_set, VAL_BATCH, val_sampler, **options),
        batch_size=batch,
        pinned=pin,
    )
