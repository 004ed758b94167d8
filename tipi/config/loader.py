"""Reads a pipeline TOML file into a PipelineSpec, applying `--set` overrides first."""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from tipi.config.lines import key_lines
from tipi.config.matrix import expand
from tipi.config.metrics import declare_metrics
from tipi.config.schema import (
    LAUNCHERS,
    PERMANENCE_KEYS,
    PIPELINE_KEYS,
    PIPELINE_META_KEYS,
    PROCESS_KEYS,
    RESOURCE_KEYS,
    PermanenceSpec,
    PipelineSpec,
    ProcessSpec,
)
from tipi.config.toml import check_values, parse_toml, read_text
from tipi.errors import ConfigError, Location
from tipi.paths import NAME_RULE, is_name
from tipi.suggest import did_you_mean


def load_pipeline(
    file: Path,
    *,
    name: str,
    root: Path,
    overrides: Iterable[str] = (),
    folder: Path | None = None,
    text: str | None = None,
) -> PipelineSpec:
    """Parse `file` and return the pipeline it declares.

    Args:
        file: the TOML file (usually `pipelines/<name>/pipeline.toml`).
        name: the pipeline's name (its folder's name).
        root: the project root; relative artifact paths resolve against it.
        overrides: `process.param=value` strings; values are parsed as TOML.
        folder: the pipeline folder whose `*.py` define local types (default: file's folder).
        text: the file's text as read earlier (a make runs steps with the text it planned
            with, never a second read that could differ).

    Raises:
        ConfigError: unreadable file, TOML syntax error, unknown or mistyped keys.
    """
    if text is None:
        text = read_text(file)
    data = parse_toml(text, file)
    lines = key_lines(text)
    overridden = apply_overrides(data, overrides)
    check_values(data, (), file, lines)
    spec_base = PipelineSpec(
        name=name,
        file=file,
        root=root,
        permanences={},
        processes={},
        key_lines=lines,
        overridden=frozenset(overridden),
    )
    _check_keys(data, PIPELINE_KEYS, (), spec_base, "a pipeline file")
    permanences = {
        n: _permanence(n, t, spec_base) for n, t in _tables(data, "permanences", spec_base)
    }
    tables = dict(_tables(data, "processes", spec_base))
    processes = {n: _process(n, t, spec_base) for n, t in tables.items()}
    _check_after(replace(spec_base, processes=processes))
    processes, domains, globs, files = expand(processes, tables, spec_base)
    meta = _meta(data.get("pipeline", {}), spec_base)
    spec = PipelineSpec(
        name=name,
        file=file,
        root=root,
        permanences=permanences,
        processes=processes,
        key_lines=lines,
        overridden=frozenset(overridden),
        description=str(meta.get("description", "")),
        folder=folder,
        source=text,
        rerun_on_env=meta.get("rerun_on_env", False),
        matrix_domains=domains,
        matrix_globs=tuple(globs),
        matrix_files=tuple(files),
    )
    return spec


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `train.lr=0.01` into (["train", "lr"], 0.01); the value is parsed as TOML.

    A value that is not valid TOML is taken as a string, so `--set train.name=run1` works.
    """
    key, sep, raw = text.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(
            f"bad override '{_shown(text)}'",
            hint="write --set STEP.PARAM=VALUE, e.g. --set train.lr=0.01",
            location=Location(key="--set"),
        )
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return parts, value


def _shown(override: str) -> str:
    """An override as an error may echo it: a secret param's value hidden (tipi.redact)."""
    from tipi.redact import redact_command

    return redact_command([override])[0]


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> set[tuple[str, ...]]:
    """Write each override into `data` in place; return the key paths it set.

    `STEP.PARAM=V` targets a process (or, failing that, a permanence) named STEP;
    `processes.STEP.PARAM=V` and `permanences.NAME.PARAM=V` say which explicitly.
    Deeper keys (`train.optimizer.lr=...`) set nested tables.
    """
    touched: set[tuple[str, ...]] = set()
    for text in overrides:
        parts, value = parse_override(text)
        section, name, keys = _override_target(data, parts, text)
        params = data[section][name].setdefault("params", {})
        target = params
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise ConfigError(
                    f"cannot set '{_shown(text)}': {key} is not a table",
                    location=Location(key="--set"),
                )
        target[keys[-1]] = copy.deepcopy(value)
        touched.add((section, name, "params", *keys))
    return touched


