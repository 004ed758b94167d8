"""Loggers: what each writes is read back (JSONL/PNG, TensorBoard events, W&B run files)."""

from __future__ import annotations

import json
import os
import re

import matplotlib
import pytest

from tests.wandb_records import config, history
from tipi.permanences.loggers import BasicLogger, MultiLogger, TensorBoardLogger, WandBLogger

matplotlib.use("Agg")


def figure():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


def test_basic_logger_writes_jsonl_png_and_hparams(tmp_path):
    logger = BasicLogger(log_dir=tmp_path / "logs")
    logger.initialize()
    logger.log_metrics({"loss": 0.5, "acc": 0.75}, step=1)
    logger.log_metrics({"loss": 0.25})
    logger.log_figure("confusion matrix", figure(), step=3)
    logger.log_hparams({"lr": 0.01, "layers": [1, 2]}, {"acc": 0.9})
    logger.cleanup()
    logger.cleanup()  # finishing twice is harmless
    (run,) = (tmp_path / "logs").iterdir()  # outside a pipeline: a run of the logger's own
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run.name)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["run"], r["step"], r["loss"]) for r in rows] == [
        (run.name, 1, 0.5),
        (run.name, 2, 0.25),
    ]
    assert rows[0]["acc"] == 0.75
    png = run / "figures/confusion_matrix_3.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hparams = json.loads((run / "hparams.json").read_text())
    assert hparams["run"] == run.name
    assert hparams["steps"]["main"]["hparams"] == {"lr": 0.01, "layers": [1, 2]}
    assert hparams["steps"]["main"]["metrics"] == {"loss": 0.25, "acc": 0.9}


def test_metrics_must_be_numbers(tmp_path):
    logger = BasicLogger(log_dir=tmp_path)
    logger.initialize()
    with pytest.raises(TypeError, match="metrics must be numbers"):
        logger.log_metrics({"loss": "low"})
    logger.cleanup()


def test_tensorboard_event_files_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(log_dir=tmp_path / "tb")
    logger.initialize()
    for step, loss in enumerate([0.9, 0.5, 0.2], start=1):
        logger.log_metrics({"train/loss": loss}, step=step)
    logger.log_figure("curve", figure(), step=3)
    logger.log_hparams({"lr": 0.01}, {"hparam/acc": 0.8})
    logger.cleanup()
    (run,) = (tmp_path / "tb").iterdir()
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = events.Scalars("train/loss")
    assert [(s.step, round(s.value, 3)) for s in scalars] == [(1, 0.9), (2, 0.5), (3, 0.2)]
    assert events.Images("curve")[0].step == 3
    assert "hparam/acc" in events.Tags()["scalars"]


@pytest.mark.slow  # wandb starts its service process
def test_wandb_offline_run_files_hold_what_was_logged_and_never_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "sk-never-write-me-0123456789")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandBLogger(project="tipi-test", log_dir=tmp_path / "logs", mode="offline")
    logger.initialize()
    logger.log_metrics({"loss": 0.5}, step=1)
    logger.log_metrics({"loss": 0.25}, step=2)
    logger.log_hparams({"lr": 0.1})
    logger.cleanup()
    run_files = list((tmp_path / "logs/wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    rows = history(run_files[0])
    assert [(r["_step"], r["loss"]) for r in rows] == [("1", "0.5"), ("2", "0.25")]
    assert config(run_files[0])["lr"] == "0.1"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"sk-never-write-me" not in path.read_bytes(), path


def test_wandb_is_offline_without_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert WandBLogger(mode="auto").resolved_mode == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x")
    assert WandBLogger(mode="auto").resolved_mode == "online"


def test_several_loggers_at_once(tmp_path):
    from tipi.config.resolve import ResolvedPermanence
    from tipi.config.schema import PermanenceSpec
    from tipi.errors import Location
    from tipi.lifecycle import Controller

    def declared(name, cls, params):
        return ResolvedPermanence(
            PermanenceSpec(name, cls.__name__, params, Location()), cls, params
        )

    perms = {
        "files": declared("files", BasicLogger, {"log_dir": tmp_path / "files"}),
        "tb": declared("tb", TensorBoardLogger, {"log_dir": tmp_path / "tb"}),
        "all": declared("all", MultiLogger, {"loggers": ["files", "tb"]}),
    }
    with Controller(perms) as controller:
        controller.get_permanence("all").log_metrics({"loss": 1.0}, step=1)
    assert "loss" in next((tmp_path / "files").glob("*/metrics.jsonl")).read_text()
    assert os.path.getsize(next((tmp_path / "tb").glob("*/events.out.tfevents.*"))) > 0


def test_seaborn_style_graphs_are_logged_through_their_figure(tmp_path):
    import matplotlib.pyplot as plt

    _, axes = plt.subplots()  # seaborn returns Axes or grids that carry `.figure`
    logger = BasicLogger(log_dir=tmp_path)
    logger.initialize()
    logger.log_seaborn_graph("dist", axes, step=1)
    logger.cleanup()
    assert list(tmp_path.glob("*/figures/dist_1.png"))
    with pytest.raises(TypeError, match="cannot find a matplotlib figure"):
        logger.log_seaborn_graph("bad", object())


@pytest.mark.slow  # wandb starts its service process
def test_inside_a_wandb_sweep_trial_the_pipeline_logs_into_the_agents_run(tmp_path, monkeypatch):
    """What `run_sweep`'s trial relies on: the W&B logger of a make run in the trial reuses the
    agent's run (and leaves it open) instead of finishing it and starting another."""
    import wandb

    from tipi.permanences.loggers import SWEEP_RUN_VARIABLE

    monkeypatch.setenv("WANDB_SILENT", "true")
    trial = wandb.init(project="tipi-test", dir=str(tmp_path), mode="offline")
    try:
        monkeypatch.setenv(SWEEP_RUN_VARIABLE, trial.id)
        logger = WandBLogger(project="tipi-test", log_dir=tmp_path / "logs", mode="offline")
        logger.initialize()
        assert logger.run is trial
        logger.log_metrics({"loss": 0.5}, step=1)
        logger.cleanup()
        assert wandb.run is trial  # still open: the trial logs the variant's metrics next
        trial.log({"accuracy": 0.9}, step=2)  # commits step 1: the logger's row
        # The trial's run holds what the logger logged (read in-process: the run file is
        # written asynchronously).
        assert trial.summary["loss"] == 0.5
    finally:
        trial.finish()
    assert len(list(tmp_path.glob("wandb/offline-run-*"))) == 1


def test_sweep_parameters_travel_to_wandb_nested_and_come_back_flat():
    from tipi.permanences.loggers import flat_parameters, nested_parameters

    flat = {"train.lr": {"values": [0.1, 0.2]}, "train.optimizer.momentum": {"value": 0.9}}
    nested = nested_parameters(flat)
    assert nested == {
        "train": {
            "parameters": {
                "lr": {"values": [0.1, 0.2]},
                "optimizer": {"parameters": {"momentum": {"value": 0.9}}},
            }
        }
    }
    run_config = {"train": {"lr": 0.1, "optimizer": {"momentum": 0.9}}}
    assert flat_parameters(run_config) == {"train.lr": 0.1, "train.optimizer.momentum": 0.9}
