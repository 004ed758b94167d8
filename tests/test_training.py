"""Train: phases with freezing, transition rules, schedulers, and resume after SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.training_helpers import FakeTrainer, one_thread  # noqa: F401 - one_thread is autouse
from tipi.engine import Engine
from tipi.errors import ConfigError
from tipi.permanences.network import read_weights
from tipi.permanences.zoo import small_cnn
from tipi.processes.callbacks import EarlyStopping, Transition
from tipi.processes.optim import apply_freeze, build_optimizer, build_scheduler

BASE = """
[permanences.device]
type = "Device"

[permanences.net]
type = "Network"
params = { model = "small_cnn", params = { width = 8 } }

[processes.prepare]
type = "PrepareDigits"
"""

TRAIN = """
[processes.{name}]
type = "Train"
inputs = {{ data = "data/t/splits.pt"{init} }}
params = {params}
"""


def pipeline(project, **steps: str) -> None:
    text = BASE
    for name, params in steps.items():
        init = ', init = "out/t/head/model.pt"' if name == "full" else ""
        text += TRAIN.format(name=name, init=init, params=params)
    project.pipeline("t", text)


def history(project, step: str) -> dict:
    return json.loads(project.read(f"out/t/{step}/history.json"))


def weights(path) -> dict:
    return read_weights(path)


def test_phase_a_frozen_then_phase_b_from_its_weights(project):
    import torch

    pipeline(
        project,
        head='{ epochs = 2, lr = 0.01, freeze = ["features.*"] }',
        full='{ epochs = 1, lr = 0.001, optimizer = { name = "SGD", momentum = 0.9 } }',
    )
    Engine("t").make()
    head = weights(project.root / "out/t/head/model.pt")
    torch.manual_seed(0)
    initial = small_cnn(width=8).state_dict()
    for name, value in head.items():
        if name.startswith("features.") and value.dtype.is_floating_point and "running" not in name:
            assert torch.equal(value, initial[name]), name  # frozen in phase A
    assert not torch.equal(head["classifier.1.weight"], initial["classifier.1.weight"])
    assert history(project, "head")["frozen"][0].startswith("features.")
    full = weights(project.root / "out/t/full/model.pt")
    assert not torch.equal(full["features.0.weight"], head["features.0.weight"])  # unfrozen in B
    # changing phase B reruns phase B only
    summary = Engine("t", overrides=["full.lr=0.0005"]).make()
    assert {r.name for r in summary.results if r.outcome == "ran"} == {"full"}


def test_transition_rule_ends_a_phase_early(project):
    pipeline(
        project, head='{ epochs = 10, lr = 0.01, until = { metric = "val_accuracy", above = 0.3 } }'
    )
    Engine("t").make()
    report = history(project, "head")
    assert report["epochs"] < 10
    assert report["stopped_by"].startswith("transition: val_accuracy")


def test_scheduler_and_optimizer_by_name_and_early_stopping(project):
    pipeline(
        project,
        head=(
            '{ epochs = 3, lr = 0.01, optimizer = { name = "AdamW", weight_decay = 0.01 }, '
            'scheduler = { name = "StepLR", step_size = 1, gamma = 0.5 }, grad_clip = 1.0 }'
        ),
    )
    Engine("t").make()
    rates = [row["lr"] for row in history(project, "head")["history"]]
    assert rates == pytest.approx([0.01, 0.005, 0.0025])
    stopper = EarlyStopping("val_loss", patience=2)
    trainer = FakeTrainer()
    decisions = [
        stopper.on_epoch_end(trainer, e, {"val_loss": v})
        for e, v in enumerate([1, 0.9, 0.95, 0.97])
    ]
    assert decisions == [False, False, False, True]
    assert "did not improve for 2 epochs" in trainer.reason


def test_bad_training_settings_are_clear_errors():
    model = small_cnn(width=4)
    with pytest.raises(ConfigError, match="unknown optimizer 'Adamm'"):
        build_optimizer(model.parameters(), {"name": "Adamm"}, 0.1)
    optimizer = build_optimizer(model.parameters(), {"name": "SGD"}, 0.1)
    with pytest.raises(ConfigError, match="unknown scheduler 'StepL'"):
        build_scheduler(optimizer, {"name": "StepL"})
    with pytest.raises(ConfigError, match="freeze pattern 'featurez.*' matches no parameter"):
        apply_freeze(model, ["featurez.*"])
    with pytest.raises(ConfigError, match="exactly one of"):
        Transition("val_accuracy")


RESUME = (
    BASE.replace('type = "PrepareDigits"', 'type = "PrepareDigits"\nparams = { seed = 1 }')
    + """
