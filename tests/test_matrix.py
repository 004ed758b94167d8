"""Step matrices (issue 29): one process over a list of values becomes one step per
combination; params take the values typed; instances pair and gather; values may come from
the data (a glob, the lines of a file) and are read again at every plan."""

from __future__ import annotations

import json
import os
import time

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
    assert group_instances(["a", name, "train[seed=1]"]) == {
        "a": ["a"],
        "train": [name, "train[seed=1]"],
    }


def test_expansion_and_typed_substitution(project):
    project.pipeline("m", TWO_KEYS, steps=STEPS)
    summary = Engine("m").make()
    names = [f"train[seed={s},lr={lr}]" for s in (0, 1, 2) for lr in ("0.001", "0.003")]
    assert ran(project) == sorted(names)
    model = json.loads(project.read("out/train/1/0.003/model.json"))
    assert model == {"seed": 1, "lr": 0.003, "tag": "s1-lr0.003", "types": ["int", "float"]}
    plan = Engine("m").status()
    assert summary is not None and len(plan) == 6


def test_pairing_and_gathering(project):
    project.pipeline("m", PAIRED, steps=STEPS)
    engine = Engine("m")
    engine.make()
    assert ran(project) == [
        "evaluate[seed=0]",
        "evaluate[seed=1]",
        "gather",
        "train[seed=0]",
        "train[seed=1]",
    ]
    plan = engine.load()
    assert plan.predecessors["evaluate[seed=1]"] == ["train[seed=1]"]
    assert plan.predecessors["gather"] == ["train[seed=0]", "train[seed=1]"]
    assert plan.steps["gather"].inputs == {
        "models[seed=0]": "out/train/0/model.json",
        "models[seed=1]": "out/train/1/model.json",
    }
    assert plan.steps["train[seed=1]"].base == "train"
    assert plan.steps["train[seed=1]"].values == {"seed": 1}
    assert json.loads(project.read("out/eval/1.json"))["seed"] == 1
    gathered = json.loads(project.read("out/all.json"))
    root = str(project.root)
    assert gathered["list"] == [f"{root}/out/train/0/model.json", f"{root}/out/train/1/model.json"]
    assert gathered["keyed"] == {"0": gathered["list"][0], "1": gathered["list"][1]}


def test_gathering_keeps_only_what_is_produced(project):
    toml = PAIRED.replace(
        "matrix = { seed = [0, 1] }\ninputs", "matrix = { seed = [0, 1, 2] }\ninputs"
    )
    project.pipeline("m", toml, steps=STEPS)
    plan = Engine("m").load()
    # evaluate has seed 2, train does not: gather reads only the models train makes
    assert list(plan.steps["gather"].inputs) == ["models[seed=0]", "models[seed=1]"]
    assert "evaluate[seed=2]" in plan.steps


def test_default_outputs_have_a_folder_per_value(project):
    toml = """
    [processes.prepare]
    type = "Copy"
    matrix = { part = ["a", "b"], size = [1] }
    inputs = { src = "data/{part}.txt" }
    """
    project.pipeline(
        "m",
        toml,
        steps=STEPS.replace(
            "class Copy(PipelineProcess):",
            'class Copy(PipelineProcess):\n    outputs = {"out": "out/{pipeline}/{name}/copy.txt"}',
        ),
    )
    (project.root / "data").mkdir()
    for part in "ab":
        (project.root / "data" / f"{part}.txt").write_text(part)
    Engine("m").make()
    assert project.read("out/m/prepare/b/1/copy.txt") == "b"


def test_targets_select_instances(project, cli):
    project.pipeline("m", PAIRED, steps=STEPS)
    Engine("m").make(["evaluate[seed=1]"])
    assert ran(project) == ["evaluate[seed=1]", "train[seed=1]"]
    Engine("m").make(["train"])
    assert ran(project) == ["train[seed=0]"]
    result = cli("make", "train[sed=0]")
    assert result.exit_code != 0 and "did you mean 'seed'" in result.stdout + result.stderr
    result = cli("make", "train[seed=7]")
    assert result.exit_code != 0 and "seed = 0, 1" in result.stdout + result.stderr


def test_adding_a_value_runs_only_the_new_instances(project):
    folder = project.pipeline("m", PAIRED, steps=STEPS)
    Engine("m").make()
    ran(project)
    toml = PAIRED.replace("[0, 1]", "[0, 1, 2]")
    (folder / "pipeline.toml").write_text(toml)
    Engine("m").make()
    assert ran(project) == ["evaluate[seed=2]", "gather", "train[seed=2]"]
    (folder / "pipeline.toml").write_text(PAIRED.replace("[0, 1]", "[1]"))
    Engine("m").make()
    assert ran(project) == ["gather"]  # train[seed=1] and evaluate[seed=1] stay up to date
    Engine("m").make()
    assert ran(project) == []


