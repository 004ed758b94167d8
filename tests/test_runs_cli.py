"""`tipi runs`, `tipi diff`, `tipi show` over runs recorded through the recorder's API, `tipi
clean --keep-runs`, and metrics files declared in a pipeline's TOML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_runs import record_run
from tipi.config.loader import load_pipeline
from tipi.config.metrics import metrics_of
from tipi.errors import ConfigError
from tipi.runs import RunRecorder
from tipi.state.layout import Layout

A, B, C = "20260101-100000-aaaa", "20260102-100000-bbbb", "20260103-100000-cccc"


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables one line per run (Rich folds cells to the terminal's width, 80 under pytest)."""
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def three_runs(numbers_project):
    root = numbers_project.root
    record_run(root, A, {"lr": 0.1, "epochs": 3}, {"accuracy": 0.5, "loss": 1.0})
    record_run(root, B, {"lr": 0.01, "epochs": 3}, {"accuracy": 0.75, "loss": 0.5})
    record_run(root, C, {"lr": 0.01, "epochs": 5}, {"accuracy": 0.75, "loss": 0.25})
    return numbers_project


def test_runs_json_lists_runs_newest_first(three_runs, cli):
    result = cli("runs", "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [r["id"] for r in runs] == [C, B, A]
    newest = runs[0]
    assert {"id", "started", "commit", "dirty", "ran", "params", "metrics"} <= newest.keys()
    assert newest["params"] == {"train.lr": 0.01, "train.epochs": 5}
    assert newest["metrics"] == {"evaluate.accuracy": 0.75, "evaluate.loss": 0.25}
    assert newest["ran"] == ["train", "evaluate"]
    assert newest["commit"] is None and newest["dirty"] is None
    assert newest["status"] == "ok" and newest["started"].startswith("20")
    assert [r["id"] for r in json.loads(cli("runs", "--json", "-n", "2").stdout)] == [C, B]
    assert json.loads(cli("runs", "--json", "-p", "numbers").stdout) == []


def test_runs_table_shows_changed_params_and_key_metrics(three_runs, cli):
    result = cli("runs")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "when", "status", "commit"]
    row = {run: next(line for line in lines if run[-4:] in line) for run in (A, B, C)}
    assert "train.epochs 3→5" in row[C] and "train.lr" not in row[C]
    assert "train.lr 0.1→0.01" in row[B]
    assert lines[0].split()[-2:] == ["accuracy", "loss"]  # a column per metric, key ones first
    assert row[C].split()[-2:] == ["0.75", "0.25"] and row[A].split()[-2:] == ["0.5", "1"]
    assert " ok " in row[A] and " train " in row[A]
    below = lines[lines.index(row[A]) + 1]
    assert below.split()[0] == "evaluate"  # one step, one param per line


def test_runs_of_several_pipelines_name_them(three_runs, cli):
    record_run(three_runs.root, "20260104-100000-dddd", {"lr": 1}, pipeline="other")
    result = cli("runs", "-n", "2")
    assert "pipeline" in result.stdout.splitlines()[0]
    assert "other" in result.stdout and "dddd" in result.stdout and "bbbb" not in result.stdout
    only = json.loads(cli("runs", "--json", "-p", "other").stdout)
    assert [r["id"] for r in only] == ["20260104-100000-dddd"]


def test_no_runs_yet(numbers_project, cli):
    result = cli("runs")
    assert result.exit_code == 0 and "no runs" in result.stdout
    assert json.loads(cli("runs", "--json").stdout) == []
    result = cli("runs", "-p", "nope")
    assert result.exit_code == 2 and "no pipeline 'nope'" in result.stderr
    (numbers_project.root / ".tipi_cache" / "pipelines").mkdir(parents=True)
    result = cli("runs", "-p", "../pipelines")
    assert result.exit_code == 2 and "is not a pipeline name" in result.stderr


def test_diff_of_the_two_newest_runs(three_runs, cli):
    result = cli("diff", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "params": {"train.epochs": [3, 5]},
        "metrics": {"evaluate.loss": [0.5, 0.25]},
    }
    table = cli("diff").stdout
    assert f"{B[-4:]}" in table.splitlines()[0] and f"{C[-4:]}" in table.splitlines()[0]
    epochs = next(line for line in table.splitlines() if line.startswith("train.epochs"))
    assert epochs.split()[:4] == ["train.epochs", "3", "5", "+2"]
    loss = next(line for line in table.splitlines() if line.startswith("evaluate.loss"))
    assert loss.split()[:4] == ["evaluate.loss", "0.5", "0.25", "-0.25"]


