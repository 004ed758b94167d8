"""Expands a process with `matrix = {...}` into one ordinary step per combination of values.

Design (issue 29):
    - Expansion happens right after the TOML is read (loader.load_pipeline), so resolution,
      the planner, fingerprints, traces, the run cache and every view see ordinary steps, named
      as config/instances.py says (`train[seed=0,lr=0.001]`), in product order (the first key
      outermost, each key's values in their declared order).
    - Values: a TOML list of strings, numbers or booleans; `{ glob = "data/raw/*.png" }`, the
      stems of the matching files (sorted by path; `**` recurses; two files of one stem are an
      error); `{ lines = "path/to/values.txt" }`, its non-blank lines not starting with `#`, as
      strings. Paths are relative to the project root. Both are read again at every plan: the
      lines file is one of the plan's dependencies (its stat signature), each glob's matches
      are recorded in the plan file and compared at the next make, fast path included
      (uptodate/planfile.py `is_current`).
    - Params: a string that is a placeholder alone (`"{seed}"`) takes the value with its TOML
      type; inside a longer string the value is formatted in (as in the instance's name).
      Only the instance's own keys are replaced; anything else stays as written.
    - Paths (resolve.py, `bind_matrix_paths` below): `{name}` of an instance is
      `train/0/0.001` (the process, then one folder per value), so class default outputs
      (`out/{pipeline}/{name}/model.pt`) differ per instance. Every output of an instance
      must contain `{name}` or every matrix key. In an input, an own key pairs (the
      instance's value); a key of another matrix process gathers: the input becomes one
      entry per value, `models[seed=0]`, `models[seed=1]`, ..., kept to the combinations some
      step produces (all of them when none is produced: source files). The process sees
      them flat in `self.inputs` and grouped in `self.input_lists` / `self.input_values`
      (process.py).
    - `after = ["train"]` names every instance of train (those with the same values on the
      keys both share, for an instance).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from tipi.config.instances import format_value, instance_name, value_problem
from tipi.config.matrix_sources import read_source
from tipi.config.schema import PipelineSpec, ProcessSpec
from tipi.errors import ConfigError
from tipi.suggest import did_you_mean

RESERVED = ("name", "pipeline", "params")
_FIELD = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_.]*)\}(?!\})")


def expand(
    processes: Mapping[str, ProcessSpec],
    tables: Mapping[str, Mapping[str, Any]],
    spec: PipelineSpec,
) -> tuple[dict[str, ProcessSpec], dict[str, tuple[Any, ...]], list[list[Any]], list[str]]:
    """(steps by name, each matrix key's values across processes, globs, lines files).

    `globs` is `[[absolute pattern, [matched files]], ...]`; `lines` the absolute paths of
    the lines files read.
    """
    globs: list[list[Any]] = []
    files: list[str] = []
    matrices = {
        name: _matrix(name, tables[name]["matrix"], spec, processes, globs, files)
        for name in processes
        if "matrix" in tables.get(name, {})
    }
    if not matrices:
        return dict(processes), {}, globs, files
    domains: dict[str, list[Any]] = {}
    for matrix in matrices.values():
        for key, values in matrix.items():
            known = domains.setdefault(key, [])
            known.extend(v for v in values if not any(_same(v, k) for k in known))
    instances: dict[str, list[ProcessSpec]] = {}
    for name, proc in processes.items():
        matrix = matrices.get(name)
        if matrix is None:
            instances[name] = [proc]
            continue
        made = []
        for combination in itertools.product(*matrix.values()):
            values = dict(zip(matrix, combination, strict=True))
            made.append(
                replace(
                    proc,
                    name=instance_name(name, values),
                    base=name,
                    values=values,
                    params=substitute(proc.params, values),
                )
            )
        instances[name] = made
    steps: dict[str, ProcessSpec] = {}
    for made in instances.values():
        for proc in made:
            after = _after(proc, instances)
            steps[proc.name] = replace(proc, after=after) if after != proc.after else proc
    return steps, {k: tuple(v) for k, v in domains.items()}, globs, files


def _same(a: Any, b: Any) -> bool:
    # Values are one when they are written alike: the text names the instance and its
    # folders. So 0.0 and -0.0 (equal as floats), 1, 1.0 and true are distinct values,
    # and the int 1 and a lines file's "1" are one (same name, same paths).
    return format_value(a) == format_value(b)


def _after(proc: ProcessSpec, instances: Mapping[str, list[ProcessSpec]]) -> tuple[str, ...]:
    names: list[str] = []
    for other in proc.after:
        for target in instances.get(other, [ProcessSpec(other, "", {}, proc.location)]):
            shared = target.values.keys() & proc.values.keys()
            if all(_same(target.values[k], proc.values[k]) for k in shared):
                names.append(target.name)
    return tuple(names)


def _matrix(
    name: str,
    table: Any,
    spec: PipelineSpec,
    processes: Mapping[str, ProcessSpec],
    globs: list[list[Any]],
    files: list[str],
) -> dict[str, list[Any]]:
    where = ("processes", name, "matrix")
    if not isinstance(table, dict) or not table:
        raise ConfigError(
            "'matrix' must be a table of key = [values]",
            hint="matrix = { seed = [0, 1, 2] }",
            location=spec.locate(*where),
        )
    matrix: dict[str, list[Any]] = {}
    for key, given in table.items():
        location = spec.locate(*where, key)
        if not key.isidentifier() or key in RESERVED:
            raise ConfigError(
                f"matrix key '{key}' is not allowed",
                hint="a matrix key is an identifier other than " + ", ".join(RESERVED),
                location=location,
            )
        if isinstance(given, dict):
            values = read_source(name, key, given, spec, location, processes, globs, files)
        elif isinstance(given, list):
            values = given
            if not values:
                raise ConfigError(
                    f"matrix key '{key}' of '{name}' has no values, so '{name}' would have "
                    "no instance",
                    hint=f"{key} = [0, 1, 2]; or remove the matrix for a single step",
                    location=location,
                )
        else:
            raise ConfigError(
                f"matrix key '{key}' needs a list of values, {{ glob = ... }} or {{ lines = ... }}",
                hint=f"{key} = [0, 1, 2]",
                location=location,
            )
        for value in values:
            problem = value_problem(value)
            if problem:
                raise ConfigError(f"bad value of matrix key '{key}': {problem}", location=location)
        texts = [format_value(v) for v in values]
        twice = next((t for i, t in enumerate(texts) if t in texts[:i]), None)
        if twice is not None:
            where = f" (from {next(iter(given.values()))})" if isinstance(given, dict) else ""
            raise ConfigError(
                f"matrix key '{key}' has the value {twice} twice{where}",
                hint="each value makes one instance: list it once",
                location=location,
            )
        matrix[key] = list(values)
    return matrix


def substitute(value: Any, values: Mapping[str, Any]) -> Any:
    """`value` (a params value) with the instance's `{key}` placeholders replaced; a string
    that is one placeholder alone takes the value itself, typed."""
    if isinstance(value, str):
        whole = _FIELD.fullmatch(value)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return _FIELD.sub(
            lambda m: format_value(values[m.group(1)]) if m.group(1) in values else m.group(0),
            value,
        )
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, values) for k, v in value.items()}
    return value


def path_name(proc: ProcessSpec) -> str:
    """What `{name}` stands for in the paths of `proc`: `train/0/0.001` for an instance."""
    if not proc.base:
        return proc.name
    return "/".join([proc.base, *(format_value(v) for v in proc.values.values())])


def check_placeholders(
    proc: ProcessSpec,
    key: str,
    template: str,
    section: str,
    domains: Mapping[str, Iterable[Any]],
    spec: PipelineSpec,
) -> list[str]:
    """The matrix keys `template` gathers (keys of other processes' matrices); raises on an
    unknown placeholder (with a did-you-mean), and on an output of an instance that does not
    tell its instances apart."""
    fields = _FIELD.findall(template) if "{" in template else []
    if not fields and not (proc.base and section == "outputs"):
        return []
    location = _Where(spec, ("processes", proc.name, section, key))
    known = [*proc.values, *domains, "name", "pipeline"]
    for field in fields:
        if field.startswith("params.") or field in known:
            continue
        raise ConfigError(
            f"unknown placeholder {{{field}}} in {section[:-1]} '{key}' ({template})",
            hint=did_you_mean(field, known) or f"placeholders: {', '.join(known)}",
            location=location(),
        )
    gathered = [f for f in dict.fromkeys(fields) if f in domains and f not in proc.values]
    if section == "outputs":
        if gathered:
            raise ConfigError(
                f"output '{key}' of '{proc.name}' names {{{gathered[0]}}}, "
                "which is not a key of its matrix",
                hint=did_you_mean(gathered[0], proc.values)
                or "an output is one path; gather values in an input",
                location=location(),
            )
        missing = [k for k in proc.values if k not in fields]
        if proc.base and "name" not in fields and missing:
            raise ConfigError(
                f"output '{key}' of matrix step '{proc.base}' does not contain "
                f"{{{missing[0]}}}: its instances would write the same path",
                hint=f"put every matrix key in it ({' '.join('{' + k + '}' for k in missing)}),"
                " or {name} (one folder per value)",
                location=location(),
            )
    return gathered


class _Where:
    """Where a key was written, looked up only for an error (`locate` costs ~10 us)."""

    def __init__(self, spec: PipelineSpec, key: tuple[str, ...]) -> None:
        self.spec, self.key = spec, key

    def __call__(self) -> Any:
        return self.spec.locate(*self.key)


def bind_matrix_paths(
    proc: ProcessSpec,
    key: str,
    template: str,
    section: str,
    domains: Mapping[str, tuple[Any, ...]],
    spec: PipelineSpec,
) -> dict[str, str]:
    """input/output key → template with the matrix placeholders replaced: one entry, or,
    for an input that gathers, one per combination (`models[seed=0]`)."""
    gathered = check_placeholders(proc, key, template, section, domains, spec)
    own = _FIELD.sub(
        lambda m: format_value(proc.values[m.group(1)]) if m.group(1) in proc.values else m[0],
        template,
    )
    if not gathered:
        return {key: own}
    entries = {}
    for combination in itertools.product(*(domains[k] for k in gathered)):
        values = dict(zip(gathered, combination, strict=True))
        text = _FIELD.sub(
            lambda m, v=values: format_value(v[m.group(1)]) if m.group(1) in v else m[0], own
        )
        entries[instance_name(key, values)] = text
    return entries


def gathered_keys(key: str) -> bool:
    """Whether an input key is an entry of a gathered input (`models[seed=0]`)."""
    return "[" in key and "=" in key