def _override_target(
    data: dict[str, Any], parts: list[str], text: str
) -> tuple[str, str, list[str]]:
    if parts[0] in ("processes", "permanences") and len(parts) >= 3:
        section, name, keys = parts[0], parts[1], parts[2:]
        if name in data.get(section, {}):
            return section, name, keys
        candidates = list(data.get(section, {}))
    else:
        name, keys = parts[0], parts[1:]
        in_processes = name in data.get("processes", {})
        in_permanences = name in data.get("permanences", {})
        if in_processes and in_permanences:
            raise ConfigError(
                f"override '{_shown(text)}' is ambiguous: '{name}' is a process and a permanence",
                hint=f"write --set processes.{_shown(text)} or --set permanences.{_shown(text)}",
                location=Location(key="--set"),
            )
        if in_processes or in_permanences:
            return ("processes" if in_processes else "permanences"), name, keys
        candidates = [*data.get("processes", {}), *data.get("permanences", {})]
    raise ConfigError(
        f"override '{_shown(text)}' names no step or permanence '{name}'",
        hint=did_you_mean(name, candidates) or f"known: {', '.join(candidates) or 'none'}",
        location=Location(key="--set"),
    )


def _tables(data: Mapping[str, Any], section: str, spec: PipelineSpec) -> list[tuple[str, dict]]:
    tables = data.get(section, {})
    if not isinstance(tables, dict):
        raise ConfigError(f"'{section}' must be a table", location=spec.locate(section))
    result = []
    for name, table in tables.items():
        if not is_name(name):
            kind = "step" if section == "processes" else "permanence"
            raise ConfigError(
                f"{name!r} is not a valid {kind} name",
                hint=f"names are identifiers ({NAME_RULE}); they become parts of paths",
                location=spec.locate(section, name),
            )
        if not isinstance(table, dict):
            raise ConfigError(
                f"'{section}.{name}' must be a table",
                hint=f'write [{section}.{name}] followed by type = "..."',
                location=spec.locate(section, name),
            )
        result.append((name, table))
    return result


def _meta(meta: Any, spec: PipelineSpec) -> Mapping[str, Any]:
    """The `[pipeline]` table, checked."""
    if not isinstance(meta, dict):
        raise ConfigError(
            "'pipeline' must be a table", hint="write [pipeline]", location=spec.locate("pipeline")
        )
    _check_keys(meta, PIPELINE_META_KEYS, ("pipeline",), spec, "the [pipeline] table")
    rerun = meta.get("rerun_on_env", False)
    if not isinstance(rerun, bool):
        raise ConfigError(
            f"'rerun_on_env' must be true or false, not {rerun!r}",
            location=spec.locate("pipeline", "rerun_on_env"),
        )
    return meta


def _check_keys(
    table: Mapping[str, Any],
    allowed: tuple[str, ...],
    path: tuple[str, ...],
    spec: PipelineSpec,
    what: str,
) -> None:
    for key in table:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f"allowed: {', '.join(allowed)}"
            raise ConfigError(
                f"unknown key '{key}' in {what}", hint=hint, location=spec.locate(*path, key)
            )


def _required_type(table: Mapping[str, Any], path: tuple[str, ...], spec: PipelineSpec) -> str:
    value = table.get("type")
    if not isinstance(value, str) or not value:
        raise ConfigError(
            "missing 'type'" if value is None else "'type' must be a non-empty string",
            hint='add type = "ClassName" (a class beside pipeline.toml, built-in or module:Class)',
            location=spec.locate(*path, "type") if value is not None else spec.locate(*path),
        )
    return value


def _params(table: Mapping[str, Any], path: tuple[str, ...], spec: PipelineSpec) -> dict[str, Any]:
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError("'params' must be a table", location=spec.locate(*path, "params"))
    return params


def _permanence(name: str, table: dict[str, Any], spec: PipelineSpec) -> PermanenceSpec:
    path = ("permanences", name)
    _check_keys(table, PERMANENCE_KEYS, path, spec, f"permanence '{name}'")
    return PermanenceSpec(
        name=name,
        type=_required_type(table, path, spec),
        params=_params(table, path, spec),
        location=spec.locate(*path),
        description=str(table.get("description", "")),
    )


