"""Loggers carry the run: what each backend shows a person for the steps of one make, and for a
script's `logger.init`, read back from the files they wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.wandb_records import history, run
from tipi import context
from tipi.context import RunInfo
from tipi.helpers import logger
from tipi.permanences.loggers import (
    BasicLogger,
    MultiLogger,
    TensorBoardLogger,
    WandBLogger,
    read_metrics,
    redact,
)
from tipi.runid import new_run_id

KEY = "0123456789abcdef0123456789abcdef01234567"  # an API key's shape; must never be written


@pytest.fixture(autouse=True)
def no_wandb_setup(tmp_path, monkeypatch):
    """W&B as on a machine where nobody ran `wandb login`: offline, quiet."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    import tipi.permanences.loggers.wandb_run as wandb_run

    monkeypatch.setattr(wandb_run, "_announced", set())


def controller(tmp_path, reporter=None):
    from tipi.config.resolve import ResolvedPermanence
    from tipi.config.schema import PermanenceSpec
    from tipi.errors import Location
    from tipi.lifecycle import Controller

    declared = {
        "files": (BasicLogger, {"log_dir": tmp_path / "logs/files"}),
        "tb": (TensorBoardLogger, {"log_dir": tmp_path / "logs/tensorboard"}),
        "wb": (WandBLogger, {"log_dir": tmp_path / "logs", "project": "p", "tags": ["paper"]}),
        "all": (MultiLogger, {"loggers": ["files", "tb", "wb"]}),
    }
    perms = {
        name: ResolvedPermanence(
            PermanenceSpec(name, cls.__name__, params, Location()), cls, params
        )
        for name, (cls, params) in declared.items()
    }
    configs = {name: params for name, (_, params) in declared.items()}
    return Controller(perms, reporter), configs


def make(tmp_path, run_id, steps, reporter=None):
    """What a make does with its loggers: each step runs with its RunInfo and logs."""
    ctrl, configs = controller(tmp_path, reporter)
    with ctrl:
        for name, step_type, params, log in steps:
            info = RunInfo(run_id, "digits", name, step_type, params, configs)
            with context.running(ctrl, name, info):
                log(ctrl.get_permanence("all"))


def train(epochs):
    def log(loggers):
        for epoch in range(1, epochs + 1):
            loggers.log_metrics({"val_accuracy": epoch / 10}, step=epoch, epoch=epoch)

    return log


def evaluate(loggers):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loggers.log_metrics({"val_accuracy": 0.95})
    loggers.log_figure("confusion_matrix", plt.subplots(figsize=(1, 1))[0])


FIRST = "20250301-142233-9f3a"
SECOND = "20250302-080000-0b1c"
SECRET_PARAMS = {"lr": 0.01, "api_key": "sk-literal-secret", "tokenizer": "bert"}


def two_makes(tmp_path, monkeypatch, reporter=None):
    monkeypatch.setenv("MY_SERVICE_TOKEN", KEY)  # a secret in the environment...
    params = {**SECRET_PARAMS, "url": f"https://x.example/?k={KEY}"}  # ...leaking into a param
    make(
        tmp_path,
        FIRST,
        [
            ("head", "Train", params, train(3)),
            ("full", "Train", {"lr": 0.001}, train(2)),
            ("evaluate", "Evaluate", {"part": "val"}, evaluate),
        ],
        reporter,
    )
    # the next make: only evaluate reran
    make(tmp_path, SECOND, [("evaluate", "Evaluate", {"part": "val"}, evaluate)])


def wandb_runs(tmp_path):
    files = sorted((tmp_path / "logs/wandb").glob("offline-run-*/run-*.wandb"))
    return {run(f)["name"]: f for f in files}


