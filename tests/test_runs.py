"""Runs (tipi/runs/): the record and its file, the store, the recorder the make session calls,
metrics files, git state and the diff of two runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import msgpack
import pytest

from tipi.errors import PipelineInterrupted, UsageError
from tipi.runs import RunRecorder, RunStore, diff_runs
from tipi.runs.git import git_state
from tipi.runs.metrics import flatten, read_metrics
from tipi.runs.record import RunRecord, StepRun
from tipi.state.layout import Layout
from tipi.state.statefile import BrokenState


def step(type_: str = "T", metrics: dict[str, str] | None = None, **params: object):
    return SimpleNamespace(type=type_, params=params, metrics=metrics or {})


def record_run(
    root: Path,
    run_id: str,
    params: dict[str, object],
    metrics: dict[str, float] | None = None,
    pipeline: str = "p",
) -> RunRecord:
    """A finished run of steps `train` (params) and `evaluate` (its metrics file)."""
    out = root / "out" / f"{run_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics or {}))
    recorder = RunRecorder(root, pipeline, run_id=run_id, command=["tipi", "make"], git=False)
    recorder.consider(
        {"train": step("Train", **params), "evaluate": step("Evaluate", {"m": str(out)})}
    )
    with recorder:
        for name in ("train", "evaluate"):
            recorder.step_started(name)
            recorder.step_ended(name, "ran", seconds=1.0)
    return recorder.record


def test_record_round_trip():
    record = RunRecord(
        id="20260101-000000-abcd",
        pipeline="p",
        started=1.5,
        status="ok",
        ended=3.0,
        command=["tipi", "run", "p"],
        commit="f" * 40,
        dirty=True,
        variant="lr/v1",
        host="h",
        pid=7,
        steps={
            "train": StepRun(
                type="Train",
                params={"lr": 0.1, "opt": {"name": "SGD"}, "layers": [1, 2]},
                outcome="ran",
                seconds=2.0,
                permanences={"net": {"type": "Net", "params": {"hidden": 8}, "code": "c"}},
                metrics={"best_score": 0.9},
                logged={"loss": 0.25},
            ),
            "prepare": StepRun(type="Prepare", params={}),
        },
    )
    again = RunRecord.decode(record.encode())
    assert again == record
    assert again.params() == {"train.lr": 0.1, "train.opt.name": "SGD", "train.layers": [1, 2]}
    assert again.metrics() == {"train.best_score": 0.9}
    assert again.logged() == {"train.loss": 0.25}
    assert again.permanence_params() == {"net.hidden": 8}
    assert again.ran == ["train"] and again.restored == []


@pytest.mark.parametrize(
    "raw, problem",
    [
        (b"", "is empty"),
        (b"\xc1garbage", "is corrupt"),
        (msgpack.packb({"tipi": "plan", "version": 1, "data": {}}), "not a tipi run file"),
        (msgpack.packb({"tipi": "run", "version": 99, "data": {}}), "format version 99"),
        (msgpack.packb({"tipi": "run", "version": 1, "data": {"id": "x"}}), "lacks 'pipeline'"),
        (
            msgpack.packb(
                {
                    "tipi": "run",
                    "version": 1,
                    "data": {"id": "x", "pipeline": "p", "started": "soon", "status": "ok"},
                }
            ),
            "['started']",
        ),
    ],
)
def test_decode_refuses_what_is_not_a_run(raw: bytes, problem: str):
    with pytest.raises(BrokenState, match=problem.replace("[", r"\[").replace("]", r"\]")):
        RunRecord.decode(raw)


def test_a_damaged_file_is_reported_and_skipped(tmp_path: Path):
    record_run(tmp_path, "20260101-000000-aaaa", {"lr": 0.1})
    folder = Layout(tmp_path, "p").runs_dir
    (folder / "20260102-000000-bbbb.msgpack").write_bytes(b"\x80\x03cos\nsystem\n")  # a pickle
    (folder / "20260103-000000-cccc.msgpack").write_bytes(
        RunRecord("20260103-000000-zzzz", "p", 1.0).encode()  # another run than its name
    )
    warnings: list[str] = []
    store = RunStore(tmp_path, warnings.append)
    assert [r.id for r in store.records()] == ["20260101-000000-aaaa"]
    assert len(warnings) == 2
    assert all("skipped" in w for w in warnings)
    assert any("is corrupt" in w for w in warnings)
    assert any("holds run '20260103-000000-zzzz'" in w for w in warnings)


def test_runs_are_newest_first_and_same_second_by_start(tmp_path: Path):
    store = RunStore(tmp_path)
    for run_id, started in [
        ("20260101-000000-ffff", 10.0),
        ("20260101-000000-0000", 20.0),  # same second, started later, sorts first
        ("20260102-000000-aaaa", 5.0),
    ]:
        store.write(RunRecord(run_id, "p", started, status="ok"))
    store.write(RunRecord("20260101-120000-aaaa", "q", 1.0, status="ok"))
    assert [r.id for r in store.records()] == [
        "20260102-000000-aaaa",
        "20260101-120000-aaaa",
        "20260101-000000-0000",
        "20260101-000000-ffff",
    ]
    assert [r.id for r in store.records("q")] == ["20260101-120000-aaaa"]


def test_run_ids_match_unique_prefixes(tmp_path: Path):
    store = RunStore(tmp_path)
    for run_id in ("20260101-000000-aaaa", "20260101-000000-aabb", "20260202-000000-cccc"):
        store.write(RunRecord(run_id, "p", 1.0, status="ok"))
    assert store.find("202602").id == "20260202-000000-cccc"
    assert store.find("20260101-000000-aab").id == "20260101-000000-aabb"
    assert store.find("20260101-000000-aaaa").id == "20260101-000000-aaaa"
    with pytest.raises(UsageError, match="ambiguous: 2 runs start with it"):
        store.find("20260101")
    with pytest.raises(UsageError, match="no run '2027'"):
        store.find("2027")
    with pytest.raises(UsageError, match="not a run id"):
        store.find("../x")
    with pytest.raises(UsageError, match="of pipeline 'q'"):
        store.find("2026", "q")


def test_a_no_op_make_is_no_run(tmp_path: Path):
    recorder = RunRecorder(tmp_path, "p", git=False)
    recorder.consider({"a": step()})
    with recorder:
        pass
    assert recorder.close() is None
    assert not (tmp_path / ".tipi_cache").exists()


def test_the_recorder_writes_at_start_each_step_and_end(tmp_path: Path, monkeypatch):
    import tipi.runs.recorder

    monkeypatch.setattr(tipi.runs.recorder, "WRITE_EVERY", 0.0)  # every step end, here
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "m.json").write_text('{"accuracy": 0.5, "val": {"loss": 0.25}}')
    recorder = RunRecorder(tmp_path, "p", command=["tipi", "make"], git=False)
    recorder.consider(
        {
            "train": step("Train", lr=0.1),
            "evaluate": step("Evaluate", {"metrics": "out/m.json"}),
            "report": step("Report"),
        },
        order=["train", "evaluate"],
    )
    store = RunStore(tmp_path)
    recorder.step_started("train")
    running = store.find(recorder.id)
    assert running.status == "running" and running.shown_status == "running"
    assert running.steps["train"].outcome == "running"
    assert list(running.steps) == ["train", "evaluate"]
    recorder.logged("train", {"loss": 0.5, "note": "text"})
    recorder.logged("train", {"loss": 0.3})
    recorder.step_ended("train", "ran", seconds=2.0, permanences={"net": {"params": {"h": 4}}})
    recorder.step_ended("evaluate", "restored", seconds=0.1)
    assert store.find(recorder.id).steps["evaluate"].outcome == "restored"
    done = recorder.close()
    assert done is not None
    saved = store.find(recorder.id)
    assert saved.status == "ok" and saved.ended is not None
    assert saved.command == ["tipi", "make"]
    assert saved.metrics() == {"evaluate.accuracy": 0.5, "evaluate.val.loss": 0.25}
    assert saved.logged() == {"train.loss": 0.3}
    assert saved.permanence_params() == {"net.h": 4}
    assert saved.ran == ["train"] and saved.restored == ["evaluate"]


def test_an_interrupted_make_and_a_failed_step(tmp_path: Path):
    recorder = RunRecorder(tmp_path, "p", git=False)
    recorder.consider({"a": step(), "b": step()})
    with pytest.raises(KeyboardInterrupt), recorder:
        recorder.step_started("a")
        raise KeyboardInterrupt
    saved = RunStore(tmp_path).find(recorder.id)
    assert saved.status == "interrupted"
    assert saved.steps["a"].outcome == "interrupted"

    failing = RunRecorder(tmp_path, "p", git=False)
    with pytest.raises(PipelineInterrupted), failing:
        failing.step_ended("a", "failed", error="ValueError: bad\n  more")
        raise PipelineInterrupted("stopped")
    assert RunStore(tmp_path).find(failing.id).status == "interrupted"
    assert RunStore(tmp_path).find(failing.id).steps["a"].error == "ValueError: bad"

    failed = RunRecorder(tmp_path, "p", git=False)
    failed.step_ended("a", "failed")
    failed.close()
    assert RunStore(tmp_path).find(failed.id).status == "failed"


@pytest.mark.slow
def test_a_crashed_make_leaves_an_unfinished_run(tmp_path: Path):
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from types import SimpleNamespace
        from tipi.runs import RunRecorder
        recorder = RunRecorder(Path({str(tmp_path)!r}), "p", run_id="20260101-000000-dead", git=False)
        recorder.consider({{"train": SimpleNamespace(type="Train", params={{"lr": 0.1}})}})
        recorder.step_started("train")
        os._exit(1)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=False)
    record = RunStore(tmp_path).find("20260101-000000-dead")
    assert record.status == "running"
    assert record.shown_status == "unfinished"
    assert record.steps["train"].outcome == "running"


def test_a_record_that_cannot_be_written_is_one_warning(tmp_path: Path):
    (tmp_path / ".tipi_cache" / "runs").mkdir(parents=True)
    (tmp_path / ".tipi_cache" / "runs" / "p").write_text("a file where a folder goes")
    warnings: list[str] = []
    recorder = RunRecorder(tmp_path, "p", warn=warnings.append, git=False)
    recorder.step_started("a")
    recorder.step_ended("a", "ran")
    recorder.close()
    assert len(warnings) == 1 and "cannot be recorded" in warnings[0]


def test_metrics_are_flattened():
    data = {
        "accuracy": 0.9,
        "val": {"loss": 0.1, "deep": {"n": 3}},
        "name": "x",
        "ok": True,
        "rows": [1, 2],
        "nan": float("nan"),
    }
    assert flatten(data) == {"accuracy": 0.9, "val.loss": 0.1, "val.deep.n": 3}


def test_metrics_files_are_read_with_warnings_not_crashes(tmp_path: Path):
    good, other, bad, listed = (tmp_path / f"{n}.json" for n in ("good", "other", "bad", "list"))
    good.write_text('{"accuracy": 0.5}')
    other.write_text('{"accuracy": 0.6, "f1": 0.4}')
    bad.write_text("{not json")
    listed.write_text("[1, 2]")
    warnings: list[str] = []
    files = {"a": good, "b": other, "c": bad, "d": listed, "e": tmp_path / "missing.json"}
    metrics = read_metrics("evaluate", files, warnings.append)
    assert metrics == {"accuracy": 0.5, "b.accuracy": 0.6, "f1": 0.4}
    assert len(warnings) == 3
    assert any("not valid JSON" in w and "evaluate" in w for w in warnings)
    assert any("no JSON object" in w for w in warnings)
    assert any("cannot be read" in w for w in warnings)


def _git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(root)}
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip()


def test_git_commit_and_dirty_in_a_real_repository(tmp_path: Path):
    _git(tmp_path, "init", "-q")
    assert git_state(tmp_path) == (None, False)  # no commit yet
    (tmp_path / "a.txt").write_text("one")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = _git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "untracked.txt").write_text("outputs are often untracked")
    assert git_state(tmp_path) == (head, False)
    (tmp_path / "sub").mkdir()
    assert git_state(tmp_path / "sub") == (head, False)
    (tmp_path / "a.txt").write_text("two")
    assert git_state(tmp_path) == (head, True)


def test_no_git_repository_or_no_git_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_state(tmp_path) == (None, None)
    monkeypatch.setattr("tipi.runs.git.shutil.which", lambda name: None)
    _git(tmp_path, "init", "-q")
    assert git_state(tmp_path) == (None, None)


def test_recorded_runs_carry_git_state(tmp_path: Path):
    _git(tmp_path, "init", "-q")
    recorder = RunRecorder(tmp_path, "p")
    recorder.step_started("a")
    recorder.close()
    saved = RunStore(tmp_path).find(recorder.id)
    assert saved.commit is None and saved.dirty is False


def test_diff_compares_the_steps_both_runs_considered(tmp_path: Path):
    old = record_run(tmp_path, "20260101-000000-aaaa", {"lr": 0.1, "seed": 1}, {"acc": 0.5})
    new = record_run(tmp_path, "20260102-000000-bbbb", {"lr": 0.01, "seed": 1}, {"acc": 0.75})
    new.steps["extra"] = StepRun(type="X", params={"k": 1})  # only in the new run: not compared
    diff = diff_runs(old, new)
    assert diff.to_json() == {
        "params": {"train.lr": [0.1, 0.01]},
        "metrics": {"evaluate.acc": [0.5, 0.75]},
    }
    assert diff.metrics[0].delta == pytest.approx(0.25)
    old.steps["train"].params["gone"] = True
    old.steps["train"].permanences = {"net": {"params": {"h": 1}}}
    new.steps["train"].permanences = {"net": {"params": {"h": 2}}}
    assert diff_runs(old, new).to_json()["params"] == {
        "train.lr": [0.1, 0.01],
        "train.gone": [True, None],
        "permanences.net.h": [1, 2],
    }
    assert diff_runs(new, new).to_json() == {"params": {}, "metrics": {}}


def test_a_thousand_quick_steps_are_not_a_thousand_rewrites(tmp_path: Path, monkeypatch):
    """Each write is the whole record: writing it at every step end made a make of 1,000
    trivial steps 3x slower. Step ends are written at most once a second, a failure and
    the end of the run at once; a crash loses at most the last second of step ends."""
    recorder = RunRecorder(tmp_path, "p", git=False)
    names = [f"s{i}" for i in range(1000)]
    recorder.consider({n: step() for n in names})
    writes: list[bool] = []
    real = recorder.store.write
    monkeypatch.setattr(
        recorder.store,
        "write",
        lambda record, durable=True: writes.append(durable) or real(record, durable),
    )
    for name in names:
        recorder.step_started(name)
        recorder.step_ended(name, "ran", seconds=0.0)
    assert len(writes) <= 5  # the start, then about one a second
    recorder.step_ended("s0", "failed", error="boom")
    assert len(writes) <= 6
    recorder.close()
    saved = RunStore(tmp_path).find(recorder.id)
    assert saved.status == "failed" and len(saved.ran) == 999
    assert writes[0] is True and writes[-1] is True  # the start and the end are durable
