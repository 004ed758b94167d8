"""Train's step: the loss by name, the TrainingModule hook, tuple/dict/object batches,
torchmetrics by name, accumulation, precision, EMA, callbacks, top-k and determinism."""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from typing import TYPE_CHECKING

import pytest

from tests.training_helpers import PARTS, one_thread, tiny  # noqa: F401 - one_thread is autouse
from tipi.engine import Engine
from tipi.errors import ConfigError
from tipi.permanences.network import read_checkpoint, read_weights
from tipi.processes.training.metrics import TorchMetrics
from tipi.processes.training.numerics import EMA, Precision, resolve_precision
from tipi.processes.training.settings import Named
from tipi.processes.training.step import batch_size, resolve_loss, split_batch, to_device

if TYPE_CHECKING:
    import torch


def history(project, pipeline="s") -> dict:
    return json.loads(project.read(f"out/{pipeline}/fit/history.json"))


def test_a_training_module_hook_trains_on_dict_batches(project):
    project.pipeline(
        "s",
        tiny(
            'epochs = 3\nbatch_size = 16\nlr = 0.01\nmodule = { name = "parts:Reconstruct", scale = 3.0 }',
            model="mlp",
            model_params="{ hidden = 16, num_classes = 64 }",
            data='dataset = "parts:images"',
        ).replace('dataset = "synthetic_images", ', ""),
        parts=PARTS,
    )
    Engine("s").make()
    rows = history(project)["history"]
    assert set(rows[0]) >= {"train_loss", "train_scaled", "val_loss", "val_peak", "lr"}
    assert rows[0]["train_scaled"] == pytest.approx(3 * rows[0]["train_loss"])
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    assert history(project)["monitor"] == "val_loss"  # no val_accuracy: the loss is watched


def test_object_batches_a_loss_by_module_path_and_torchmetrics(project):
    params = (
        'epochs = 2\nbatch_size = 16\nloss = { name = "torch.nn:SmoothL1Loss", beta = 0.5 }\n'
        'input_key = "image"\ntarget_key = "label"\nmetrics = ["mse", "mae"]'
    )
    text = tiny(
        params,
        model="mlp",
        model_params="{ hidden = 8, num_classes = 1 }",
        data='dataset = "parts:images", collate = "parts:collate"',
    ).replace('dataset = "synthetic_images", ', "")
    project.pipeline("s", text, parts=PARTS)
    Engine("s").make()
    final = history(project)["final"]
    assert {"val_mse", "val_mae", "val_loss"} <= set(final)
    assert final["val_mse"] >= 0 and "val_accuracy" not in final


def test_losses_by_name():
    import torch

    out, target = torch.randn(4, 3), torch.tensor([0, 2, 1, 0])
    assert resolve_loss("s", Named("cross_entropy")) is torch.nn.functional.cross_entropy
    smooth = resolve_loss("s", Named("SmoothL1Loss", {"beta": 0.5}))
    assert isinstance(smooth, torch.nn.SmoothL1Loss) and smooth.beta == 0.5
    l1 = resolve_loss("s", Named("torch.nn.functional:l1_loss", {"reduction": "sum"}))
    assert l1(out, out + 1) == pytest.approx(12.0)
    assert resolve_loss("s", Named("nll_loss"))(out.log_softmax(1), target).ndim == 0
    with pytest.raises(
        ConfigError, match="processes.s.params.loss: unknown loss 'cross_entropi'"
    ) as info:
        resolve_loss("s", Named("cross_entropi", key="loss"))
    assert "did you mean 'cross_entropy'" in info.value.hint
    with pytest.raises(ConfigError, match="rejected"):
        resolve_loss("s", Named("SmoothL1Loss", {"bogus": 1}, key="loss"))


Pair = collections.namedtuple("Pair", "input target")


@dataclasses.dataclass
class Sample:
    input: torch.Tensor
    target: torch.Tensor


class Plain:
    def __init__(self) -> None:
        import torch

        self.input, self.target = torch.zeros(3, 2), torch.ones(3)


