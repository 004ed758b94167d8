"""The research workflow on real digits (issue 30): `until` as a stop, a gate (the whole
budget, then fail if never crossed) and a required stop; a model without a branch starting
the model with one non-strictly, with key prefixes renamed; EMA warm-up, loader settings on
the splits route and step intervals for validation and logging."""

from __future__ import annotations

import json

import pytest

from tests.training_helpers import one_thread  # noqa: F401 - one_thread is autouse
from tipi.permanences.network import read_checkpoint

MODELS = '''
import torch
from torch import nn


class Net(nn.Module):
    """`body` (OFF: the only feature extractor) or `features` + `branch` (ON: a modulation
    branch beside it, zero-initialized so ON starts as OFF's function)."""

    def __init__(self, branch: bool, width: int = 4):
        super().__init__()
        body = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        if branch:
            self.features = body
            self.branch = nn.Conv2d(1, width, 3, padding=1)
            nn.init.zeros_(self.branch.weight)
            nn.init.zeros_(self.branch.bias)
        else:
            self.body = body
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, 10))

    def forward(self, x):
        if hasattr(self, "branch"):
            return self.classifier(self.features(x) * (1 + self.branch(x)))
        return self.classifier(self.body(x))


def net(branch: bool = False, width: int = 4):
    return Net(branch, width)
'''

HEAD = """
[permanences.device]
type = "Device"

[permanences.off]
type = "Network"
params = { model = "models:net", params = { branch = false } }

[permanences.on]
type = "Network"
params = { model = "models:net", params = { branch = true } }

[processes.prepare]
type = "PrepareDigits"

[processes.a]
type = "Train"
inputs = { data = "data/w/splits.pt" }

[processes.a.params]
model = "off"
batch_size = 64
lr = 0.02
"""

B = """
[processes.b]
type = "Train"
inputs = { data = "data/w/splits.pt", init = "out/w/a/model.pt" }

[processes.b.params]
model = "on"
epochs = 1
batch_size = 64
"""


def _history(project, step: str) -> dict:
    return json.loads((project.root / f"out/w/{step}/history.json").read_text())


def test_until_stop_gate_and_required_stop(project, cli):
    """stop ends at the first crossing; gate trains every epoch and says when it passed; a
    gate or a required stop that never crosses fails (exit 1) with the best value."""
    project.pipeline(
        "w", HEAD + 'epochs = 3\nuntil = { metric = "val_accuracy", above = 0.2 }\n', models=MODELS
    )
    result = cli("make", "-p", "w")
    assert result.exit_code == 0, result.stderr
    assert _history(project, "a")["epochs"] == 1
    assert _history(project, "a")["stopped_by"].startswith("transition: val_accuracy")

    gate = "a.until={ metric = 'val_accuracy', above = 0.2, mode = 'gate' }"
    result = cli("make", "-p", "w", "--set", gate)
    assert result.exit_code == 0, result.stderr
    history = _history(project, "a")
    assert history["epochs"] == 3 and history["gate_passed"]["epoch"] == 1
    assert history["stopped_by"] == "3 epochs (gate passed at epoch 1)"
    assert "a: gate passed at epoch 1 (val_accuracy" in result.stderr
    assert "training on to the budget of 3 epochs" in result.stderr

    never = "a.until={ metric = 'val_loss', below = 0.0001, mode = 'gate' }"
    result = cli("make", "-p", "w", "--set", never, "--set", "a.epochs=2")
    assert result.exit_code == 1
    assert "phase 'a' did not pass its gate: val_loss never went below 0.0001 in 2 epochs" in (
        result.stderr
    )
    assert "(best " in result.stderr and "ended by the cap of 2 epochs" in result.stderr

    required = "a.until={ metric = 'val_loss', below = 0.0001, required = true }"
    result = cli("make", "-p", "w", "--set", required, "--set", "a.epochs=1")
    assert result.exit_code == 1 and "did not pass its gate" in result.stderr

    loose = "a.until={ metric = 'val_loss', below = 0.1, mode = 'gate', required = false }"
    result = cli("make", "-p", "w", "--set", loose)
    assert result.exit_code == 2
    assert "processes.a.params.until.required: a gate is always required" in result.stderr


def test_off_weights_start_the_on_model_non_strictly(project, cli):
    """The seed-004 case: the OFF model (no branch, its feature block named `body`) starts
    the ON model (`features` + `branch`): strict, it is one clear error; with `init_map`
    and `init_strict = false` the features and classifier load, the branch keeps its
    built (zero) weights, and the summary and metadata list what was left out."""
    import torch

    project.pipeline("w", HEAD + "epochs = 1\n" + B, models=MODELS)
    result = cli("make", "-p", "w")
    assert result.exit_code == 2
    assert "processes.b.params.init_strict: the weights of" in result.stderr
    assert "4 missing (branch.bias, branch.weight, features.0.bias, features.0.weight)" in (
        result.stderr
    )
    assert "2 unexpected (body.0.bias, body.0.weight)" in result.stderr
    assert "set init_strict = false" in result.stderr and "Traceback" not in result.stderr

    project.pipeline(
        "w",
        HEAD + "epochs = 1\n" + B + 'init_strict = false\ninit_map = { "body." = "features." }\n'
        'freeze = ["features.*"]\n',
        models=MODELS,
    )
    result = cli("make", "-p", "w")
    assert result.exit_code == 0, result.stderr
    assert "b: init loaded non-strictly: 2 missing (branch.bias, branch.weight)" in result.stderr
    assert "b: init non-strict: 2 missing (branch.bias, branch.weight)" in result.stderr
    a, _ = read_checkpoint(project.root / "out/w/a/model.pt")
    b, metadata = read_checkpoint(project.root / "out/w/b/model.pt")
    assert torch.equal(a["body.0.weight"], b["features.0.weight"])  # frozen: loaded as is
    assert metadata["init"]["missing"] == ["branch.bias", "branch.weight"]
    assert metadata["init"]["unexpected"] == [] and metadata["init"]["strict"] is False
    assert metadata["init"]["mapped"] == {"body.": "features."}
    assert metadata["phases"][-1]["init"]["missing"] == ["branch.bias", "branch.weight"]
    assert "init" not in metadata["phases"][0]
    assert _history(project, "b")["init"]["missing"] == ["branch.bias", "branch.weight"]