def test_diff_of_named_runs_by_prefix(three_runs, cli):
    result = cli("diff", "20260101", "20260103", "--json")
    assert json.loads(result.stdout) == {
        "params": {"train.lr": [0.1, 0.01], "train.epochs": [3, 5]},
        "metrics": {"evaluate.accuracy": [0.5, 0.75], "evaluate.loss": [1.0, 0.25]},
    }
    one = json.loads(cli("diff", "20260101", "--json").stdout)  # against the newest
    assert one["params"] == {"train.lr": [0.1, 0.01], "train.epochs": [3, 5]}
    same = cli("diff", "20260102", "20260102")
    assert same.exit_code == 0 and "no param or metric differs" in same.stdout


def test_ambiguous_or_unknown_runs_are_one_line_errors(three_runs, cli):
    for args, message in [
        (("diff", "2026", C), "ambiguous: 3 runs start with it"),
        (("show", "2025"), "no run '2025'"),
        (("show", "a/b"), "is not a run id"),
        (("diff", C), "is the newest"),
    ]:
        result = cli(*args)
        assert result.exit_code == 2, args
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_diff_needs_two_runs(numbers_project, cli):
    assert "no runs" in cli("diff").stderr
    record_run(numbers_project.root, A, {"lr": 0.1})
    result = cli("diff")
    assert result.exit_code == 2 and "one run only" in result.stderr


def test_show_one_run_whole(three_runs, cli):
    result = cli("show", "20260102")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for expected in (B, "tipi make", "train (Train): ran", "train.lr", "evaluate.accuracy"):
        assert expected in text
    data = json.loads(cli("show", B, "--json").stdout)
    assert data["id"] == B and data["steps"]["train"]["params"] == {"lr": 0.01, "epochs": 3}
    assert json.loads(cli("show", "--json").stdout)["id"] == C  # default: the newest


def test_damaged_and_unfinished_runs_in_the_listing(three_runs, cli):
    folder = Layout(three_runs.root, "p").runs_dir
    (folder / "20260104-000000-bad0.msgpack").write_bytes(b"not msgpack at all \xc1")
    recorder = RunRecorder(three_runs.root, "p", run_id="20260105-000000-eeee", git=False)
    recorder.record.pid = 2**22 + 7  # no such process: the make that wrote it is gone
    recorder.step_started("train")
    result = cli("runs")
    assert result.exit_code == 0
    assert "20260104-000000-bad0.msgpack" in result.stderr and "skipped" in result.stderr
    assert "unfinished" in next(line for line in result.stdout.splitlines() if "eeee" in line)
    runs = json.loads(cli("runs", "--json").stdout)
    assert [r["status"] for r in runs][:2] == ["unfinished", "ok"]


def test_clean_removes_runs_unless_kept(three_runs, cli):
    root = three_runs.root
    (root / ".tipi_cache" / "stat.msgpack").write_bytes(b"")
    assert cli("clean", "--keep-runs").exit_code == 0
    assert not (root / ".tipi_cache" / "stat.msgpack").exists()
    assert len(json.loads(cli("runs", "--json").stdout)) == 3
    assert cli("clean", "-p", "numbers", "--keep-runs").exit_code == 0
    record_run(root, "20260104-100000-dddd", {"lr": 1}, pipeline="numbers")
    assert cli("clean", "-p", "numbers").exit_code == 0
    assert [r["pipeline"] for r in json.loads(cli("runs", "--json").stdout)] == ["p"] * 3
    assert cli("clean").exit_code == 0
    assert json.loads(cli("runs", "--json").stdout) == []
    assert not (root / ".tipi_cache").exists()


def _spec(project, toml: str):
    folder = project.pipeline("m", toml)
    return load_pipeline(folder / "pipeline.toml", name="m", root=project.root)


def test_metrics_declared_in_toml_are_outputs(project):
    spec = _spec(
        project,
        """
        [processes.score]
        type = "Score"
        outputs = { report = "out/report.json", model = "out/model.pt" }
        metrics = { report = "out/report.json", extra = "out/{name}/extra.json" }
        """,
    )
    score = spec.processes["score"]
    assert score.metrics == ("report", "extra")
    assert score.outputs == {
        "report": "out/report.json",
        "model": "out/model.pt",
        "extra": "out/{name}/extra.json",
    }
    listed = _spec(project, '[processes.s]\ntype = "S"\nmetrics = ["out/m.json"]\n')
    assert listed.processes["s"].outputs == {"out/m.json": "out/m.json"}
    assert listed.processes["s"].metrics == ("out/m.json",)