def test_batches_as_tuples_dicts_and_objects():
    import torch

    x, y = torch.zeros(3, 2), torch.ones(3)
    for batch in ((x, y), [x, y], {"input": x, "target": y}, Pair(x, y), Sample(x, y), Plain()):
        got_x, got_y = split_batch(batch, "input", "target")
        assert got_x.shape == (3, 2) and got_y.shape == (3,)
        assert batch_size(batch) == 3
        assert type(to_device(batch, torch.device("cpu"))) is type(batch)
    assert batch_size({"meta": "text", "pixels": torch.zeros(5, 1)}) == 5
    # the first tensor with samples counts: an empty or 0-d first item is passed over
    assert batch_size((torch.zeros(0, 3), torch.zeros(8))) == 8
    assert batch_size([torch.tensor(1.0), torch.zeros(4)]) == 4
    with pytest.raises(KeyError, match="no key 'image'.*set input_key / target_key"):
        split_batch({"input": x, "target": y}, "image", "target")


def test_torchmetrics_by_name():
    import torch

    preds = torch.tensor([[2.0, 0.1, 0.0], [0.0, 3.0, 0.1], [0.1, 0.0, 1.0], [1.0, 0.0, 0.0]])
    target = torch.tensor([0, 1, 1, 2])
    metrics = TorchMetrics(
        "s", [Named("accuracy", key="metrics[0]"), Named("f1", key="metrics[1]")]
    )
    metrics.update({"preds": preds[:2], "target": target[:2]})
    metrics.update({"preds": preds[2:], "target": target[2:]})
    values = metrics.compute("val_")
    assert values["val_accuracy"] == pytest.approx(0.5)
    assert set(values) == {"val_accuracy", "val_f1"}
    with pytest.raises(ConfigError, match=r"metrics\[0\]: unknown metric 'acuracy'") as info:
        TorchMetrics("s", [Named("acuracy", key="metrics[0]")])
    assert "did you mean 'accuracy'" in info.value.hint


def test_accumulating_two_half_batches_is_one_full_batch(project):
    import torch

    common = 'lr = 0.05\noptimizer = { name = "SGD" }\nepochs = 1'
    small = "mlp"
    for name, params in (("full", "batch_size = 16"), ("half", "batch_size = 8\naccumulate = 2")):
        text = tiny(f"{common}\n{params}", model=small, model_params="{ hidden = 8 }", n=100)
        project.pipeline(name, text)
        Engine(name).make()  # 80 training samples: 5 full batches, 10 halves
    full = read_weights(project.root / "out/full/fit/model.pt")
    half = read_weights(project.root / "out/half/fit/model.pt")
    for key in full:
        assert torch.allclose(full[key], half[key], atol=1e-6), key
    assert history(project, "full")["global_step"] == history(project, "half")["global_step"] == 5


def test_precision_bf16_runs_on_cpu_and_16_mixed_asks_for_cuda(project):
    import torch

    project.pipeline("s", tiny('epochs = 1\nbatch_size = 32\nprecision = "bf16-mixed"'))
    Engine("s").make()
    assert math.isfinite(history(project)["final"]["val_loss"])
    cpu = torch.device("cpu")
    assert resolve_precision("s", None, True, cpu) == "32"  # the legacy switch: CUDA only
    with pytest.raises(ConfigError, match="precision: 16-mixed needs a CUDA device") as info:
        resolve_precision("s", "16-mixed", True, cpu)
    assert "bf16-mixed" in info.value.hint


def test_16_mixed_scales_the_loss_on_cuda():
    import torch

    if not torch.cuda.is_available():  # asked here, not at collection: torch is imported lazily
        pytest.skip("no CUDA GPU here: the fp16 grad scaler runs only on CUDA")
    device = torch.device("cuda")
    precision = Precision(resolve_precision("s", "16-mixed", True, device), device)
    model = torch.nn.Linear(4, 2).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with precision.autocast():
        loss = model(torch.randn(8, 4, device=device)).float().pow(2).mean()
    precision.backward(loss)
    precision.step([optimizer], 1.0, list(model.parameters()))
    state = precision.state_dict()
    assert state is not None and state["scale"] > 0
    other = Precision("16-mixed", device)
    other.load_state_dict(state)
    assert other.scaler.get_scale() == precision.scaler.get_scale()


