"""Logs across makes (issue 31, item 6), through a real make: each step's W&B run is named with
the make's run id, TensorBoard's folder holds it, and an Evaluate step's logger run carries the
params of the steps upstream of it (`train.lr`) as its config / hparams; secrets stay hidden.
Read back with the backends' own readers (wandb's run file, TensorBoard's EventAccumulator)."""

from __future__ import annotations

import pytest

from tests.wandb_records import run

PIPELINE = """
[permanences.wb]
type = "WandBLogger"
params = { project = "p", log_dir = "logs" }

[permanences.tb]
type = "TensorBoardLogger"
params = { log_dir = "logs/tensorboard" }

[permanences.all]
type = "MultiLogger"
params = { loggers = ["wb", "tb"] }

[processes.prepare]
type = "Prepare"
params = { size = 3 }

[processes.train]
type = "Train"
params = { lr = 0.01, api_key = "sk-literal-secret" }

[processes.evaluate]
type = "Evaluate"
params = { part = "val" }
"""

STEPS = """
from pathlib import Path
from tipi import PipelineProcess
from tipi.helpers import logger


class Prepare(PipelineProcess):
    outputs = {"data": "out/data"}

    def __init__(self, controller, force=False, size: int = 3):
        super().__init__(controller, force)

    def execute(self):
        self.outputs["data"].mkdir()
        (self.outputs["data"] / "x.txt").write_text("x")


class Train(PipelineProcess):
    inputs = {"data": "out/data"}
    outputs = {"model": "out/model.txt"}

    def __init__(self, controller, force=False, lr: float = 0.1, api_key: str = ""):
        super().__init__(controller, force)

    def execute(self):
        logger.log({"loss": 0.5}, step=1)
        self.outputs["model"].write_text("m")


class Evaluate(PipelineProcess):
    inputs = {"model": "out/model.txt"}
    outputs = {"score": "out/score.txt"}

    def __init__(self, controller, force=False, part: str = "val"):
        super().__init__(controller, force)

    def execute(self):
        logger.log({"accuracy": 0.9})
        self.outputs["score"].write_text("0.9")
"""


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.mark.slow  # wandb starts its service process
def test_each_makes_logger_runs_are_named_by_run_and_carry_upstream_params(project):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from tipi.engine import Engine

    project.pipeline("digits", PIPELINE, steps=STEPS)
    Engine("digits").make()
    Engine("digits", overrides=["evaluate.part=test"]).make()  # only evaluate runs again
    runs = sorted((project.root / ".tipi_cache").rglob("runs/*.json"))
    files = sorted((project.root / "logs/wandb").glob("offline-run-*/run-*.wandb"))
    shown = {run(f)["name"]: run(f) for f in files}
    ids = sorted({name.split()[-1] for name in shown})
    assert len(ids) == 2, shown.keys()  # two makes, told apart by their run ids
    first, second = ids
    assert set(shown) == {
        f"digits/train {first}",
        f"digits/evaluate {first}",
        f"digits/evaluate {second}",
    }, runs
    evaluate = shown[f"digits/evaluate {second}"]["config"]
    assert evaluate["part"] == "test"
    assert evaluate["train"]["lr"] == 0.01 and evaluate["prepare"]["size"] == 3
    assert evaluate["train"]["api_key"] == "<hidden>"
    assert "evaluate" not in evaluate  # its own params are at the top
    assert shown[f"digits/train {first}"]["config"]["prepare"] == {"size": 3}

    folder = project.root / "logs/tensorboard/digits" / second / "evaluate"
    events = EventAccumulator(str(folder))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = next(v for k, v in content.items() if k.endswith("session_start_info"))
    hparams = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
    assert hparams["train.lr"].number_value == 0.01
    assert hparams["train.api_key"].string_value == "<hidden>"
    assert hparams["part"].string_value == "test"
    for path in project.root.joinpath("logs").rglob("*"):
        if path.is_file():
            assert b"sk-literal-secret" not in path.read_bytes(), path
