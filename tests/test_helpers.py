"""Script helpers: the same calls standalone and inside `tipi make`."""

from __future__ import annotations

import json

import pytest

from tipi.engine import Engine
from tipi.helpers import device_manager, logger, progress_bar


@pytest.fixture(autouse=True)
def plain_output(monkeypatch):
    monkeypatch.setenv("CI", "true")


def test_progress_bar_takes_tqdms_common_call_forms(capsys):
    assert list(progress_bar(range(3), desc="list")) == [0, 1, 2]

    def gen():
        yield from "abc"

    assert "".join(progress_bar(gen(), desc="gen", total=3)) == "abc"
    outer = []
    for i in progress_bar(range(2), desc="outer"):
        for j in progress_bar(range(2), desc="inner", leave=False):
            outer.append((i, j))
    assert outer == [(0, 0), (0, 1), (1, 0), (1, 1)]
    with progress_bar(total=5, desc="manual", unit="img") as bar:
        bar.update(2)
        bar.set_postfix(loss=0.123456, step=2)
        bar.update(3)
    assert len(progress_bar(range(7), disable=True)) == 7
    assert list(progress_bar([1, 2], disable=True)) == [1, 2]
    err = capsys.readouterr().err
    for line in (
        "[progress] list: 100%|██████████| 3/3 [",
        "[progress] gen: 100%|██████████| 3/3 [",
        "img/s, loss=0.123, step=2]",
    ):
        assert line in err


def test_a_long_loop_updates_the_display_in_batches(capsys):
    import tipi.permanences.progress as progress_module

    calls = []
    real = progress_module.ProgressManager.advance
    progress_module.ProgressManager.advance = lambda self, name, amount=1: (
        calls.append(amount) or real(self, name, amount)
    )
    try:
        assert sum(progress_bar(range(200_000), desc="long")) == sum(range(200_000))
    finally:
        progress_module.ProgressManager.advance = real
    assert sum(calls) == 200_000
    assert len(calls) < 1000  # not one display update per item


def test_device_manager_standalone_picks_the_cpu_here(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(device_manager, "_standalone", None)
    assert device_manager.get_device() == torch.device("cpu")
    assert device_manager.get_device() == torch.device("cpu")
    assert capsys.readouterr().err.count("no CUDA device available") == 1


@pytest.mark.slow  # wandb starts its service process
def test_logger_standalone_writes_files_or_offline_wandb(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    logger.init(project="files-run", backend="files", log_dir=tmp_path)
    logger.log({"loss": 0.5}, step=1)
    logger.finish()
    (written,) = (tmp_path / "files-run").glob("*/metrics.jsonl")  # files-run/<run id>/
    assert json.loads(written.read_text())["loss"] == 0.5
    run = logger.init(project="wandb-run", log_dir=tmp_path / "wb")  # auto: wandb is installed
    assert run.resolved_mode == "offline"
    logger.log({"loss": 0.25}, step=1)
    logger.finish()
    assert list((tmp_path / "wb/wandb").glob("offline-run-*/run-*.wandb"))


PIPELINE = """
[permanences.device]
type = "Device"
params = { device = "cpu" }

[permanences.progress]
type = "ProgressManager"
params = { log_interval = 0 }

[permanences.files]
type = "BasicLogger"
params = { log_dir = "logs" }

[processes.fit]
type = "fit"
params = { epochs = 2 }
"""

STEPS = """
from pathlib import Path
from tipi.decorators import pipeline_process
from tipi.helpers import device_manager, logger, progress_bar


@pipeline_process(outputs={"report": "out/report.txt"})
def fit(epochs: int = 1, scale: float = 1.0, report: Path | None = None) -> str:
    device = device_manager.get_device()
    for epoch in progress_bar(range(epochs), desc="epochs"):
        for _ in progress_bar(range(3), desc="batches"):
            pass
        logger.log({"loss": scale / (epoch + 1)}, step=epoch)
    text = f"{device} {epochs} {scale}"
    if report is not None:
        report.write_text(text)
    return text
"""


def test_inside_a_pipeline_the_helpers_use_its_permanences(project, capsys):
    project.pipeline("h", PIPELINE, steps=STEPS)
    Engine("h").make()
    assert project.read("out/report.txt") == "cpu 2 1.0"
    (written,) = (project.root / "logs").glob("**/metrics.jsonl")  # logs/[h/]<run id>/
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert [r["loss"] for r in rows] == [1.0, 0.5]
    err = capsys.readouterr().err
    assert "[progress]   epochs: 100%|██████████| 2/2 [" in err  # nested under the step's bar
    assert "[progress]     batches: 100%|██████████| 3/3 [" in err  # and under epochs


def test_a_decorated_function_stays_a_function_and_caches_like_a_class(project):
    folder = project.pipeline("h", PIPELINE, steps=STEPS)
    from tipi.registry import Registry

    fit = Registry(folder, project.root).local()["fit"]
    from tipi.config.params import param_infos

    infos, _ = param_infos(fit)
    assert [(i.name, i.type_label, i.default) for i in infos] == [
        ("epochs", "int", 1),
        ("scale", "float", 1.0),
    ]
    assert Engine("h").make().results[0].outcome == "ran"
    assert Engine("h").make().results[0].outcome == "skipped"
    summary = Engine("h", overrides=["fit.scale=2"]).make()
    assert summary.results[0].reasons == ("params changed: scale 1.0 → 2.0",)
    (folder / "steps.py").write_text(
        STEPS.replace('text = f"{device}', 'text = "v2 " + f"{device}')
    )
    summary = Engine("h", overrides=["fit.scale=2"]).make()
    assert summary.results[0].reasons == ("code changed: pipelines/h/steps.py: fit",)
    assert project.read("out/report.txt") == "v2 cpu 2 2.0"


def test_decorated_params_are_checked_like_class_params(project, cli):
    project.pipeline("h", PIPELINE.replace("epochs = 2", 'epochs = "two"'), steps=STEPS)
    result = cli("make", "-p", "h")
    assert result.exit_code == 2
    assert "processes.fit.params.epochs: expected int, found 'two' (str)" in result.stderr


@pytest.mark.slow  # wandb starts its service process
def test_the_decorated_function_is_still_callable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # standalone, logger.log opens a default logger under ./logs
    monkeypatch.setenv("WANDB_MODE", "offline")
    namespace: dict = {"__name__": "decorated_module"}
    exec(STEPS, namespace)
    try:
        assert namespace["fit"](epochs=1, scale=3.0, report=tmp_path / "r.txt") == "cpu 1 3.0"
    finally:
        logger.finish()
    assert (tmp_path / "r.txt").read_text() == "cpu 1 3.0"
    assert list((tmp_path / "logs/wandb").glob("offline-run-*"))
