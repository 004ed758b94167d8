"""Sweeps: variants are makes with overrides; what the swept params do not reach runs once;
each variant's outputs live apart; results come back as a table, JSON and CSV."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import pytest

from tests.make_helpers import runs
from tipi.errors import ConfigError, UsageError
from tipi.report import ListReporter
from tipi.sweep.runner import Sweep
from tipi.sweep.sample import draw, toml_value, variant_name, variants
from tipi.sweep.spec import grid_from_options, load_sweep

REPO = Path(__file__).resolve().parents[1]

STEPS = """
import json
import os
from tipi import Permanence, PipelineProcess
from tipi.permanences.loggers import BaseLoggerManager


def log_run(text):
    with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
        f.write(text + "\\n")


class Seed(Permanence):
    def __init__(self, value: int = 0) -> None:
        self.value = value

    def cleanup(self) -> None:
        pass


class Prepare(PipelineProcess):
    def execute(self) -> None:
        log_run("prepare")
        self.outputs["data"].write_text("data")


class Fit(PipelineProcess):
    def __init__(self, controller, force: bool = False, lr: float = 0.1, tag: str = "") -> None:
        super().__init__(controller, force)
        self.lr, self.tag = lr, tag

    def execute(self) -> None:
        log_run(f"fit:{self.lr}")
        if self.lr > 1:
            raise RuntimeError("lr too large")
        if self.tag == "interrupt":
            raise KeyboardInterrupt  # as Ctrl-C would, in the middle of the step
        assert self.inputs["data"].read_text() == "data"
        self.outputs["model"].write_text(repr(self.lr))
        history = {"best_score": self.lr * 10, "nested": {"depth": 2}, "history": [1, 2]}
        self.outputs["history"].write_text(json.dumps(history))


class Score(PipelineProcess):
    def execute(self) -> None:
        log_run("score")
        lr = float(self.inputs["model"].read_text())
        metrics = {"accuracy": 1 - abs(lr - 0.05), "part": "test"}
        self.outputs["metrics"].write_text(json.dumps(metrics))


class Seeded(PipelineProcess):
    def execute(self) -> None:
        value = self.controller.get_permanence("seed").value
        log_run(f"seeded:{value}")
        self.outputs["out"].write_text(str(value))


class ListLogger(BaseLoggerManager):
    \"\"\"Runs sweeps itself: the values of each parameter in reverse order, one at a time.\"\"\"

    def __init__(self, record: str = "sweep.jsonl") -> None:
        super().__init__()
        self.record = record

    def supports_sweep(self) -> bool:
        return True

    def run_sweep(self, run_once, config) -> None:
        (key, table), = config["parameters"].items()
        for value in reversed(table["values"]):
            metrics = run_once({key: value})
            with open(self.record, "a") as f:
                f.write(json.dumps({"value": value, "metrics": metrics}) + "\\n")

    def _log_metrics(self, metrics, step):
        pass

    def _log_figure(self, name, figure, step):
        pass

    def _log_hparams(self, hparams, metrics):
        pass
"""

PIPELINE = """
[permanences.seed]
type = "Seed"

[permanences.sweeper]
type = "ListLogger"

[processes.prepare]
type = "Prepare"
outputs = { data = "data/toy/data.txt" }

[processes.fit]
type = "Fit"
inputs = { data = "data/toy/data.txt" }
outputs = { model = "out/toy/fit/model.txt", history = "out/toy/fit/history.json" }

[processes.score]
type = "Score"
inputs = { model = "out/toy/fit/model.txt" }
outputs = { metrics = "out/toy/score/metrics.json" }