def test_ema_follows_the_formula_and_is_written_as_ema_pt(project):
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(model, 0.75)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.add_(2.0)
        model[1].num_batches_tracked.add_(5)
    ema.update()
    after = ema.module.state_dict()
    assert torch.allclose(after["0.weight"], before["0.weight"] + 0.25)
    assert torch.allclose(after["1.running_mean"], before["1.running_mean"] + 0.5)
    assert after["1.num_batches_tracked"] == 5  # integers are copied
    project.pipeline("s", tiny("epochs = 2\nbatch_size = 32\nema = 0.9"))
    with pytest.raises(ConfigError, match="ema: writes the output 'ema'") as info:
        Engine("s").make()
    assert 'outputs = { ema = "out/{pipeline}/{name}/ema.pt" }' in info.value.hint
    declared = 'outputs = { ema = "out/{pipeline}/{name}/ema.pt" }'
    project.pipeline("s", tiny("epochs = 2\nbatch_size = 32\nema = 0.9", extra=declared))
    Engine("s").make()
    weights, metadata = read_checkpoint(project.root / "out/s/fit/ema.pt")
    assert metadata["kind"] == "ema" and set(metadata["metrics"]) == {
        "ema_val_loss",
        "ema_val_accuracy",
    }
    last = read_weights(project.root / "out/s/fit/model.pt")
    assert weights.keys() == last.keys()
    assert not torch.equal(weights["classifier.1.weight"], last["classifier.1.weight"])


def test_callbacks_hooks_in_order_user_classes_and_stopping_mid_epoch(project):
    import torch

    params = (
        'epochs = 3\nbatch_size = 32\ncallbacks = [{ name = "parts:Record", stop_at = 2 }]\n'
        "deterministic = true"
    )
    project.pipeline("s", tiny(params), parts=PARTS)
    Engine("s").make()
    events = [json.loads(line) for line in project.read("hooks.jsonl").splitlines()]
    kinds = [e[0] for e in events]
    assert kinds == [
        "train_start",
        "epoch_start",
        *["batch_end"] * 3,
        "validation_end",
        "epoch_end",
        "epoch_start",
        *["batch_end"] * 2,
        "validation_end",
        "epoch_end",
        "train_end",
    ]
    assert "recorded" in events[5][1]  # on_validation_end may add metrics
    report = history(project)
    assert report["stopped_by"] == "Record stopped it" and report["epochs"] == 2
    assert report["final"]["recorded"] == 1.0
    assert not torch.are_deterministic_algorithms_enabled()  # put back after the step
    project.pipeline("s", tiny('epochs = 1\ncallbacks = ["EarlyStoping"]'))
    with pytest.raises(ConfigError, match=r"callbacks\[0\]: unknown callback") as info:
        Engine("s").make()
    assert "did you mean 'EarlyStopping'" in info.value.hint


def test_save_top_k_keeps_the_k_best_epochs(project):
    declared = 'outputs = { top_k = "out/{pipeline}/{name}/top_k" }'
    params = 'epochs = 4\nbatch_size = 16\nsave_top_k = 2\nmonitor = "val_loss"'
    project.pipeline("s", tiny(params, extra=declared))
    Engine("s").make()
    report = history(project)
    kept = json.loads(project.read("out/s/fit/top_k/top_k.json"))
    losses = sorted(row["val_loss"] for row in report["history"])
    assert [entry["score"] for entry in kept] == pytest.approx(losses[:2])
    for entry in kept:
        _, metadata = read_checkpoint(project.root / "out/s/fit/top_k" / entry["file"])
        assert metadata["kind"] == "top_k" and metadata["epoch"] == entry["epoch"]
    assert kept[0]["epoch"] == report["best_epoch"]
