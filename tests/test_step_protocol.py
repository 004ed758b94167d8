"""The step lifecycle behind a narrow protocol (step_protocol.py): the scheduler and the
dispatchers use `StepLifecycle` and nothing else of `Steps`; the run cache is given what it
uses; a step's start and end reach the reporter and the run record from one place."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

import tipi
from tests.make_helpers import PIPELINE, STEPS
from tipi.engine import Engine
from tipi.report import ListReporter
from tipi.step import Steps
from tipi.step_cache import RunCache
from tipi.step_protocol import StepLifecycle

PACKAGE = Path(tipi.__file__).parent
MEMBERS = {name for name in vars(StepLifecycle) if not name.startswith("_")}


def used_of_steps(module: str) -> set[str]:
    """The attributes a module reads of `steps` or `self.steps`."""
    tree = ast.parse((PACKAGE / module).read_text())
    used = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        holder = node.value
        if (isinstance(holder, ast.Name) and holder.id == "steps") or (
            isinstance(holder, ast.Attribute)
            and holder.attr == "steps"
            and isinstance(holder.value, ast.Name)
            and holder.value.id == "self"
        ):
            used.add(node.attr)
    return used


@pytest.mark.parametrize("module", ["dispatch.py", "schedule.py"])
def test_the_scheduler_and_the_dispatchers_see_the_steps_only_through_the_protocol(module):
    used = used_of_steps(module)
    assert used and used <= MEMBERS, used - MEMBERS


def test_dispatch_uses_eleven_members_where_it_used_fourteen():
    """Before: cache, claim, conclude, context, fail, finish, layout, options, plan, prepare,
    reporter, run_id, state (its staging), task. None of the lifecycle's stores now."""
    assert used_of_steps("dispatch.py") == {
        "claim",
        "conclude",
        "discard",
        "fail",
        "options",
        "plan",
        "prepare",
        "reporter",
        "resolve",
        "task",
        "would_run",
    }


@pytest.fixture
def made(project):
    project.pipeline("m", PIPELINE, steps=STEPS)
    return project


def test_steps_is_a_step_lifecycle(made):
    steps = Engine("m").build().steps
    for name in MEMBERS:
        assert hasattr(steps, name), name
        if inspect.isfunction(wanted := getattr(StepLifecycle, name)):
            asked = list(inspect.signature(wanted).parameters)
            have = list(inspect.signature(getattr(Steps, name)).parameters)
            assert have[: len(asked)] == asked, name  # Steps may take more, with defaults


def test_the_run_cache_is_given_what_it_uses():
    """No lifecycle to call back: it restores and keeps; recording is the lifecycle's."""
    parameters = inspect.signature(RunCache).parameters
    assert "steps" not in parameters
    source = (PACKAGE / "step_cache.py").read_text()
    assert "self.steps" not in source and "Protocol" not in source


class Told:
    """The make's run recorder, telling `events` (the reporter's list) what it is told."""

    def __init__(self, inner: Any, events: list) -> None:
        self.inner, self.events = inner, events

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def step_started(self, name: str) -> None:
        self.events.append(("recorded_started", name))
        self.inner.step_started(name)

    def step_ended(self, name: str, outcome: str, **kw: Any) -> None:
        self.events.append(("recorded_ended", name))
        self.inner.step_ended(name, outcome, **kw)


def told(reporter: ListReporter) -> list[tuple[str, str]]:
    build = Engine("m", reporter=reporter).build()
    build.steps.recorder = Told(build.steps.recorder, reporter.events)
    build.run()
    return [
        (kind, payload if isinstance(payload, str) else payload.name)
        for kind, payload in reporter.events
        if kind in ("step_started", "step_finished", "recorded_started", "recorded_ended")
    ]


def test_a_step_that_runs_is_told_started_and_ended_to_both(made):
    events = told(ListReporter())
    a = [e for e in events if e[1] == "a"]
    assert a == [
        ("recorded_started", "a"),
        ("step_started", "a"),
        ("recorded_ended", "a"),
        ("step_finished", "a"),
    ]


def test_a_restored_step_is_a_started_run_for_the_record_and_a_result_for_the_reporter(made):
    told(ListReporter())
    (made.root / "out" / "a.txt").unlink()  # its trace stays: the run cache restores it
    reporter = ListReporter()
    a = [e for e in told(reporter) if e[1] == "a"]
    assert a == [("recorded_started", "a"), ("recorded_ended", "a"), ("step_finished", "a")]
    finished = [p for k, p in reporter.events if k == "step_finished" and p.name == "a"]
    assert finished[0].outcome == "restored"