GLOBBED = """
[processes.copy]
type = "Copy"
matrix = { image = { glob = "data/raw/*.txt" } }
inputs = { src = "data/raw/{image}.txt" }
outputs = { out = "out/copy/{image}.txt" }

[processes.gather]
type = "Gather"
inputs = { models = "out/copy/{image}.txt" }
outputs = { all = "out/all.json" }
"""


def age(root) -> None:
    """Files written by a make look a minute old (as tests/test_properties.py `age`): the
    stat caches and the clean record trust them, so the fast path may answer."""
    now = time.time()
    for path in root.rglob("*"):
        if ".tipi_cache" not in path.parts and path.stat().st_mtime > now - 30:
            os.utime(path, (now - 60, now - 60))


def fast_noop(pipeline: str = "m") -> bool:
    from tipi._fastpath import Request, prove_noop

    try:
        return prove_noop(Request(pipeline, (), True, False)) is not None
    except Exception:  # a fall-through: the full CLI answers
        return False


def test_glob_values_follow_the_files(project):
    project.pipeline("m", GLOBBED, steps=STEPS)
    raw = project.root / "data" / "raw"
    raw.mkdir(parents=True)
    for stem in ("a", "b"):
        (raw / f"{stem}.txt").write_text(stem)
    Engine("m").make()
    assert ran(project) == ["copy[image=a]", "copy[image=b]", "gather"]
    age(project.root)
    Engine("m").make()
    assert ran(project) == [] and fast_noop()
    (raw / "c.txt").write_text("c")  # added: one new instance
    assert not fast_noop()
    Engine("m").make()
    assert ran(project) == ["copy[image=c]", "gather"]
    age(project.root)
    Engine("m").make()
    assert fast_noop()
    (raw / "a.txt").rename(raw / "z.txt")  # renamed: a goes, z comes
    assert not fast_noop()
    Engine("m").make()
    # copy[image=z] is restored from the run cache (same bytes, same step), not run
    assert ran(project) == ["gather"] and project.read("out/copy/z.txt") == "a"
    (raw / "b.txt").unlink()  # removed
    assert not fast_noop()
    Engine("m").make()
    assert ran(project) == ["gather"]
    assert json.loads(project.read("out/all.json"))["keyed"] == {
        "'c'": f"{project.root}/out/copy/c.txt",
        "'z'": f"{project.root}/out/copy/z.txt",
    }


def test_clean_removes_a_removed_instances_outputs(project, cli):
    project.pipeline("m", GLOBBED, steps=STEPS)
    raw = project.root / "data" / "raw"
    raw.mkdir(parents=True)
    for stem in ("a", "b"):
        (raw / f"{stem}.txt").write_text(stem)
    Engine("m").make()
    (raw / "b.txt").unlink()
    Engine("m").make()
    assert (project.root / "out/copy/b.txt").exists()  # left where it was, as for any step
    result = cli("clean", "-p", "m", "--outputs")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert not (project.root / "out/copy/b.txt").exists()
    assert not (project.root / "out/copy/a.txt").exists()
    assert (raw / "a.txt").exists()


def test_lines_values_are_read_again(project):
    toml = GLOBBED.replace('{ glob = "data/raw/*.txt" }', '{ lines = "data/parts.txt" }')
    project.pipeline("m", toml, steps=STEPS)
    raw = project.root / "data" / "raw"
    raw.mkdir(parents=True)
    for stem in ("a", "b"):
        (raw / f"{stem}.txt").write_text(stem)
    (project.root / "data/parts.txt").write_text("# parts\na\n\n")
    Engine("m").make()
    assert ran(project) == ["copy[image=a]", "gather"]
    (project.root / "data/parts.txt").write_text("a\nb\n")
    Engine("m").make()
    assert ran(project) == ["copy[image=b]", "gather"]


@pytest.mark.parametrize(
    ("toml", "message", "hint"),
    [
        (TWO_KEYS.replace("{seed}/{lr}/model", "{seed}/model"), "does not contain {lr}", "{lr}"),
        (
            TWO_KEYS.replace("{seed}/{lr}/model", "{seed}/{lrr}/model"),
            "unknown placeholder {lrr}",
            "did you mean 'lr'",
        ),
        (TWO_KEYS.replace("seed = [0, 1, 2]", "seed = [0, 1, 0]"), "value 0 twice", "once"),
        (TWO_KEYS.replace("seed = [0, 1, 2]", 'seed = ["a b"]'), "'a b' cannot name", ""),
        (TWO_KEYS.replace("seed = [0, 1, 2]", "name = [0]"), "'name' is not allowed", ""),
        (
            TWO_KEYS.replace("seed = [0, 1, 2]", 'seed = { glop = "x" }'),
            "glob",
            "did you mean 'glob'",
        ),
    ],
)
def test_bad_matrices_are_refused_with_a_location(project, toml, message, hint):
    project.pipeline("m", toml, steps=STEPS)
    with pytest.raises(ConfigError) as caught:
        Engine("m").load()
    error = caught.value
    assert message in str(error) and hint in (error.hint or "")
    assert error.location is not None and error.location.line is not None


