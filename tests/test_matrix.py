"""Step matrices (issue 29): one process over a list of values becomes one step per
combination; params take the values typed; instances pair and gather; values may come from
the data (a glob, the lines of a file) and are read again at every plan."""

from __future__ import annotations

import json

import pytest

from tipi.config.instances import group_instances, instance_name, matches, split_instance
from tipi.engine import Engine
from tipi.errors import ConfigError

STEPS = """
import json
import os
from tipi import PipelineProcess


def log(name):
    with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
        f.write(name + "\\n")


class Train(PipelineProcess):
    def __init__(self, controller, force: bool = False, seed: int = 0, lr: float = 0.1,
                 tag: str = "") -> None:
        super().__init__(controller, force)
        self.seed, self.lr, self.tag = seed, lr, tag

    def execute(self) -> None:
        log(self.name)
        value = {"seed": self.seed, "lr": self.lr, "tag": self.tag,
                 "types": [type(self.seed).__name__, type(self.lr).__name__]}
        self.outputs["model"].write_text(json.dumps(value))


class Evaluate(PipelineProcess):
    def execute(self) -> None:
        log(self.name)
        self.outputs["score"].write_text(self.inputs["model"].read_text())


class Gather(PipelineProcess):
    def execute(self) -> None:
        log(self.name)
        listed = [str(p) for p in self.input_lists["models"]]
        keyed = {repr(k): str(p) for k, p in self.input_values["models"].items()}
        self.outputs["all"].write_text(json.dumps({"list": listed, "keyed": keyed}))


class Copy(PipelineProcess):
    def execute(self) -> None:
        log(self.name)
        self.outputs["out"].write_text(self.inputs["src"].read_text())
"""

TWO_KEYS = """
[processes.train]
type = "Train"
matrix = { seed = [0, 1, 2], lr = [0.001, 0.003] }
params = { seed = "{seed}", lr = "{lr}", tag = "s{seed}-lr{lr}" }
outputs = { model = "out/train/{seed}/{lr}/model.json" }
"""

PAIRED = """
[processes.train]
type = "Train"
matrix = { seed = [0, 1] }
params = { seed = "{seed}" }
outputs = { model = "out/train/{seed}/model.json" }

[processes.evaluate]
type = "Evaluate"
matrix = { seed = [0, 1] }
inputs = { model = "out/train/{seed}/model.json" }
outputs = { score = "out/eval/{seed}.json" }

[processes.gather]
type = "Gather"
inputs = { models = "out/train/{seed}/model.json" }
outputs = { all = "out/all.json" }
"""


def ran(project) -> list[str]:
    log = project.root / "runs.log"
    lines = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(lines)


def test_names_split_match_and_group():
    name = instance_name("train", {"seed": 0, "lr": 0.001, "on": True, "arm": "a"})
    assert name == "train[seed=0,lr=0.001,on=true,arm=a]"
    assert split_instance(name) == ("train", {"seed": "0", "lr": "0.001", "on": "true", "arm": "a"})
    assert split_instance("prepare") == ("prepare", {})
    assert matches(name, "train") and matches(name, "train[seed=0]")
    assert matches(name, "train[lr=1e-3,seed=0]") and not matches(name, "train[seed=1]")
    assert not matches(name, "train[nope=0]") and not matches("prepare", "prepare[seed=0]")
    assert group_instances(["a", name, "train[seed=1]"]) == {"a": ["a"], "train": [name, "train[seed=1]"]}


def test_expansion_and_typed_substitution(project):
    project.pipeline("m", TWO_KEYS, steps=STEPS)
    summary = Engine("m").make()
    names = [f"train[seed={s},lr={lr}]" for s in (0, 1, 2) for lr in ("0.001", "0.003")]
    assert ran(project) == sorted(names)
    model = json.loads(project.read("out/train/1/0.003/model.json"))
    assert model == {"seed": 1, "lr": 0.003, "tag": "s1-lr0.003", "types": ["int", "float"]}
    plan = Engine("m").status()
    assert summary is not None and len(plan) == 6
