"""Train's parameter groups: an optimizer and a scheduler per group of name patterns, the
unmatched frozen (and kept in eval mode), and the mistakes said in one line."""

from __future__ import annotations

import json

import pytest

from tests.training_helpers import one_thread, tiny  # noqa: F401 - one_thread is autouse
from tipi.engine import Engine
from tipi.errors import ConfigError
from tipi.permanences.network import read_weights
from tipi.permanences.zoo import small_cnn
from tipi.processes.optim import assign_groups, build_optimizers, build_schedulers
from tipi.processes.training.settings import groups_of

GROUPS = """epochs = 2
batch_size = 16
accumulate = 2
callbacks = ["LearningRateMonitor"]
optimizers = [
  { params = ["features.0.*"], name = "AdamW", lr = 0.01, scheduler = { name = "StepLR", step_size = 1, gamma = 0.5, interval = "step" } },
  { params = ["classifier.*"], label = "head", name = "SGD", lr = 0.1, momentum = 0.9, scheduler = { name = "StepLR", step_size = 1, gamma = 0.1 } },
]
"""


def test_each_group_has_its_optimizer_and_scheduler_and_the_rest_is_frozen(project):
    import torch

    project.pipeline("g", tiny(GROUPS))
    Engine("g").make()
    report = json.loads(project.read("out/g/fit/history.json"))
    first, second = report["history"]
    # 76 training samples, 16 a batch: 5 batches, an optimizer step every 2 → 3 per epoch;
    # the first group's StepLR steps per optimizer step, the second's per epoch.
    assert first["lr/features"] == pytest.approx(0.01 * 0.5**3)
    assert second["lr/features"] == pytest.approx(0.01 * 0.5**6)
    assert (first["lr/head"], second["lr/head"]) == pytest.approx((0.1, 0.01))
    assert report["global_step"] == 6
    frozen = set(report["frozen"])
    assert frozen == {
        "features.1.weight",
        "features.1.bias",
        "features.3.weight",
        "features.3.bias",
        "features.4.weight",
        "features.4.bias",
    }
    torch.manual_seed(0)
    initial = small_cnn(width=4).state_dict()
    trained = read_weights(project.root / "out/g/fit/model.pt")
    for name in ("features.3.weight", "features.1.running_mean", "features.4.running_var"):
        assert torch.equal(trained[name], initial[name]), name  # frozen, BN statistics too
    assert not torch.equal(trained["features.0.weight"], initial["features.0.weight"])


def test_freeze_bn_false_lets_frozen_batchnorm_statistics_move(project):
    import torch

    project.pipeline(
        "g", tiny('epochs = 1\nbatch_size = 32\nfreeze = ["features.*"]\nfreeze_bn = false')
    )
    Engine("g").make()
    torch.manual_seed(0)
    initial = small_cnn(width=4).state_dict()
    trained = read_weights(project.root / "out/g/fit/model.pt")
    assert torch.equal(trained["features.0.weight"], initial["features.0.weight"])
    assert not torch.equal(trained["features.1.running_mean"], initial["features.1.running_mean"])


def groups(optimizers=None, freeze=(), **single):
    model = small_cnn(width=4)
    specs = groups_of("b", optimizers, single.get("optimizer"), single.get("scheduler"), 0.01)
    return model, specs, assign_groups("b", model, specs, list(freeze))


def test_a_parameter_matched_by_two_groups_is_an_error_naming_both():
    entries = [
        {"params": ["*.weight"], "name": "SGD"},
        {"params": ["classifier.*"], "name": "Adam"},
    ]
    with pytest.raises(ConfigError) as info:
        groups(entries)
    text = str(info.value)
    assert text.startswith("processes.b.params.optimizers: parameter 'classifier.1.weight'")
    assert "optimizers[0] (*.weight)" in text and "optimizers[1] (classifier.*)" in text


def test_pattern_and_name_mistakes_point_at_their_entry():
    with pytest.raises(ConfigError, match=r"optimizers\[1\]\.params: pattern 'clasifier\.\*'"):
        groups([{"params": ["features.*"]}, {"params": ["clasifier.*"]}])
    with pytest.raises(ConfigError, match=r"optimizers\[0\]: names no parameters"):
        groups([{"name": "SGD"}])
    with pytest.raises(ConfigError, match="`optimizer` and `optimizers` are two ways"):
        groups([{"params": ["*"]}], optimizer={"name": "SGD"})
    with pytest.raises(ConfigError, match=r"scheduler\.interval: expected 'epoch' or 'step'"):
        groups([{"params": ["*"], "scheduler": {"name": "StepLR", "interval": "batch"}}])
    with pytest.raises(ConfigError, match="frozen by `freeze` but optimizers\\[0\\] trains it"):
        groups([{"params": ["features.*"]}], freeze=["features.0.*"])
    _, specs, (members, _) = groups([{"params": ["*"], "name": "Adamm"}])
    with pytest.raises(
        ConfigError, match=r"optimizers\[0\]\.name: unknown optimizer 'Adamm'"
    ) as info:
        build_optimizers("b", specs, members)
    assert "did you mean 'Adam'" in info.value.hint
    _, specs, (members, _) = groups([{"params": ["*"], "name": "SGD", "momentum": "x"}])
    with pytest.raises(ConfigError, match=r"optimizers\[0\]: optimizer SGD rejected"):
        build_optimizers("b", specs, members)


def test_any_torch_optim_class_and_scheduler_and_module_paths():
    entries = [
        {"params": ["features.*"], "name": "torch.optim:RMSprop", "alpha": 0.9},
        {
            "params": ["classifier.*"],
            "name": "Adagrad",
            "scheduler": {
                "name": "SequentialLR",
                "schedulers": [
                    {"name": "LinearLR", "start_factor": 0.5, "total_iters": 2},
                    {"name": "ExponentialLR", "gamma": 0.9},
                ],
                "milestones": [2],
            },
        },
    ]
    _, specs, (members, frozen) = groups(entries)
    optimizers = build_optimizers("b", specs, members)
    assert [type(o).__name__ for o in optimizers] == ["RMSprop", "Adagrad"]
    assert optimizers[0].defaults["alpha"] == 0.9 and not frozen
    schedulers = build_schedulers("b", specs, optimizers)
    assert schedulers[0] is None and type(schedulers[1]).__name__ == "SequentialLR"
    _, specs, (members, frozen) = groups(None, freeze=["features.*"], optimizer={"name": "SGD"})
    assert specs[0].patterns == ("*",) and specs[0].optimizer.options["lr"] == 0.01
    assert frozen and all(name.startswith("features.") for name in frozen)
