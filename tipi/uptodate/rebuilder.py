"""The rebuilder: a pure function from what a step is now and what it was to run-or-skip."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tipi.identity.fingerprint import step_fingerprint
from tipi.identity.trace import Trace
from tipi.uptodate.reasons import Reason


@dataclass(frozen=True)
class StepFacts:
    """Everything the rebuilder needs to know of a step now. Paths are project-relative.

    Attributes:
        name: the step's name.
        type: its declared `type`.
        code: its code fingerprint.
        params: canonical params.
        inputs: input path → current content hash (None: missing).
        pending: input path → producing step, for inputs whose producer will run first (only
            in a dry run: their content cannot be known yet).
        remade: input path → producing step, for inputs whose producer ran in this make.
        permanences: declared permanence name → canonical config, result-relevant ones only.
        outputs: output path → current content hash (None: missing).
        forced: -f/-F or `force = true`.
        volatile: `volatile = true`.
        environment: versions of Python, tipi and the packages its code imports.
        rerun_on_env: a changed environment reruns the step (else it is only reported).
        codes: code fingerprint → closure (unit → digest), to name the units that changed.
        inert: params that only name permanences which do not change results (loggers,
            progress; planning.py `_inert_params`): not in `params` nor in the fingerprint,
            recorded in the trace (`extra["inert"]`) so that a change is noted, not acted on.
    """

    name: str
    type: str
    code: str
    params: Mapping[str, Any]
    inputs: Mapping[str, str | None]
    outputs: Mapping[str, str | None]
    permanences: Mapping[str, Any] = field(default_factory=dict)
    pending: Mapping[str, str] = field(default_factory=dict)
    remade: Mapping[str, str] = field(default_factory=dict)
    forced: bool = False
    volatile: bool = False
    force_reason: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    rerun_on_env: bool = False
    codes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    inert: Mapping[str, Any] = field(default_factory=dict)
    input_names: Mapping[str, str] = field(default_factory=dict)

    def used_configs(self, used: list[str] | Mapping[str, Any]) -> dict[str, Any]:
        """Current configs of the permanences named in `used` (absent ones as None)."""
        return {name: self.permanences.get(name) for name in used}

    def fingerprint(self, used: list[str] | Mapping[str, Any], names: bool = True) -> str:
        """The fingerprint, given the permanences the step uses (`names`: with the inputs'
        names, as traces are made now; without, to compare a trace of an older tipi)."""
        return step_fingerprint(
            self.type,
            self.code,
            self.params,
            self.inputs,
            self.used_configs(used),
            self.input_names if names else None,
        )


@dataclass(frozen=True)
class Decision:
    """Run or skip, and every reason for it (the first one is the one shown by default)."""

    run: bool
    reasons: tuple[Reason, ...]

    @functools.cached_property
    def sentences(self) -> tuple[str, ...]:
        """The reasons as sentences (computed once: UP_TO_DATE is shared by most steps)."""
        return tuple(str(r) for r in self.reasons)

    def explain(self) -> tuple[str, ...]:
        """The reasons as sentences."""
        return self.sentences


UP_TO_DATE = Decision(False, (Reason("up-to-date"),))
NAMES = "names"  # a trace's extra: the step's input name → path, as its fingerprint counted


def decide(facts: StepFacts, trace: Trace | None) -> Decision:
    """Decide whether a step must run. Pure: reads its arguments, touches nothing.

    A step is up to date when it is neither forced nor volatile, its trace's fingerprint
    equals the current one (type, code, params, input contents, used permanences' configs)
    and every output exists with the hash recorded after its last run.
    """
    reasons: list[Reason] = []
    if facts.forced:
        reasons.append(Reason("forced", facts.force_reason))
    if facts.volatile:
        reasons.append(Reason("volatile"))
    reasons += [Reason("upstream", producer) for producer in sorted(set(facts.pending.values()))]
    if trace is None:
        reasons.append(Reason("new"))
        return Decision(True, tuple(reasons))
    # The common case first: an unchanged fingerprint makes the part-by-part diff unnecessary.
    named = NAMES in trace.extra  # a trace of an older tipi was made without the names
    same = not facts.pending and facts.fingerprint(trace.permanences, named) == trace.fingerprint
    if not same and not facts.pending and facts.inert and "inert" not in trace.extra:
        same = _legacy_fingerprint(facts, trace) == trace.fingerprint
    if not same:
        changed = changes(facts, trace)
        reasons += changed or ([] if facts.pending else [Reason("fingerprint")])
    reasons += _output_problems(facts, trace)
    environment = environment_changes(facts, trace)
    if facts.rerun_on_env:
        reasons += environment
    if reasons:
        return Decision(True, tuple(reasons))
    notes = [*environment, *inert_changes(facts, trace)]
    if notes:  # reported, not acted on
        return Decision(False, (Reason("up-to-date"), *notes))
    return UP_TO_DATE


def changes(facts: StepFacts, trace: Trace) -> list[Reason]:
    reasons: list[Reason] = []
    if facts.type != trace.type:
        reasons.append(Reason("type", facts.name, trace.type, facts.type))
    elif facts.code != trace.code:
        reasons += code_reasons(facts.type, trace.code, facts.code, facts.codes)
    then = inert_then(facts, trace)
    reasons += diff_params(facts.params, {k: v for k, v in trace.params.items() if k not in then})
    for path, digest in facts.inputs.items():
        if path in facts.pending:
            continue
        if path not in trace.inputs:
            reasons.append(Reason("input-new", path))
        elif digest != trace.inputs[path]:
            producer = facts.remade.get(path)
            reasons.append(
                Reason("upstream-changed", path, new=producer)
                if producer
                else Reason("input-changed", path)
            )
    reasons += [Reason("input-dropped", p) for p in trace.inputs if p not in facts.inputs]
    then = trace.extra.get(NAMES)
    if then is not None and then != facts.input_names:
        # Only what the file reasons above do not say already: a name for a file the step
        # read before under another name (or still reads), not a new or dropped file.
        reasons += [
            Reason("input-name", key, old, new)
            for key in sorted(set(then) | set(facts.input_names))
            if (old := then.get(key)) != (new := facts.input_names.get(key))
            and (old is None or old in facts.inputs)
            and (new is None or new in trace.inputs)
        ]
    for name, old in trace.permanences.items():
        new = facts.permanences.get(name)
        if new is None:
            reasons.append(Reason("permanence-gone", name))
        elif new != old:
            detail = _config_diff(old, new, facts.codes)
            reasons.append(Reason("permanence-changed", name, new=detail))
    return reasons


def code_reasons(
    subject: str, old: str, new: str, codes: Mapping[str, Mapping[str, str]]
) -> list[Reason]:
    """One reason per unit of code that changed between the fingerprints `old` and `new`
    ("code changed: pipelines/x/models.py: Net.forward"); one for `subject` as a whole when
    the closures are not both known."""
    before, after = codes.get(old), codes.get(new)
    if before is None or after is None:
        return [Reason("code", subject)]
    found = [Reason("code-unit", unit, new=how) for unit, how in changed_units(before, after)]
    return found or [Reason("code", subject)]


def inert_then(facts: StepFacts, trace: Trace) -> dict[str, Any]:
    """The params the trace's run kept out of its fingerprint (StepFacts.inert). A trace of
    an older tipi kept every param in it: there, the params that are inert now."""
    recorded = trace.extra.get("inert")
    if isinstance(recorded, Mapping):
        return dict(recorded)
    return {k: trace.params[k] for k in facts.inert if k in trace.params}


def inert_changes(facts: StepFacts, trace: Trace) -> list[Reason]:
    """One note per inert param whose value differs from the trace's run: another logger
    was chosen, which does not rerun the step."""
    old = inert_then(facts, trace)
    return [
        Reason("param-inert", key, old.get(key), facts.inert.get(key))
        for key in sorted(set(old) | set(facts.inert))
        if old.get(key) != facts.inert.get(key)
    ]


def _legacy_fingerprint(facts: StepFacts, trace: Trace) -> str:
    """The fingerprint as an older tipi made it, its inert params among the others (with
    the trace's values: which logger that run chose does not matter), so that a trace made
    before params could be inert does not rerun its step once."""
    params = dict(sorted({**facts.params, **inert_then(facts, trace)}.items()))
    return step_fingerprint(
        facts.type, facts.code, params, facts.inputs, facts.used_configs(trace.permanences)
    )


def environment_changes(facts: StepFacts, trace: Trace) -> list[Reason]:
    """One reason per package whose version differs from the trace's."""
    if not trace.environment or trace.environment == facts.environment:
        return []  # runs recorded before environments were: nothing to compare
    return [
        Reason("environment", name, old, new)
        for name, old, new in env_changes(trace.environment, facts.environment)
    ]


def diff_params(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Reason]:
    """One reason per changed, added or removed key, in key order."""
    reasons = []
    for key in sorted(set(new) | set(old)):
        if key not in old:
            reasons.append(Reason("param-added", key, new=new[key]))
        elif key not in new:
            reasons.append(Reason("param-removed", key, old=old[key]))
        elif new[key] != old[key]:
            reasons.append(Reason("param-changed", key, old[key], new[key]))
    return reasons


def _config_diff(
    old: Mapping[str, Any], new: Mapping[str, Any], codes: Mapping[str, Mapping[str, str]]
) -> str:
    if old.get("type") != new.get("type"):
        return f"type {old.get('type')} → {new.get('type')}"
    diffs = diff_params(new.get("params", {}), old.get("params", {}))
    if diffs:
        return "; ".join(str(d).removeprefix("params changed: ") for d in diffs)
    if old.get("code") != new.get("code"):
        found = code_reasons(str(new.get("type")), old.get("code"), new.get("code"), codes)
        return "; ".join(str(r) for r in found)
    return ""


def _output_problems(facts: StepFacts, trace: Trace) -> list[Reason]:
    reasons = []
    for path, digest in facts.outputs.items():
        if digest is None:
            reasons.append(Reason("output-missing", path))
        elif path not in trace.outputs:
            reasons.append(Reason("output-new", path))
        elif trace.outputs[path] != digest:
            reasons.append(Reason("output-modified", path))
    return reasons


def changed_units(old: Mapping[str, str], new: Mapping[str, str]) -> list[tuple[str, str]]:
    """(unit, how) for each unit of code that differs: "changed", "added" or "removed"."""
    found = [(u, "changed") for u in new if u in old and old[u] != new[u]]
    found += [(u, "added") for u in new if u not in old]
    found += [(u, "removed") for u in old if u not in new]
    return sorted(found)


def env_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(package, old version, new version) for each difference; "" where absent."""
    return [
        (name, old.get(name, ""), new.get(name, ""))
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]