def test_network_load_non_strict_with_a_key_map(tmp_path):
    import torch

    from tipi.permanences.network import Network

    saved = tmp_path / "w.pt"
    torch.save({"layer.weight": torch.ones(2, 2), "extra": torch.zeros(1)}, saved)
    network = Network("tipi.permanences.zoo:mlp", {"in_features": 2, "hidden": 2, "num_classes": 2})
    network.model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="1 missing"):
        network.load(saved, key_map={"layer.": "0."})
    metadata = network.load(saved, strict=False, key_map={"layer.": "0."})
    assert torch.equal(network.model[0].weight, torch.ones(2, 2))
    assert metadata["init"]["missing"] == ["0.bias"] and metadata["init"]["unexpected"] == ["extra"]


HOOKS = '''
import json
import os

from tipi.processes.training import Callback


class Record(Callback):
    """Writes what the loaders are to $RECORD (the test reads it)."""

    def on_train_start(self, trainer):
        train = trainer.loaders.train
        with open(os.environ["RECORD"], "w") as out:
            json.dump({"num_workers": train.num_workers,
                       "persistent_workers": train.persistent_workers,
                       "pin_memory": train.pin_memory}, out)
'''


def test_loader_settings_ema_warmup_and_step_intervals_on_the_splits_route(
    project, cli, monkeypatch
):
    """The splits-file route honours num_workers / persistent_workers / pin_memory; EMA
    warm-up lets a 20-step EMA follow the weights (without it, decay 0.99 keeps it near the
    initial ones); validation and logging every N optimizer steps land in history.json."""
    record = project.root / "record.json"
    monkeypatch.setenv("RECORD", str(record))
    params = (
        "epochs = 1\nema = 0.99\nnum_workers = 1\npersistent_workers = true\n"
        'pin_memory = false\ncallbacks = ["hooks:Record"]\n'
        "val_every_n_steps = 5\nlog_every_n_steps = 10\n"
    )
    ema_out = '\n[processes.a.outputs]\nema = "out/w/a/ema.pt"\n'
    text = HEAD.replace('inputs = { data = "data/w/splits.pt" }\n', "") + params
    text = text.replace(
        'type = "Train"\n', 'type = "Train"\ninputs = { data = "data/w/splits.pt" }\n'
    )
    project.pipeline("w", text + ema_out, models=MODELS, hooks=HOOKS)
    result = cli("make", "-p", "w")
    assert result.exit_code == 0, result.stderr
    assert json.loads(record.read_text()) == {
        "num_workers": 1,
        "persistent_workers": True,
        "pin_memory": False,
    }
    history = _history(project, "a")
    steps = history["steps"]
    assert history["global_step"] == 20  # 1257 training digits in batches of 64
    assert [row["step"] for row in steps] == [5, 10, 15, 20]
    assert all("val_loss_step" in row and "ema_val_loss_step" in row for row in steps)
    assert ["train_loss_step" in row for row in steps] == [False, True, False, True]
    warm = history["final"]

    result = cli("make", "-p", "w", "--set", "a.ema_warmup=false")
    assert result.exit_code == 0, result.stderr
    cold = _history(project, "a")["final"]
    assert warm["val_loss"] == cold["val_loss"]  # the weights trained the same
    # warm-up: the average follows the weights; without it, it is still near the start
    assert abs(warm["ema_val_loss"] - warm["val_loss"]) < abs(
        cold["ema_val_loss"] - cold["val_loss"]
    )
    assert warm["ema_val_accuracy"] > cold["ema_val_accuracy"]


def test_the_recorded_preprocessing_of_image_tensors():
    """Train records how its inputs were made without reading a sample (a dataset may draw
    random numbers): the splits file's record, else the shape of image tensors."""
    import torch
    from torch.utils.data import Subset, TensorDataset

    from tipi.processes.training.outputs import input_preprocessing

    images = TensorDataset(torch.zeros(5, 3, 4, 6), torch.zeros(5))
    assert input_preprocessing(images, {}) == {"size": [4, 6], "channels": 3}
    assert input_preprocessing(Subset(images, [0, 1]), {"resize": "box"}) == {
        "size": [4, 6],
        "channels": 3,
        "resize": "box",
    }
    assert input_preprocessing(TensorDataset(torch.zeros(5, 7)), {}) == {}
    assert input_preprocessing([1, 2, 3], {"size": [8, 8]}) == {"size": [8, 8]}