@pytest.mark.slow  # wandb starts its service process
def test_wandb_a_run_per_step_grouped_by_the_make(tmp_path, monkeypatch):
    from tipi.report.events import ListReporter

    reporter = ListReporter()
    two_makes(tmp_path, monkeypatch, reporter)
    runs = wandb_runs(tmp_path)
    assert set(runs) == {
        f"digits/head {FIRST}",
        f"digits/full {FIRST}",
        f"digits/evaluate {FIRST}",
        f"digits/evaluate {SECOND}",
    }
    head = run(runs[f"digits/head {FIRST}"])
    assert head["job_type"] == "Train"
    assert head["tags"] == ["paper", "digits"]
    assert head["project"] == "p"
    config = head["config"]
    assert config["lr"] == 0.01 and config["tokenizer"] == "bert"
    assert config["api_key"] == "<hidden>" and config["url"] == "<hidden>"
    assert config["permanences"]["files"] == {"log_dir": str(tmp_path / "logs/files")}
    assert config["permanences"]["wb"]["tags"] == ["paper"]
    assert run(runs[f"digits/evaluate {FIRST}"])["job_type"] == "Evaluate"
    # one global step across the make's steps; each step's metrics in its own run
    steps = {
        name: [(int(r["_step"]), r.get("epoch"), r.get("val_accuracy")) for r in history(path)]
        for name, path in runs.items()
    }
    assert steps[f"digits/head {FIRST}"] == [(1, "1", "0.1"), (2, "2", "0.2"), (3, "3", "0.3")]
    assert steps[f"digits/full {FIRST}"] == [(4, "1", "0.1"), (5, "2", "0.2")]
    assert steps[f"digits/evaluate {FIRST}"] == [(6, None, "0.95")]
    assert steps[f"digits/evaluate {SECOND}"] == [(1, None, "0.95")]
    notices = [m for kind, m in reporter.events if kind == "notice"]
    assert len(notices) == 1 and "offline runs in" in notices[0] and "wandb sync" in notices[0]
    assert_no_secret(tmp_path)