def _process(name: str, table: dict[str, Any], spec: PipelineSpec) -> ProcessSpec:
    path = ("processes", name)
    _check_keys(table, PROCESS_KEYS, path, spec, f"process '{name}'")
    after = table.get("after", [])
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise ConfigError(
            "'after' must be a list of step names", location=spec.locate(*path, "after")
        )
    for flag in ("volatile", "force"):
        if not isinstance(table.get(flag, False), bool):
            raise ConfigError(f"'{flag}' must be true or false", location=spec.locate(*path, flag))
    nproc, launcher = _launch(table, path, spec)
    resources = _resources(table, path, spec)
    gpu = int(resources.get("gpu", 0))
    if gpu and nproc > gpu:  # rank `gpu` would be sent to a cuda:N that is not there
        raise ConfigError(
            f"nproc = {nproc} but resources.gpu = {gpu}: each rank needs a GPU of its own",
            hint=f"set resources = {{ gpu = {nproc} }}, or nproc = {gpu}",
            location=spec.locate(*path, "nproc"),
        )
    outputs, metrics = declare_metrics(
        _paths(table, "metrics", path, spec),
        _paths(table, "outputs", path, spec),
        lambda key: spec.locate(*path, "metrics", key),
    )
    return ProcessSpec(
        name=name,
        type=_required_type(table, path, spec),
        params=_params(table, path, spec),
        location=spec.locate(*path),
        inputs=_paths(table, "inputs", path, spec),
        outputs=outputs,
        metrics=metrics,
        after=tuple(after),
        volatile=table.get("volatile", False),
        force=table.get("force", False),
        resources=resources,
        nproc=nproc,
        launcher=launcher,
        description=str(table.get("description", "")),
    )


def _resources(
    table: Mapping[str, Any], path: tuple[str, ...], spec: PipelineSpec
) -> dict[str, float]:
    """`resources = { gpu = 1, cpu = 2, mem_gb = 8 }`: what the step needs while it runs."""
    value = table.get("resources", {})
    if not isinstance(value, dict):
        raise ConfigError(
            "'resources' must be a table",
            hint="resources = { gpu = 1, cpu = 2, mem_gb = 8 }",
            location=spec.locate(*path, "resources"),
        )
    _check_keys(value, RESOURCE_KEYS, (*path, "resources"), spec, f"resources of '{path[1]}'")
    for key, amount in value.items():
        number = isinstance(amount, int | float) and not isinstance(amount, bool)
        # TOML's nan and inf are floats too: int(nan) below would be an internal error.
        if not number or not math.isfinite(amount) or amount < 0:
            raise ConfigError(
                f"resource '{key}' must be a number >= 0, not {amount!r}",
                location=spec.locate(*path, "resources", key),
            )
        if key in ("gpu", "retries") and amount != int(amount):
            raise ConfigError(
                f"'{key}' must be a whole number" + (" of devices" if key == "gpu" else ""),
                location=spec.locate(*path, "resources", key),
            )
    return {k: float(v) for k, v in value.items() if v}


def _launch(table: Mapping[str, Any], path: tuple[str, ...], spec: PipelineSpec) -> tuple[int, str]:
    """`nproc = N` and/or `launcher = "torchrun"`: one process per rank under torch.distributed."""
    nproc = table.get("nproc", 1)
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(
            f"'nproc' must be a whole number >= 1, not {nproc!r}",
            location=spec.locate(*path, "nproc"),
        )
    launcher = table.get("launcher", "torchrun" if nproc > 1 else "none")
    if launcher not in LAUNCHERS:
        raise ConfigError(
            f"unknown launcher {launcher!r}",
            hint=f"use one of: {', '.join(repr(x) for x in LAUNCHERS)}",
            location=spec.locate(*path, "launcher"),
        )
    if launcher == "none" and nproc > 1:
        raise ConfigError(
            f'nproc = {nproc} needs launcher = "torchrun"',
            hint='leave launcher out, or set it to "torchrun"',
            location=spec.locate(*path, "launcher"),
        )
    return nproc, launcher


def _paths(
    table: Mapping[str, Any], key: str, path: tuple[str, ...], spec: PipelineSpec
) -> dict[str, str]:
    """`{name = "path"}` as is; a list `["a.txt"]` names each entry by its own path; a list
    in the table (`models = ["a.pt", "b.pt"]`) names its entries `models[0]`, `models[1]`."""
    value = table.get(key, {})
    if isinstance(value, list):
        value = {str(item): item for item in value}
    if isinstance(value, dict):
        value = {
            f"{name}[{i}]" if isinstance(entry, list) else name: item
            for name, entry in value.items()
            for i, item in (enumerate(entry) if isinstance(entry, list) else [(0, entry)])
        }
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(
            f'\'{key}\' must be a table of name = "path" or name = ["path", ...], '
            "or a list of paths",
            hint=f'{key} = {{ data = "out/data.pt" }}',
            location=spec.locate(*path, key),
        )
    return dict(value)


def _check_after(spec: PipelineSpec) -> None:
    for process in spec.processes.values():
        for other in process.after:
            if other not in spec.processes:
                raise ConfigError(
                    f"'after' names unknown step '{other}'",
                    hint=did_you_mean(other, spec.processes)
                    or f"steps: {', '.join(spec.processes)}",
                    location=spec.locate("processes", process.name, "after"),
                )
