"""Big runs: a run file read in one pass gives the record the general checks give, and
`tipi show` / `tipi diff` print the first --limit rows of a big run, saying how many more there
are and how to see them (never dropping rows silently)."""

from __future__ import annotations

import json
import math

import msgpack
import pytest

from tipi.runs.record import RunRecord, StepRun, record_problem
from tipi.runs.store import RunStore
from tipi.state.statefile import BrokenState

A, B = "20260101-100000-aaaa", "20260102-100000-bbbb"


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def _raw(steps: dict, **head) -> bytes:
    data = {"id": A, "pipeline": "numbers", "started": 1.0, "status": "ok", "steps": steps}
    data.update(head)
    return msgpack.packb({"tipi": "run", "version": 1, "data": data}, use_bin_type=True)


def _general(raw: bytes) -> RunRecord:
    """What the general checks alone read (the path before the one-pass reading)."""
    data = msgpack.unpackb(raw, raw=False, strict_map_key=False)["data"]
    assert record_problem(data) is None
    return RunRecord.from_data(data)


@pytest.mark.parametrize(
    "step",
    [
        {},
        {"type": "T", "params": {"i": 1, "s": "x", "b": True, "n": None, "f": 0.5}},
        {"params": {"nested": {"a": [1, 2]}, "bad": math.nan, "raw": b"\x01"}},
        {"outcome": "ran", "seconds": 2, "metrics": {"acc": 0.5, "flag": True, "x": "t"}},
        {"outcome": None, "seconds": 0.25, "logged": {"loss": math.inf, "ok": 3}},
        {"permanences": {"files": {"type": "L", "params": {"d": "logs"}}}, "error": "boom"},
        {"outcome": "not run", "extra": "a key of a newer tipi"},
    ],
)
def test_one_pass_reading_gives_what_the_general_checks_give(step):
    raw = _raw({"a": step, "b": {"type": "T"}})
    assert RunRecord.decode(raw) == _general(raw)


@pytest.mark.parametrize(
    "step",
    [
        {"outcome": "exploded"},
        {"seconds": "soon"},
        {"seconds": math.inf},
        {"params": [1]},
        {"metrics": {1: 2.0}},
        {"params": {1: "x"}},
        {"logged": []},
        {"type": 3},
        "not a map",
    ],
)
def test_a_malformed_step_is_still_refused(step):
    with pytest.raises(BrokenState):
        RunRecord.decode(_raw({"a": {"type": "T"}, "b": step}))


def test_a_malformed_head_is_refused_when_the_steps_are_fine():
    with pytest.raises(BrokenState):
        RunRecord.decode(_raw({"a": {"type": "T"}}, status="exploded"))


def _big_runs(root, n: int) -> None:
    store = RunStore(root)
    for k, run_id in enumerate((A, B)):
        steps = {
            f"s{i}": StepRun(
                "T",
                {"i": i, "lr": 0.1 * (k + 1)},
                "ran" if i % 4 else "restored",
                0.1,
                metrics={"loss": 1.0 / (i + k + 1)},
            )
            for i in range(n)
        }
        store.write(RunRecord(run_id, "numbers", 1.0 + k, "ok", 2.0 + k, steps=steps))


def test_show_prints_the_first_rows_counts_outcomes_and_says_what_it_left_out(numbers_project, cli):
    _big_runs(numbers_project.root, 120)
    result = cli("show", B)
    assert result.exit_code == 0, result.stderr
    assert "120: 90 ran, 30 restored" in result.stdout
    assert "s49 (T)" in result.stdout and "s50 (T)" not in result.stdout
    assert "70 more steps not shown" in result.stdout and "--all" in result.stdout
    every = cli("show", B, "--all").stdout
    assert "s119 (T)" in every and "not shown" not in every
    assert "s9 (T)" in cli("show", B, "--limit", "10").stdout
    assert "s10 (T)" not in cli("show", B, "--limit", "10").stdout
    assert len(json.loads(cli("show", B, "--json").stdout)["steps"]) == 120


def test_a_small_run_is_shown_whole_as_before(numbers_project, cli):
    _big_runs(numbers_project.root, 5)
    out = cli("show", B).stdout
    assert "s4 (T)" in out and "not shown" not in out and "5: " not in out


def test_diff_prints_the_first_rows_and_says_how_many_more_differ(numbers_project, cli):
    _big_runs(numbers_project.root, 120)
    result = cli("diff", A, B)
    assert result.exit_code == 0, result.stderr
    assert "70 more params that differ not shown" in result.stdout
    assert "70 more metrics that differ not shown" in result.stdout
    every = cli("diff", A, B, "--all").stdout
    assert "s119.lr" in every and "s119.loss" in every and "not shown" not in every
    data = json.loads(cli("diff", A, B, "--json").stdout)
    assert len(data["params"]) == 120 and len(data["metrics"]) == 120


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ({"x": 1}, {"x": 1}, []),
        ({"x": 1}, {"x": 1.0}, []),  # equal as values
        ({"x": True}, {"x": 1}, ["s.x"]),  # equal to Python, not as values
        ({"x": {"a": True}}, {"x": {"a": 1}}, ["s.x.a"]),
        ({"x": {}}, {"x": {}}, []),
        ({"x": [1]}, {"x": [1]}, []),
        ({"x": 1}, {}, ["s.x"]),
    ],
)
def test_param_changes_compare_values_as_before(old, new, changed):
    from tipi.runs.diff import param_changes
    from tipi.runs.record import flat

    def run(params: dict) -> RunRecord:
        return RunRecord(A, "p", 1.0, steps={"s": StepRun("T", params)})

    assert [c.key for c in param_changes(run(old), run(new))] == changed
    for params in (old, new):  # the flat shortcut is flat()'s reading
        from tipi.runs.record import flat_params

        assert flat_params("s", params) == (dict(flat(params, "s")) if params else {})


def test_show_names_the_failed_steps_it_leaves_out(numbers_project, cli):
    store = RunStore(numbers_project.root)
    steps = {f"s{i}": StepRun("T", {"i": i}, "ran") for i in range(80)}
    steps["s70"] = StepRun("T", {"i": 70}, "failed", error="boom")
    store.write(RunRecord(A, "numbers", 1.0, "failed", 2.0, steps=steps))
    out = cli("show", A).stdout
    assert "79 ran, 1 failed" in out and "failed (not shown)  s70" in out