def test_a_file_that_cannot_name_an_instance_is_named(project):
    project.pipeline("m", GLOBBED, steps=STEPS)
    raw = project.root / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "my file.txt").write_text("x")
    with pytest.raises(ConfigError, match="my file.txt"):
        Engine("m").load()


def test_after_names_every_instance_or_the_paired_one(project):
    toml = (
        PAIRED
        + """
    [processes.report]
    type = "Copy"
    matrix = { seed = [0, 1] }
    after = ["train"]
    inputs = { src = "out/eval/{seed}.json" }
    outputs = { out = "out/report/{seed}.json" }

    [processes.last]
    type = "Copy"
    after = ["report"]
    inputs = { src = "out/all.json" }
    outputs = { out = "out/last.json" }
    """
    )
    project.pipeline("m", toml, steps=STEPS)
    plan = Engine("m").load()
    assert plan.predecessors["report[seed=1]"] == ["evaluate[seed=1]", "train[seed=1]"]
    assert plan.predecessors["last"] == ["gather", "report[seed=0]", "report[seed=1]"]


def test_a_sweep_over_a_matrix_step_keeps_each_variants_instances_apart(project):
    from tipi.sweep.runner import Sweep
    from tipi.sweep.spec import grid_from_options

    project.pipeline("m", PAIRED, steps=STEPS)
    Sweep("m", grid_from_options(["train.lr=0.5,0.7"])).run()
    folder = project.root / "out/sweeps/m/grid"
    for lr in (0.5, 0.7):
        model = json.loads((folder / f"lr={lr}/train/1/model.json").read_text())
        assert model["lr"] == lr and model["seed"] == 1
        assert json.loads((folder / f"lr={lr}/eval/1.json").read_text())["lr"] == lr
    assert not (project.root / "out/train").exists()  # the plain make's place is untouched


def test_gathered_inputs_are_grouped_for_the_step(tmp_path):
    from tipi.process import PipelineProcess

    class Step(PipelineProcess):
        def execute(self) -> None:
            pass

    step = Step(None)
    paths = {
        "data": tmp_path / "d",
        "m[seed=0,lr=0.5]": tmp_path / "a",
        "m[seed=0,lr=1e-05]": tmp_path / "b",
        "w[arm=01]": tmp_path / "c",
        "l[0]": tmp_path / "e",
        "l[1]": tmp_path / "f",
    }
    step.bind_paths(paths, {})
    assert step.inputs == paths  # flat, as every existing step reads them
    assert step.input_lists == {
        "m": [tmp_path / "a", tmp_path / "b"],
        "w": [tmp_path / "c"],
        "l": [tmp_path / "e", tmp_path / "f"],
    }
    assert step.input_values == {
        "m": {(0, 0.5): tmp_path / "a", (0, 1e-05): tmp_path / "b"},
        "w": {"01": tmp_path / "c"},  # not the int 1: "01" is not how 1 is written
    }


def test_the_fast_path_answers_for_an_instance_target(project):
    project.pipeline("m", PAIRED, steps=STEPS)
    Engine("m").make()
    age(project.root)
    Engine("m").make()
    from tipi._fastpath import Request, prove_noop

    noop = prove_noop(Request("m", ("evaluate[seed=1]",), True, False))
    assert noop is not None and noop.order == ["train[seed=1]", "evaluate[seed=1]"]


def test_an_output_without_any_placeholder_is_refused(project):
    project.pipeline(
        "m", TWO_KEYS.replace("out/train/{seed}/{lr}/model.json", "out/model.json"), steps=STEPS
    )
    with pytest.raises(ConfigError, match="does not contain {seed}"):
        Engine("m").load()


def test_a_bad_line_names_its_file(project):
    toml = GLOBBED.replace('{ glob = "data/raw/*.txt" }', '{ lines = "data/parts.txt" }')
    project.pipeline("m", toml, steps=STEPS)
    (project.root / "data").mkdir()
    (project.root / "data/parts.txt").write_text("a\nb/c\n")
    with pytest.raises(ConfigError, match="a line of data/parts.txt") as caught:
        Engine("m").load()
    assert caught.value.location is not None and caught.value.location.line is not None


@pytest.mark.slow
def test_instances_run_in_worker_processes(project):
    project.pipeline(
        "m",
        GLOBBED + PAIRED.replace("gather", "gather2").replace("all.json", "all2.json"),
        steps=STEPS,
    )
    raw = project.root / "data" / "raw"
    raw.mkdir(parents=True)
    for stem in ("a", "b"):
        (raw / f"{stem}.txt").write_text(stem)
    build = Engine("m").build(jobs=2)
    build.run()
    assert len(ran(project)) == 8
    assert json.loads(project.read("out/eval/1.json"))["seed"] == 1
    assert len(json.loads(project.read("out/all.json"))["list"]) == 2
