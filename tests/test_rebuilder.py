"""The rebuilder as a truth table: each change gives its reason; nothing else reruns."""

from __future__ import annotations

import dataclasses

import pytest

from tipi.identity.trace import Trace
from tipi.uptodate.rebuilder import NAMES, StepFacts, decide

NET = {"type": "Network", "params": {"width": 8}, "code": "c1"}
FACTS = StepFacts(
    name="train",
    type="Train",
    code="code1",
    params={"lr": 0.001, "epochs": 3},
    inputs={"data/x.pt": "h-x"},
    outputs={"models/m.pt": "h-m"},
    input_names={"data": "data/x.pt"},
    permanences={"net": NET, "data": {"type": "Data", "params": {}, "code": "c2"}},
)


def trace_of(facts: StepFacts, used=("net",), **changes) -> Trace:
    base = Trace(
        fingerprint=facts.fingerprint(list(used)),
        type=facts.type,
        code=facts.code,
        params=facts.params,
        inputs=facts.inputs,
        permanences=facts.used_configs(list(used)),
        outputs=facts.outputs,
        extra={NAMES: dict(facts.input_names)},
    )
    return dataclasses.replace(base, **changes)


def reasons(facts: StepFacts, trace: Trace | None) -> list[str]:
    decision = decide(facts, trace)
    return list(decision.explain()) if decision.run else []


def test_unchanged_step_is_up_to_date():
    decision = decide(FACTS, trace_of(FACTS))
    assert not decision.run
    assert decision.explain() == ("up to date",)


def test_other_permanences_do_not_matter_when_unused():
    changed = dataclasses.replace(FACTS, permanences={**FACTS.permanences, "data": {"x": 1}})
    assert reasons(changed, trace_of(FACTS)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"forced": True}, ["forced"]),
        ({"forced": True, "force_reason": "force = true"}, ["forced (force = true)"]),
        ({"volatile": True}, ["volatile: runs every time"]),
        ({"code": "code2"}, ["code of Train changed"]),
        ({"type": "Train2"}, ["type changed: Train → Train2"]),
        ({"params": {"lr": 0.01, "epochs": 3}}, ["params changed: lr 0.001 → 0.01"]),
        ({"params": {"lr": 0.001}}, ["params changed: epochs removed (was 3)"]),
        ({"params": {"lr": 0.001, "epochs": 3, "seed": 1}}, ["params changed: seed added (1)"]),
        ({"inputs": {"data/x.pt": "h-x2"}}, ["input data/x.pt changed"]),
        (
            {"inputs": {"data/x.pt": "h-x2"}, "remade": {"data/x.pt": "prepare"}},
            ["input data/x.pt changed: upstream 'prepare' made it again"],
        ),
        ({"inputs": {"data/x.pt": "h-x", "data/y.pt": "h-y"}}, ["new input data/y.pt"]),
        ({"inputs": {}}, ["input data/x.pt no longer used"]),
        ({"outputs": {"models/m.pt": None}}, ["output models/m.pt missing"]),
        (
            {"outputs": {"models/m.pt": "h-other"}},
            ["output models/m.pt was modified since it was made"],
        ),
        (
            {"outputs": {"models/m.pt": "h-m", "models/n.pt": "h"}},
            ["output models/n.pt was not made by the last run"],
        ),
        (
            {"permanences": {"net": {**NET, "params": {"width": 16}}}},
            ["permanence 'net' config changed: width 8 → 16"],
        ),
        (
            {"permanences": {"net": {**NET, "code": "c9"}}},
            ["permanence 'net' config changed: code of Network changed"],
        ),
        ({"permanences": {}}, ["permanence 'net' is no longer declared"]),
        (
            {"inputs": {"data/x.pt": None}, "pending": {"data/x.pt": "prepare"}},
            ["upstream 'prepare' will run first"],
        ),
    ],
)
def test_each_change_gives_its_reason(change, expected):
    assert reasons(dataclasses.replace(FACTS, **change), trace_of(FACTS)) == expected


def test_a_new_step_runs():
    assert reasons(FACTS, None) == ["new step: no record of an earlier run"]


def test_several_changes_are_all_listed_forced_first():
    facts = dataclasses.replace(
        FACTS, forced=True, params={"lr": 0.1, "epochs": 3}, outputs={"models/m.pt": None}
    )
    assert reasons(facts, trace_of(FACTS)) == [
        "forced",
        "params changed: lr 0.001 → 0.1",
        "output models/m.pt missing",
    ]


def test_a_fingerprint_mismatch_without_a_visible_cause_still_reruns():
    assert reasons(FACTS, trace_of(FACTS, fingerprint="stale")) == ["fingerprint changed"]


def test_the_rebuilder_is_pure():
    before = dataclasses.replace(FACTS)
    trace = trace_of(FACTS)
    decide(FACTS, trace)
    decide(FACTS, trace)
    assert before == FACTS
    assert trace == trace_of(FACTS)


def test_a_file_read_under_one_more_name_reruns_the_step():
    """The same files, one more input name for one of them: the step sees another input
    (Compare's arms are its inputs), so it is another run."""
    now = dataclasses.replace(FACTS, input_names={"data": "data/x.pt", "again": "data/x.pt"})
    assert reasons(now, trace_of(FACTS)) == ["inputs changed: again (none) → 'data/x.pt'"]
    renamed = dataclasses.replace(FACTS, input_names={"train": "data/x.pt"})
    assert reasons(renamed, trace_of(FACTS)) == [
        "inputs changed: data 'data/x.pt' → (none)",
        "inputs changed: train (none) → 'data/x.pt'",
    ]


def test_a_trace_made_before_names_counted_stays_up_to_date():
    """A trace of an older tipi has no names and its fingerprint none: the step is not rerun
    for the upgrade alone, and is when anything it did count changes."""
    old = trace_of(FACTS, fingerprint=FACTS.fingerprint(["net"], names=False), extra={})
    assert reasons(FACTS, old) == []
    changed = dataclasses.replace(FACTS, params={"lr": 0.01, "epochs": 3})
    assert reasons(changed, old) == ["params changed: lr 0.001 → 0.01"]
