"""Network, Data, Hyperparameters, and every built-in permanence declared in a pipeline."""

from __future__ import annotations

import json

import pytest

from tipi.engine import Engine
from tipi.errors import ConfigError
from tipi.permanences.data import Data
from tipi.permanences.hyperparameters import Hyperparameters
from tipi.permanences.network import Network


def test_network_from_the_zoo_checkpoints_atomically_and_loads_weights_only(tmp_path):
    import torch

    net = Network("small_cnn", {"width": 4}, device="", checkpoint=tmp_path / "m.pt")
    net.initialize()
    net.validate()
    net.optimizer = torch.optim.SGD(net.model.parameters(), lr=0.1)
    net.model(torch.randn(2, 1, 8, 8)).sum().backward()
    net.optimizer.step()
    net.checkpoint()
    saved = {k: v.clone() for k, v in net.model.state_dict().items()}
    other = Network("small_cnn", {"width": 4}, device="")
    other.initialize()
    other.optimizer = torch.optim.SGD(other.model.parameters(), lr=0.1)
    other.load(tmp_path / "m.pt")
    for key, value in other.model.state_dict().items():
        assert torch.equal(value, saved[key])
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left
    assert net.get_state()["parameters"] > 0


def test_network_refuses_pickled_objects(tmp_path):
    import torch

    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": object()}, path)
    net = Network("mlp", device="")
    net.initialize()
    with pytest.raises(Exception, match="Weights only load failed|weights_only"):
        net.load(path)


def test_network_factory_errors_are_clear():
    with pytest.raises(ConfigError, match="unknown model 'small_cn'") as info:
        Network("small_cn", device="").initialize()
    assert "did you mean 'small_cnn'" in info.value.hint
    with pytest.raises(ConfigError, match="rejected its params"):
        Network("mlp", {"bogus": 1}, device="").initialize()


def test_data_splits_with_a_seed_and_loads_batches():
    data = Data(
        "synthetic_images", {"n": 100}, split=[0.6, 0.2, 0.2], seed=3, batch_size=16, device=""
    )
    data.initialize()
    data.validate()
    assert data.get_state() == {"train": 60, "val": 20, "test": 20}
    images, labels = next(iter(data.train_loader))
    assert images.shape == (16, 1, 8, 8) and labels.shape == (16,)
    assert not data.train_loader.pin_memory  # CPU only
    again = Data("synthetic_images", {"n": 100}, split=[0.6, 0.2, 0.2], seed=3, device="")
    again.initialize()
    assert data.parts["test"].indices == again.parts["test"].indices
    first = [y.tolist() for _, y in data.train_loader]
    assert first == [y.tolist() for _, y in data.train_loader]  # seeded shuffling


def test_data_rejects_bad_splits():
    with pytest.raises(ConfigError, match="three fractions adding up to 1"):
        Data("synthetic_images", split=[0.5, 0.5, 0.5])


def test_hyperparameters():
    hp = Hyperparameters({"lr": 0.01}, sweep={"method": "grid"})
    assert hp["lr"] == 0.01 and hp.get("x", 3) == 3
    with pytest.raises(KeyError, match="no hyperparameter 'epochs'"):
        hp["epochs"]


PIPELINE = """
[permanences.device]
type = "Device"

[permanences.progress]
type = "ProgressManager"

[permanences.files]
type = "BasicLogger"
params = { log_dir = "logs/files" }

[permanences.tb]
type = "TensorBoardLogger"
params = { log_dir = "logs/tb" }

[permanences.loggers]
type = "MultiLogger"
params = { loggers = ["files", "tb"] }

[permanences.net]
type = "Network"
params = { model = "mlp", params = { hidden = 16 } }

[permanences.data]
type = "Data"
params = { dataset = "synthetic_images", params = { n = 64 }, batch_size = 16 }

[permanences.hp]
type = "Hyperparameters"
params = { values = { lr = 0.1 } }

[processes.fit]
type = "Fit"
params = { fail = false }
outputs = { report = "out/report.json" }
"""

STEPS = """
import json
import torch
from tipi import PipelineProcess

CLEANED = []


class Fit(PipelineProcess):
    def __init__(self, controller, force: bool = False, fail: bool = False) -> None:
        super().__init__(controller, force)
        self.fail = fail

    def execute(self) -> None:
        get = self.controller.get_permanence
        device, net, data = get("device"), get("net"), get("data")
        loggers, hp, progress = get("loggers"), get("hp"), get("progress")
        optimizer = torch.optim.SGD(net.model.parameters(), lr=hp["lr"])
        net.optimizer = optimizer
        for step, (x, y) in enumerate(progress.track(data.train_loader, "batches"), start=1):
            loss = torch.nn.functional.cross_entropy(net.model(x.to(device.device)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loggers.log_metrics({"loss": loss.item()}, step=step)
        if self.fail:
            raise RuntimeError("fit failed after using every permanence")
        self.outputs["report"].write_text(json.dumps({"device": device.name, "steps": step}))
"""


def test_every_builtin_declared_in_toml_and_used_by_a_step(project, monkeypatch):
    monkeypatch.setenv("CI", "true")
    project.pipeline("ml", PIPELINE, steps=STEPS)
    summary = Engine("ml").make()
    assert [r.outcome for r in summary.results] == ["ran"]
    report = json.loads(project.read("out/report.json"))
    assert report == {"device": "cpu", "steps": 4}
    (written,) = (project.root / "logs/files").glob("**/metrics.jsonl")  # a folder per run
    assert len(written.read_text().splitlines()) == 4
    assert list((project.root / "logs/tb").glob("**/fit/events.out.tfevents.*"))


def test_device_and_loggers_do_not_affect_results_but_network_does(project, monkeypatch):
    monkeypatch.setenv("CI", "true")
    project.pipeline("ml", PIPELINE, steps=STEPS)
    Engine("ml").make()
    assert (
        Engine("ml", overrides=["device.max_usage=0.5", "files.log_dir='logs/x'"])
        .status()[0]
        .status
        == "up-to-date"
    )
    rows = Engine("ml", overrides=["net.params={hidden = 32}"]).status()
    assert rows[0].status == "will-run"
    assert rows[0].reasons == (
        "permanence 'net' config changed: params {'hidden': 16} → {'hidden': 32}",
    )


def test_every_initialized_permanence_is_cleaned_up_after_a_failing_step(project, monkeypatch):
    monkeypatch.setenv("CI", "true")
    project.pipeline("ml", PIPELINE.replace("fail = false", "fail = true"), steps=STEPS)
    import tipi.lifecycle

    cleaned: list[str] = []
    real = tipi.lifecycle.Controller.cleanup

    def spy(self):
        cleaned.extend(reversed(self.initialized))
        return real(self)

    monkeypatch.setattr(tipi.lifecycle.Controller, "cleanup", spy)
    with pytest.raises(Exception, match="fit failed"):
        Engine("ml").make()
    assert set(cleaned) == {"device", "net", "data", "files", "tb", "loggers", "hp", "progress"}
    assert cleaned[0] == "progress"  # reverse order of first use
    assert not (project.root / "out/report.json").exists()
    # the loggers were finished: their files are complete and closed
    (written,) = (project.root / "logs/files").glob("**/metrics.jsonl")
    assert len(written.read_text().splitlines()) == 4