@pytest.mark.slow  # wandb starts its service process
def test_tensorboard_a_folder_per_run_and_step_with_hparams(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    two_makes(tmp_path, monkeypatch)
    root = tmp_path / "logs/tensorboard/digits"
    folders = sorted(str(p.relative_to(root)) for p in root.glob("*/*"))
    assert folders == [f"{FIRST}/evaluate", f"{FIRST}/full", f"{FIRST}/head", f"{SECOND}/evaluate"]

    def read(folder):
        events = EventAccumulator(str(root / folder), size_guidance={"scalars": 0, "images": 0})
        events.Reload()
        plugin = {
            tag.rsplit("/", 1)[-1]: plugin_data_pb2.HParamsPluginData.FromString(content)
            for tag, content in events.PluginTagToContent("hparams").items()
        }
        hparams = {
            k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
            for k, v in plugin["session_start_info"].session_start_info.hparams.items()
        }
        metrics = {m.name.tag for m in plugin["experiment"].experiment.metric_infos}
        return events, hparams, metrics

    events, hparams, metrics = read(f"{FIRST}/full")
    assert [(s.step, round(s.value, 3)) for s in events.Scalars("val_accuracy")] == [
        (4, 0.1),
        (5, 0.2),
    ]
    assert [(s.step, s.value) for s in events.Scalars("epoch")] == [(4, 1), (5, 2)]
    assert metrics == {"val_accuracy", "epoch"}
    assert hparams["lr"] == 0.001
    assert hparams["permanences.files.log_dir"] == str(tmp_path / "logs/files")
    assert hparams["permanences.all.loggers"] == '["files", "tb", "wb"]'
    _, head, _ = read(f"{FIRST}/head")
    assert head["api_key"] == "<hidden>" and head["tokenizer"] == "bert"
    events, _, _ = read(f"{FIRST}/evaluate")
    assert events.Images("confusion_matrix")[0].step == 6
    assert [s.step for s in read(f"{SECOND}/evaluate")[0].Scalars("val_accuracy")] == [1]
    assert_no_secret(tmp_path)


@pytest.mark.slow  # wandb starts its service process
def test_files_a_folder_per_run_with_hparams_and_the_run_on_every_record(tmp_path, monkeypatch):
    two_makes(tmp_path, monkeypatch)
    root = tmp_path / "logs/files/digits"
    assert sorted(p.name for p in root.iterdir()) == [FIRST, SECOND]
    rows = [json.loads(line) for line in (root / FIRST / "metrics.jsonl").read_text().splitlines()]
    assert [(r["run"], r["step_name"], r["step"], r.get("epoch")) for r in rows] == [
        (FIRST, "head", 1, 1),
        (FIRST, "head", 2, 2),
        (FIRST, "head", 3, 3),
        (FIRST, "full", 4, 1),
        (FIRST, "full", 5, 2),
        (FIRST, "evaluate", 6, None),
    ]
    assert (root / FIRST / "figures/confusion_matrix_6.png").exists()
    hparams = json.loads((root / FIRST / "hparams.json").read_text())
    assert hparams["run"] == FIRST and hparams["pipeline"] == "digits"
    assert hparams["permanences"]["all"] == {"loggers": ["files", "tb", "wb"]}
    head = hparams["steps"]["head"]
    assert head["type"] == "Train"
    assert head["params"]["api_key"] == "<hidden>" and head["params"]["lr"] == 0.01
    assert head["metrics"] == {"val_accuracy": 0.3, "epoch": 3}
    assert hparams["steps"]["evaluate"]["metrics"] == {"val_accuracy": 0.95}
    # `tipi report` reads every run in order
    assert [(r["run"], r["step"]) for r in read_metrics(tmp_path / "logs/files", "digits")][
        -2:
    ] == [
        (FIRST, 6),
        (SECOND, 1),
    ]
    assert_no_secret(tmp_path)


def assert_no_secret(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data, path
            assert b"sk-literal-secret" not in data, path


@pytest.mark.slow  # wandb starts its service process
def test_script_init_takes_wandbs_common_arguments_and_says_once_where_metrics_went(
    tmp_path, capsys
):
    wandb_dir = tmp_path / "wb"
    started = logger.init(project="my_research", entity="my_team", dir=wandb_dir)
    logger.log({"loss": 0.5}, step=1, epoch=1)
    logger.finish()
    logger.init(
        project="my_research",
        entity="my_team",
        name="baseline",
        group="ablation",
        tags=["small"],
        notes="first try",
        config={"lr": 0.1, "password": "hunter2-hunter2"},
        dir=wandb_dir,
        job_type="train",
    )
    logger.log({"loss": 0.25}, step=1)
    logger.finish()
    assert started.resolved_mode == "offline"
    err = capsys.readouterr().err
    assert err.count("W&B is not set up here") == 1
    assert f"offline runs in {wandb_dir / 'wandb'}/" in err
    first, second = (
        run(f)
        for f in sorted(
            (wandb_dir / "wandb").glob("offline-run-*/run-*.wandb"),
            key=lambda f: run(f)["name"] == "baseline",
        )
    )
    assert first["project"] == "my_research" and first["entity"] == "my_team"
    assert first["group"] == "" and first["config"] == {"_wandb": {}}
    assert second["name"] == "baseline" and second["group"] == "ablation"
    assert second["tags"] == ["small"] and second["notes"] == "first try"
    assert second["job_type"] == "train"
    assert second["config"]["lr"] == 0.1 and second["config"]["password"] == "<hidden>"


def test_script_init_with_files_or_tensorboard_keeps_the_config(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger.init(project="exp", backend="files", log_dir=tmp_path, entity="team", config={"lr": 0.1})
    logger.log({"loss": 0.5}, epoch=1)
    logger.finish()
    assert "the files logger ignores entity (W&B's)" in capsys.readouterr().err
    (folder,) = (tmp_path / "exp").iterdir()
    record = json.loads((folder / "metrics.jsonl").read_text())
    assert record["run"] == folder.name and record["step"] == 1 and record["epoch"] == 1
    saved = json.loads((folder / "hparams.json").read_text())
    assert saved["steps"]["main"]["params"] == {"lr": 0.1}
    assert saved["steps"]["main"]["metrics"] == {"loss": 0.5, "epoch": 1}

    logger.init(project="exp", backend="tensorboard", log_dir=tmp_path / "tb", config={"lr": 0.1})
    logger.log({"loss": 0.5}, step=3)
    logger.finish()
    (folder,) = (tmp_path / "tb/exp").iterdir()
    events = EventAccumulator(str(folder))
    events.Reload()
    assert [s.step for s in events.Scalars("loss")] == [3]
    assert set(events.PluginTagToContent("hparams")) == {
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    }


def test_a_pipeline_train_logs_epochs_on_one_step_axis_across_phases(project, monkeypatch):
    """Two Train phases of a real make: the second phase's epochs continue the first's steps."""
    from tipi.engine import Engine

    monkeypatch.setenv("CI", "true")
    project.pipeline(
        "t",
        """
        [permanences.device]
        type = "Device"

        [permanences.net]
        type = "Network"
        params = { model = "small_cnn", params = { width = 4 } }

        [permanences.files]
        type = "BasicLogger"
        params = { log_dir = "logs" }

        [processes.prepare]
        type = "PrepareDigits"

        [processes.head]
        type = "Train"
        inputs = { data = "data/t/splits.pt" }
        params = { epochs = 2, lr = 0.01, loggers = "files", checkpoint_seconds = 1000 }

        [processes.full]
        type = "Train"
        inputs = { data = "data/t/splits.pt", init = "out/t/head/model.pt" }
        params = { epochs = 1, lr = 0.001, loggers = "files", checkpoint_seconds = 1000 }
        """,
    )
    Engine("t").make()
    rows = read_metrics(project.root / "logs", "t")
    assert [(r["step_name"], r["step"], r["epoch"]) for r in rows] == [
        ("head", 1, 1),
        ("head", 2, 2),
        ("full", 3, 1),
    ]
    assert len({r["run"] for r in rows}) == 1
    assert {"train_loss", "val_loss", "val_accuracy", "lr"} <= set(rows[0])


def test_secrets_are_hidden_by_name_and_by_value(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    assert redact(
        {
            "api_key": "x",
            "wandb": {"apiKey": "x", "project": "p"},
            "hf_token": "x",
            "db_password": "x",
            "tokenizer": "bert",
            "max_tokens": 5,
            "header": "Bearer hf_abcdefghijklmnop",
            "path": Path("a/b"),
            "sizes": (1, 2),
        }
    ) == {
        "api_key": "<hidden>",
        "wandb": {"apiKey": "<hidden>", "project": "p"},
        "hf_token": "<hidden>",
        "db_password": "<hidden>",
        "tokenizer": "bert",
        "max_tokens": 5,
        "header": "<hidden>",
        "path": "a/b",
        "sizes": [1, 2],
    }


def test_run_ids_are_short_and_sort_by_start_time():
    early, late = new_run_id(now=1_700_000_000), new_run_id(now=1_700_000_001)
    assert re.fullmatch(r"20231114-221320-[0-9a-f]{6}", early)
    assert early < late
    assert len({new_run_id() for _ in range(100)}) == 100  # the same second, told apart


def test_run_ids_of_one_second_sort_by_time_too():
    """Two makes within one second: the later one's id sorts after (the report and `tipi runs`
    take the newest run by its id; random digits first made that a coin toss)."""
    times = [1_700_000_000 + k / 1000 for k in range(0, 1000, 7)]
    ids = [new_run_id(now=t) for t in times]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    made = [new_run_id() for _ in range(2000)]  # faster than the clock's ticks: still ordered
    assert made == sorted(made) and len(set(made)) == len(made)


def test_the_report_reads_old_single_files_and_run_folders_in_order(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 3.0}\n')
    for run_id, loss in ((SECOND, 1.0), (FIRST, 2.0)):
        folder = tmp_path / "digits" / run_id
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_text(json.dumps({"run": run_id, "loss": loss}) + "\n")
    other = tmp_path / "other" / "20250303-000000-aaaa"
    other.mkdir(parents=True)
    (other / "metrics.jsonl").write_text('{"loss": 9.0}\n')
    assert [r["loss"] for r in read_metrics(tmp_path, "digits")] == [3.0, 2.0, 1.0]