def test_a_metrics_entry_that_contradicts_an_output_is_an_error(project):
    with pytest.raises(ConfigError, match="metrics 'report' is 'b.json' but output 'report'"):
        _spec(
            project,
            """
            [processes.score]
            type = "Score"
            outputs = { report = "a.json" }
            metrics = { report = "b.json" }
            """,
        )
    with pytest.raises(ConfigError, match="'metrics' must be a table"):
        _spec(project, '[processes.s]\ntype = "S"\nmetrics = 3\n')


def test_builtins_declare_their_metrics_outputs():
    from tipi.processes.evaluation import Evaluate
    from tipi.processes.training import Train

    outputs = {"metrics": Path("m.json"), "history": Path("h.json"), "model": Path("x.pt")}
    assert metrics_of(Evaluate, (), outputs) == {"metrics": Path("m.json")}
    assert metrics_of(Train, ("model",), outputs) == {
        "history": Path("h.json"),
        "model": Path("x.pt"),
    }


METRICS_STEPS = """
import json
from tipi import PipelineProcess


class Score(PipelineProcess):
    outputs = {"scores": "out/{name}/scores.json"}
    metrics_outputs = ("scores",)

    def execute(self) -> None:
        self.outputs["scores"].write_text(json.dumps({"accuracy": 0.5}))
"""


def test_the_plan_carries_each_steps_metrics_files(project):
    from tipi.config.resolve import resolve_pipeline

    project.pipeline(
        "m",
        """
        [processes.score]
        type = "Score"
        metrics = { more = "out/more.json" }
        """,
        steps=METRICS_STEPS,
    )
    spec = load_pipeline(
        project.root / "pipelines" / "m" / "pipeline.toml", name="m", root=project.root
    )
    resolved = resolve_pipeline(spec)
    assert resolved.steps["score"].metrics == {
        "scores": project.root / "out" / "score" / "scores.json",
        "more": project.root / "out" / "more.json",
    }


def test_a_run_records_the_metrics_files_the_plan_names(project):
    from tipi.planning import Plan, Planner

    folder = project.pipeline(
        "m",
        """
        [processes.score]
        type = "Score"
        metrics = { more = "out/more.json" }
        """,
        steps=METRICS_STEPS,
    )
    layout = Layout(project.root, "m")
    planner = Planner(
        project.root, "m", folder / "pipeline.toml", (), layout.plan_file, lambda text: None
    )
    plan = planner.plan()
    assert plan.steps["score"].metrics == {
        "scores": "out/score/scores.json",
        "more": "out/more.json",
    }
    cached = Plan.from_data(plan.to_data())
    assert cached.steps["score"].metrics == plan.steps["score"].metrics
    (project.root / "out" / "score").mkdir(parents=True)
    (project.root / "out" / "score" / "scores.json").write_text('{"accuracy": 0.5}')
    (project.root / "out" / "more.json").write_text('{"auc": {"macro": 0.75}}')
    recorder = RunRecorder(project.root, "m", git=False)
    recorder.consider(plan.steps, plan.order)
    recorder.step_ended("score", "ran", seconds=1.0)
    assert recorder.close().metrics() == {"score.accuracy": 0.5, "score.auc.macro": 0.75}


def test_a_hostile_run_file_is_shown_escaped_and_never_crashes(numbers_project, cli):
    from tipi.runs.store import RunStore

    root = numbers_project.root
    run = record_run(root, "20260101-000000-aaaaaa", {"lr": 0.1}, pipeline="numbers")
    run.command = ["tipi", "make", "\x1b]0;owned\x07\x1b[2J"]
    run.steps["train"].error = "bad\x1b[31m red"
    run.status, run.pid = "running", 2**63 - 1  # no such process can exist
    RunStore(root).write(run)
    shown = cli("show", "20260101")
    assert shown.exit_code == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\\x1b]0;owned" in shown.stdout
    listed = cli("runs", "-p", "numbers")
    assert listed.exit_code == 0, listed.stderr
    assert "unfinished" in listed.stdout
    huge = RunStore(root).path("numbers", "20260101-000001-bbbbbb")
    with open(huge, "wb") as file:
        file.truncate(64 << 20)  # sparse: no run file is that big
    assert cli("runs", "-p", "numbers").exit_code == 0
