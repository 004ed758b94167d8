"""Binds a PipelineSpec to classes: resolves types, checks params, interpolates paths."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from tipi.config.matrix import bind_matrix_paths, path_name
from tipi.config.matrix_sources import check_sources
from tipi.config.metrics import metrics_of
from tipi.config.params import check_params
from tipi.config.schema import PermanenceSpec, PipelineSpec, ProcessSpec
from tipi.errors import ConfigError
from tipi.permanence import Permanence
from tipi.process import PipelineProcess
from tipi.registry import Registry


@dataclass(frozen=True)
class ResolvedPermanence:
    """A permanence ready to build: its class and checked params."""

    spec: PermanenceSpec
    cls: type[Permanence]
    params: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class ResolvedStep:
    """A process ready to run: class, checked params, absolute input and output paths."""

    spec: ProcessSpec
    cls: type[PipelineProcess]
    params: Mapping[str, Any]
    inputs: Mapping[str, Path]
    outputs: Mapping[str, Path]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def metrics(self) -> dict[str, Path]:
        """name → path of the outputs that are metrics files (the class's, then the TOML's)."""
        return metrics_of(self.cls, self.spec.metrics, self.outputs)


@dataclass(frozen=True)
class ResolvedPipeline:
    """Everything needed to run a pipeline, validated before anything runs."""

    spec: PipelineSpec
    permanences: Mapping[str, ResolvedPermanence]
    steps: Mapping[str, ResolvedStep]
    registry: Registry


def resolve_pipeline(spec: PipelineSpec, registry: Registry | None = None) -> ResolvedPipeline:
    """Resolve every type and check every params table of `spec`.

    Raises:
        DefinitionError: a type is unknown or of the wrong kind.
        ConfigError: a params table does not fit its class, or a path template is bad.
    """
    registry = registry or Registry(spec.directory, spec.root)
    permanences = {}
    for name, perm in spec.permanences.items():
        path = ("permanences", name)
        cls = registry.resolve(perm.type, Permanence, spec.locate(*path, "type"))
        params = _rooted(
            spec.root,
            check_params(
                cls,
                perm.params,
                lambda key, p=path: spec.locate(*p, "params", key) if key else spec.locate(*p),
            ),
        )
        permanences[name] = ResolvedPermanence(perm, cls, params)
    bound = []
    for name, proc in spec.processes.items():
        path = ("processes", name)
        cls = registry.resolve(proc.type, PipelineProcess, spec.locate(*path, "type"))
        params = _rooted(
            spec.root,
            check_params(
                cls,
                proc.params,
                lambda key, p=path: spec.locate(*p, "params", key) if key else spec.locate(*p),
            ),
        )
        outputs = _bind(spec, proc, {**cls.outputs, **proc.outputs}, params, "outputs")
        bound.append((proc, cls, params, outputs))
    if spec.matrix_files or spec.matrix_globs:  # values must come from source files
        check_sources(spec, {proc.name: outputs for proc, _, _, outputs in bound})
    # An input that gathers a matrix key keeps the combinations some step produces.
    produced = set()
    if spec.matrix_domains:
        produced = {p for *_, outputs in bound for p in outputs.values()}
    steps = {}
    for proc, cls, params, outputs in bound:
        templates = {**cls.inputs, **proc.inputs}
        inputs = _bind(spec, proc, templates, params, "inputs", produced)
        steps[proc.name] = ResolvedStep(proc, cls, params, inputs, outputs)
    return ResolvedPipeline(spec, permanences, steps, registry)


def _bind(
    spec: PipelineSpec,
    proc: ProcessSpec,
    templates: Mapping[str, str],
    params: Mapping[str, Any],
    section: str,
    produced: Collection[Path] = (),
) -> dict[str, Path]:
    bound = {}
    name = path_name(proc)
    for key, template in templates.items():
        entries = {key: template}
        if spec.matrix_domains:
            entries = bind_matrix_paths(proc, key, template, section, spec.matrix_domains, spec)
        paths = {}
        for entry, text in entries.items():
            try:
                text = interpolate(text, name, spec.name, params)
            except ValueError as exc:
                raise ConfigError(
                    f"bad placeholder in path '{template}': {exc}",
                    hint="placeholders: {name}, {pipeline}, {params.NAME}, a matrix key; "
                    "write {{ }} for braces",
                    location=spec.locate("processes", proc.name, section, key),
                ) from None
            paths[entry] = _absolute(spec.root, text)
        if key not in paths:  # gathered: the combinations some step makes, if any
            paths = {e: p for e, p in paths.items() if p in produced} or paths
        bound.update(paths)
    return bound


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PLAIN = (str, int, float, bool, PurePath)


def interpolate(template: str, name: str, pipeline: str, params: Mapping[str, Any]) -> str:
    """`template` with `{name}`, `{pipeline}` and `{params.KEY}` replaced (`{{`, `}}`: braces).

    Nothing else is evaluated: no attribute chains, indexing, conversions or format specs,
    and a param interpolates only when its value is plain (text, number, path).

    Raises:
        ValueError: any other placeholder, or a param that is unknown or not plain.
    """

    def field(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        inner = match.group(1)
        if inner is None:
            raise ValueError(f"unmatched '{token}'")
        if inner == "name":
            return name
        if inner == "pipeline":
            return pipeline
        key = inner.removeprefix("params.")
        if key == inner or not key.isidentifier():
            raise ValueError(f"unknown placeholder {{{inner}}}")
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ValueError(f"no param '{key}' (params: {known})")
        value = params[key]
        if not isinstance(value, _PLAIN):
            raise ValueError(f"param '{key}' is a {type(value).__name__}, not text or a number")
        return str(value)

    return _PLACEHOLDER.sub(field, template)


def _rooted(root: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Relative `Path` params (a log folder, a checkpoint file) are relative to the project
    root, like artifact paths, not to wherever tipi was started from."""
    return {
        key: root / value if isinstance(value, PurePath) and not value.is_absolute() else value
        for key, value in params.items()
    }


def _absolute(root: Path, text: str) -> Path:
    """`root/text` normalized (no `..`), without resolving symlinks."""
    # on strings: pathlib parsed each path three times (~15 µs, two paths a step)
    return Path(os.path.normpath(os.path.join(root, os.path.expanduser(text))))