[processes.head]
type = "Train"
inputs = { data = "data/t/splits.pt" }
params = { epochs = 4, lr = 0.01, batch_size = 8, checkpoint_every = 10, seed = 7 }
"""
)


def clean_run(tmp_path_factory, text: str):
    """A project of its own with `text` as pipeline t, made once without interruption."""
    reference = tmp_path_factory.mktemp("reference")
    (reference / "pipelines/t").mkdir(parents=True)
    (reference / "pipelines/t/pipeline.toml").write_text(text)
    Engine("t", root=reference).make()
    return reference


def kill_mid_training(project, *args: str, prepare: bool = True, epochs: int = 4) -> dict:
    """Start `tipi make` on project, SIGKILL it once training has checkpointed, return the
    position the checkpoint holds."""
    import torch

    if prepare:
        Engine("t").make(["prepare"])
    resume = project.root / ".tipi_cache/scratch/t/head/resume.pt"
    command = [sys.executable, "-m", "tipi", "make", "-q", *args]
    proc = subprocess.Popen(command, cwd=project.root)
    deadline = time.monotonic() + 120
    while not resume.exists():
        assert proc.poll() is None, "training ended before a checkpoint was seen"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)  # at once: a later kill only risks a finished training
    proc.wait()
    saved = torch.load(resume, map_location="cpu", weights_only=True)["state"]
    assert (saved["epoch"], saved["batch"]) != (epochs, 0), "killed too late to test resuming"
    assert not (project.root / "out/t/head/model.pt").exists()
    return saved


def assert_same_weights(project, reference, output: str = "model.pt") -> None:
    import torch

    resumed = weights(project.root / "out/t/head" / output)
    expected = weights(reference / "out/t/head" / output)
    assert resumed.keys() == expected.keys()
    for name in expected:
        assert torch.equal(resumed[name], expected[name]), name


@pytest.mark.slow
def test_a_checkpoint_of_other_params_is_discarded_not_resumed(project, tmp_path_factory, cli):
    """Killed under lr 0.01, made again under lr 0.003: the result equals a clean run with
    0.003 (resuming would have mixed both), and the discard is said in one line."""
    project.pipeline("t", RESUME)
    changed = RESUME.replace("lr = 0.01", "lr = 0.003")
    reference = clean_run(tmp_path_factory, changed)
    kill_mid_training(project)
    project.pipeline("t", changed)
    result = cli("make", "-p", "t")
    assert result.exit_code == 0, result.stderr
    assert "discarding the resume checkpoint of head: lr 0.01 → 0.003" in result.stderr
    assert "resuming" not in result.stderr
    assert_same_weights(project, reference)


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(project, tmp_path_factory, cli):
    project.pipeline("t", RESUME)
    reference = clean_run(tmp_path_factory, RESUME)
    saved = kill_mid_training(project)
    assert {r.name: r.status for r in Engine("t").status()}["head"] == "will-run"
    result = cli("make", "-p", "t")
    assert result.exit_code == 0, result.stderr
    at = f"epoch {saved['epoch'] + 1}, batch {saved['batch']} (checkpoint of "
    assert f"resuming head at {at}" in result.stderr
    assert "discarding" not in result.stderr
    resume = project.root / ".tipi_cache/scratch/t/head/resume.pt"
    assert_same_weights(project, reference)
    assert (
        history(project, "head")["history"]
        == json.loads((reference / "out/t/head/history.json").read_text())["history"]
    )
    assert not resume.parent.exists()  # scratch removed after success


RICH = """
[permanences.device]
type = "Device"

[permanences.net]
type = "Network"
params = { model = "small_cnn", params = { width = 8 } }

[permanences.data]
type = "Data"
params = { dataset = "synthetic_images", params = { n = 1000 }, num_workers = 2, persistent_workers = true }

[processes.head]
type = "Train"
outputs = { ema = "out/{pipeline}/{name}/ema.pt" }

[processes.head.params]
epochs = 3
batch_size = 8
accumulate = 3
ema = 0.95
checkpoint_every = 6
seed = 5
optimizers = [
  { params = ["features.*"], name = "AdamW", lr = 0.003, scheduler = { name = "StepLR", step_size = 20, gamma = 0.5, interval = "step" } },
  { params = ["classifier.*"], name = "SGD", lr = 0.02, momentum = 0.9, scheduler = { name = "CosineAnnealingLR", T_max = 3 } },
]
"""


@pytest.mark.slow
def test_killed_with_groups_accumulation_ema_and_two_workers_resumes_to_the_same_weights(
    project, tmp_path_factory, cli
):
    """Per-group optimizers and schedulers (one per step), accumulation over 3 batches, EMA
    and two loader workers: a SIGKILLed make resumes to the uninterrupted run's weights,
    EMA weights and history."""
    project.pipeline("t", RICH)
    reference = clean_run(tmp_path_factory, RICH)
    saved = kill_mid_training(project, prepare=False, epochs=3)
    assert saved["batch"] % 3 == 0  # checkpoints fall between optimizer steps
    result = cli("make", "-p", "t")
    assert result.exit_code == 0, result.stderr
    assert f"resuming head at epoch {saved['epoch'] + 1}, batch {saved['batch']}" in result.stderr
    assert_same_weights(project, reference)
    assert_same_weights(project, reference, "ema.pt")
    assert (
        history(project, "head")["history"]
        == json.loads((reference / "out/t/head/history.json").read_text())["history"]
    )