[processes.seeded]
type = "Seeded"
outputs = { out = "out/toy/seeded.txt" }
"""


@pytest.fixture
def toy(project):
    project.pipeline("toy", PIPELINE, steps=STEPS)
    return project


def sweep_of(spec, reporter=None, **options):
    return Sweep("toy", spec, reporter=reporter, make_options=options)


def outcomes(reporter: ListReporter) -> list[tuple[str, str]]:
    return [(e[1].name, e[1].outcome) for e in reporter.events if e[0] == "step_finished"]


def test_a_grid_runs_unswept_steps_once_and_keeps_variants_apart(toy):
    results = sweep_of(grid_from_options(["fit.lr=0.01,0.05,0.2"])).run()
    assert runs(toy) == [
        "prepare",
        "fit:0.01",
        "score",
        "seeded:0",
        "fit:0.05",
        "score",
        "fit:0.2",
        "score",
    ]
    folder = toy.root / "out/sweeps/toy/grid"
    for lr in ("0.01", "0.05", "0.2"):
        assert (folder / f"lr={lr}/fit/model.txt").read_text() == lr
        assert json.loads((folder / f"lr={lr}/score/metrics.json").read_text())["accuracy"]
    assert not (toy.root / "out/toy/fit").exists()  # the plain make's place is untouched
    assert (toy.root / "out/toy/seeded.txt").exists()  # not swept: at its usual place

    rows = {v.name: v for v in results.variants}
    assert rows["lr=0.05"].metrics == {
        "fit.best_score": pytest.approx(0.5),
        "fit.nested.depth": 2,
        "score.accuracy": pytest.approx(1.0),
    }
    assert rows["lr=0.05"].params == {"fit.lr": 0.05}
    assert [v.status for v in results.variants] == ["ran"] * 3

    data = json.loads((folder / "results.json").read_text())
    assert [v["variant"] for v in data["variants"]] == ["lr=0.01", "lr=0.05", "lr=0.2"]
    table = list(csv.DictReader((folder / "results.csv").open()))
    assert [r["fit.lr"] for r in table] == ["0.01", "0.05", "0.2"]
    assert float(table[2]["score.accuracy"]) == pytest.approx(0.85)

    # Again: every variant is up to date; nothing runs.
    again = sweep_of(grid_from_options(["fit.lr=0.01,0.05,0.2"])).run()
    assert runs(toy) == []
    assert [v.status for v in again.variants] == ["up to date"] * 3
    assert again.variants[1].metrics == rows["lr=0.05"].metrics
    # A plain make shares the unswept steps' traces: prepare and seeded do not run again.
    from tipi.engine import Engine

    Engine("toy").make()
    assert runs(toy) == ["fit:0.1", "score"]


@pytest.mark.slow
def test_a_two_by_two_grid_over_digits_prepares_the_data_once(project, cli):
    shutil.copytree(REPO / "pipelines/digits", project.root / "pipelines/digits")
    result = cli(
        "sweep", "-p", "digits", "evaluate",
        "--grid", "train.lr=0.003,0.01", "--grid", "train.batch_size=32,64",
        "--set", "train.epochs=1", "--metric", "accuracy", "--goal", "maximize",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("✔ prepare ran") == 1
    assert result.stderr.count("✔ train ran") == 4
    assert result.stderr.count("✔ evaluate ran") == 4
    assert "results: out/sweeps/digits/grid/results.json" in result.stdout
    data = json.loads((project.root / "out/sweeps/digits/grid/results.json").read_text())
    names = [v["variant"] for v in data["variants"]]
    assert names == [
        "lr=0.003,batch_size=32",
        "lr=0.003,batch_size=64",
        "lr=0.01,batch_size=32",
        "lr=0.01,batch_size=64",
    ]
    accuracies = {v["variant"]: v["metrics"]["evaluate.accuracy"] for v in data["variants"]}
    assert all(0 < a <= 1 for a in accuracies.values())
    assert len({round(a, 6) for a in accuracies.values()}) > 1  # the params reached train
    assert data["best"] == max(accuracies, key=accuracies.get)
    assert data["metric"] == {"name": "evaluate.accuracy", "goal": "maximize"}
    # Evaluate measured the test split: labelled so, and choosing by it is warned about once.
    assert "evaluate.accuracy" in data["variants"][0]["test_metrics"]
    assert "train.best_score" not in data["variants"][0]["test_metrics"]
    assert result.stderr.count("measured on the test split") == 1
    for name in names:
        weights = project.root / "out/sweeps/digits/grid" / name / "train/best.pt"
        assert weights.stat().st_size > 0
        history = json.loads(weights.with_name("history.json").read_text())
        assert history["history"][0]["lr"] == float(name.split(",")[0].split("=")[1])
    # Each variant logged apart.
    variant_logs = project.root / f"out/sweeps/digits/grid/{names[0]}/logs/digits"
    assert list(variant_logs.glob("**/metrics.jsonl"))

    again = cli("sweep", "-p", "digits", "evaluate", "--grid", "train.lr=0.003,0.01",
                "--grid", "train.batch_size=32,64", "--set", "train.epochs=1")  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert " ran" not in again.stderr.replace("would run", "")
    assert again.stdout.count("up to date") == 4


def test_sweeping_a_permanence_keeps_every_step_apart_and_restores_what_did_not_use_it(toy):
    reporter = ListReporter()
    results = sweep_of(grid_from_options(["seed.value=1,2"]), reporter).run()
    assert [v.name for v in results.variants] == ["value=1", "value=2"]
    assert runs(toy) == ["prepare", "fit:0.1", "score", "seeded:1", "seeded:2"]
    second = outcomes(reporter)[4:]
    assert dict(second) == {
        "prepare": "restored",
        "fit": "restored",
        "score": "restored",
        "seeded": "ran",
    }
    folder = toy.root / "out/sweeps/toy/grid"
    assert (folder / "value=2/seeded.txt").read_text() == "2"
    assert (folder / "value=2/data/toy/data.txt").read_text() == "data"


@pytest.mark.slow
def test_a_failed_variant_does_not_stop_the_others(toy, cli):
    result = cli("sweep", "-p", "toy", "--grid", "fit.lr=0.01,5.0,0.2")
    assert result.exit_code == 1
    assert "1 of 3 variants failed: lr=5.0" in result.stderr
    assert "RuntimeError: lr too large" in result.stderr
    data = json.loads((toy.root / "out/sweeps/toy/grid/results.json").read_text())
    assert [v["status"] for v in data["variants"]] == ["ran", "failed", "ran"]
    assert "lr too large" in data["variants"][1]["error"]
    assert "lr=0.2" in result.stdout  # the table is printed all the same


def test_ctrl_c_stops_the_sweep_and_keeps_the_results_of_finished_variants(toy, cli):
    result = cli("sweep", "-p", "toy", "--grid", "fit.tag=a,interrupt,b")
    assert result.exit_code == 130
    data = json.loads((toy.root / "out/sweeps/toy/grid/results.json").read_text())
    assert [(v["variant"], v["status"]) for v in data["variants"]] == [
        ("tag=a", "ran"),
        ("tag=interrupt", "interrupted"),
    ]
    assert not (toy.root / "out/sweeps/toy/grid/tag=interrupt/fit/model.txt").exists()
    assert "fit:0.1" in runs(toy)


def test_a_bad_value_stops_the_sweep_before_anything_runs(toy, cli):
    result = cli("sweep", "-p", "toy", "--grid", 'fit.lr=0.01,"fast"')
    assert result.exit_code == 2
    assert "lr" in result.stderr and "fast" in result.stderr
    assert runs(toy) == []
    unknown = cli("sweep", "-p", "toy", "--grid", "fitt.lr=0.1,0.2")
    assert unknown.exit_code == 2
    assert "did you mean 'fit'?" in unknown.stderr


@pytest.mark.slow
def test_variants_run_in_worker_processes_with_their_own_paths(toy, cli):
    result = cli("sweep", "-p", "toy", "-j", "2", "--grid", "fit.lr=0.01,0.02", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [v["metrics"]["fit.best_score"] for v in data["variants"]] == [
        pytest.approx(0.1),
        pytest.approx(0.2),
    ]
    assert (toy.root / "out/sweeps/toy/grid/lr=0.02/fit/model.txt").read_text() == "0.02"
    assert sorted(runs(toy)) == sorted(
        ["prepare", "seeded:0", "fit:0.01", "fit:0.02", "score", "score"]
    )


def test_a_logger_can_run_the_sweep_itself(toy, cli):
    toy.root.joinpath("pipelines/toy/sweep.toml").write_text(
        'method = "grid"\n[parameters."fit.lr"]\nvalues = [0.01, 0.02, 0.03]\n'
    )
    result = cli("sweep", "-p", "toy", "--logger", "sweeper", "score")
    assert result.exit_code == 0, result.stderr
    assert runs(toy) == ["prepare", "fit:0.03", "score", "fit:0.02", "score", "fit:0.01", "score"]
    lines = [json.loads(x) for x in (toy.root / "sweep.jsonl").read_text().splitlines()]
    assert [x["value"] for x in lines] == [0.03, 0.02, 0.01]
    assert lines[0]["metrics"]["score.accuracy"] == pytest.approx(0.98)
    assert "lr=0.03" in result.stdout
    refused = cli("sweep", "-p", "toy", "--logger", "seed")
    assert refused.exit_code == 2 and "cannot run sweeps" in refused.stderr


def test_wandb_sweeps_need_wandb_online(toy, cli, monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    result = cli("sweep", "-p", "toy", "--wandb", "--grid", "fit.lr=0.01,0.02")
    assert result.exit_code == 2
    assert "a W&B sweep needs W&B online" in result.stderr
    assert "WANDB_API_KEY" in result.stderr
    assert runs(toy) == []


def test_a_random_sweep_file_draws_the_same_variants_for_the_same_seed(toy, cli):
    file = toy.root / "pipelines/toy/sweep.toml"
    file.write_text(
        'method = "random"\nrun_cap = 3\nmetric = { name = "score.accuracy", goal = "maximize" }\n'
        '[parameters."fit.lr"]\ndistribution = "log_uniform_values"\nmin = 0.001\nmax = 0.5\n'
        '[parameters."fit.tag"]\nvalue = "constant"\n'
    )
    result = cli("sweep", "-p", "toy", "--seed", "7", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sweep"] == "sweep"
    lrs = [v["params"]["fit.lr"] for v in data["variants"]]
    assert len(lrs) == 3 and all(0.001 <= lr <= 0.5 for lr in lrs)
    assert all(v["params"]["fit.tag"] == "constant" for v in data["variants"])
    assert all(v["variant"].startswith("lr=") for v in data["variants"])  # constants unnamed
    best = max(data["variants"], key=lambda v: v["metrics"]["score.accuracy"])
    assert data["best"] == best["variant"]
    spec = load_sweep(file)
    assert variants(spec, seed=7) == [v["params"] for v in data["variants"]]
    assert variants(spec, seed=8) != variants(spec, seed=7)


def test_sweep_files_are_checked_with_file_and_line(tmp_path):
    file = tmp_path / "sweep.toml"
    file.write_text('method = "grid"\n\n[parameters."train.lr"]\nmin = 0.1\nmax = 1.0\n')
    with pytest.raises(ConfigError, match="a grid sweep needs a list of values") as error:
        load_sweep(file)
    assert error.value.location.line == 3
    assert "random" in error.value.hint
    file.write_text('method = "grid"\n[parameters."train.lr"]\nvalue = [1]\nvaluess = 2\n')
    with pytest.raises(ConfigError, match="unknown key 'valuess'") as error:
        load_sweep(file)
    assert error.value.location.line == 4 and error.value.hint == "did you mean 'values'?"
    file.write_text('metod = "grid"\n')
    with pytest.raises(ConfigError, match="unknown key 'metod'"):
        load_sweep(file)
    file.write_text('method = "random"\n[parameters."train.lr"]\ndistribution = "beta"\n')
    with pytest.raises(ConfigError, match="unknown distribution 'beta'"):
        load_sweep(file)
    file.write_text('method = "bayes"\n[parameters."train.lr"]\nmin = 0.1\nmax = 1.0\n')
    with pytest.raises(UsageError, match="needs W&B's sweep controller"):
        variants(load_sweep(file))
    file.write_text("[parameters.train.parameters.lr]\nvalues = [1, 2]\n")  # W&B's nested form
    assert list(load_sweep(file).parameters) == ["train.lr"]


def test_grid_options_names_and_values():
    spec = grid_from_options(["train.betas=[0.9,0.99],[0.8,0.9]", "train.opt=adam,sgd"])
    assert spec.parameters["train.betas"].values == ([0.9, 0.99], [0.8, 0.9])
    assert spec.parameters["train.opt"].values == ("adam", "sgd")
    assert len(variants(spec)) == 4
    with pytest.raises(UsageError, match="bad --grid"):
        grid_from_options(["lr=0.1"])
    assert variant_name({"a.lr": 0.1, "b.lr": 0.2}, ["a.lr", "b.lr"]) == "a.lr=0.1,b.lr=0.2"
    assert variant_name({"t.x": "a b"}, ["t.x"]).startswith("x=a-b-")  # changed: hashed
    long = variant_name({"t.x": "y" * 200}, ["t.x"])
    assert len(long) <= 80
    for value in (1, 0.001, 1e-05, True, 'x"y', [1, "a"], {"name": "AdamW", "lr": 0.1}):
        import tomllib

        assert tomllib.loads(f"v = {toml_value(value)}")["v"] == value
    rng = random.Random(0)
    spec = load_sweep_text('[parameters."t.n"]\nmin = 2\nmax = 4\n')
    assert {draw(spec.parameters["t.n"], rng) for _ in range(50)} == {2, 3, 4}


def load_sweep_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "s.toml"
        file.write_text('method = "random"\n' + text)
        return load_sweep(file)


def test_a_grid_of_one_value_is_still_kept_apart(toy):
    results = sweep_of(grid_from_options(["fit.lr=0.02"])).run()
    assert (toy.root / "out/sweeps/toy/grid/lr=0.02/fit/model.txt").read_text() == "0.02"
    assert not (toy.root / "out/toy/fit/model.txt").exists()
    assert results.variants[0].metrics["fit.best_score"] == pytest.approx(0.2)


def test_clean_outputs_removes_the_pipelines_sweeps(toy, cli):
    assert cli("sweep", "-p", "toy", "--grid", "fit.lr=0.01,0.02").exit_code == 0
    assert (toy.root / "out/sweeps/toy/grid/results.json").exists()
    result = cli("clean", "-p", "toy", "--outputs")
    assert result.exit_code == 0
    assert not (toy.root / "out/sweeps/toy").exists()


HP_STEPS = """
import json
from tipi import PipelineProcess


class Read(PipelineProcess):
    def execute(self) -> None:
        lr = self.controller.get_permanence("hp")["lr"]
        self.outputs["out"].write_text(json.dumps({"lr": lr, "score": 1 - lr}))
"""

HP_PIPELINE = """
[permanences.hp]
type = "Hyperparameters"

[permanences.hp.params]
values = { lr = 0.1 }
sweep = { method = "grid", metric = { name = "score", goal = "maximize" }, parameters = { lr = { values = [0.01, 0.02] } } }

[processes.read]
type = "Read"
outputs = { out = "out/hp/read.json" }
"""


def test_a_hyperparameters_permanence_can_describe_the_sweep(project, cli):
    project.pipeline("hp", HP_PIPELINE, steps=HP_STEPS)
    result = cli("sweep", "-p", "hp", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sweep"] == "hp"
    assert [v["params"] for v in data["variants"]] == [
        {"hp.values.lr": 0.01},
        {"hp.values.lr": 0.02},
    ]
    assert [v["metrics"]["read.lr"] for v in data["variants"]] == [0.01, 0.02]
    assert data["best"] == "lr=0.01"
    assert data["metric"] == {"name": "read.score", "goal": "maximize"}
