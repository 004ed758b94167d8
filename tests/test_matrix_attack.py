"""Step matrices under attack (issue 29, engineer I's findings): values told apart exactly
(0.0 and -0.0), values that must come from source files, a matrix with no value, and the
odd lines file (too long a value, a byte order mark, /dev/zero, too large)."""

from __future__ import annotations

import json
import os

import pytest

from tipi.config.instances import matches, value_problem
from tipi.engine import Engine
from tipi.errors import ConfigError

STEPS = """
import json
from tipi import PipelineProcess


class Train(PipelineProcess):
    def __init__(self, controller, force: bool = False, seed=0) -> None:
        super().__init__(controller, force)
        self.seed = seed

    def execute(self) -> None:
        self.outputs["model"].write_text(repr(self.seed))


class Gather(PipelineProcess):
    def execute(self) -> None:
        keyed = {k: p.read_text() for k, p in self.inputs.items()}
        self.outputs["all"].write_text(json.dumps(keyed))


class Copy(PipelineProcess):
    def execute(self) -> None:
        self.outputs["out"].write_text(self.inputs["src"].read_text())
"""

GATHERED = """
[processes.train]
type = "Train"
matrix = { x = VALUES }
params = { seed = "{x}" }
outputs = { model = "out/train/{x}/model.txt" }

[processes.report]
type = "Gather"
inputs = { m = "out/train/{x}/model.txt" }
outputs = { all = "out/report.json" }
"""


def refused(project, toml: str) -> ConfigError:
    project.pipeline("m", toml, steps=STEPS)
    with pytest.raises(ConfigError) as caught:
        Engine("m").load()
    error = caught.value
    assert error.location is not None and error.location.line is not None, error
    return error


def test_zero_and_negative_zero_are_two_values_and_both_are_gathered(project):
    project.pipeline("m", GATHERED.replace("VALUES", "[0.0, -0.0, 1, 1.0, true]"), steps=STEPS)
    Engine("m").make()
    gathered = json.loads(project.read("out/report.json"))
    assert gathered == {
        "m[x=0.0]": "0.0",
        "m[x=-0.0]": "-0.0",
        "m[x=1]": "1",
        "m[x=1.0]": "1.0",
        "m[x=true]": "True",
    }
    names = [s.name for s in Engine("m").status()]
    assert len(names) == len(set(names)) == 6
    # a target tells them apart too
    assert matches("train[x=-0.0]", "train[x=-0.0]")
    assert not matches("train[x=-0.0]", "train[x=0.0]")
    assert not matches("train[x=0.0]", "train[x=-0.0]")


@pytest.mark.parametrize("values", ["[0.0, 0.0]", '[true, "true"]', '[1, "1"]', "[nan, nan]"])
def test_a_value_twice_in_one_list_is_refused(project, values):
    error = refused(project, GATHERED.replace("VALUES", values))
    assert "twice" in str(error)


def test_a_lines_file_a_step_writes_is_refused(project):
    toml = """
[processes.lister]
type = "Copy"
inputs = { src = "data/n.txt" }
outputs = { out = "out/list.txt" }

[processes.train]
type = "Train"
matrix = { seed = { lines = "out/list.txt" } }
outputs = { model = "out/train/{seed}.txt" }
"""
    (project.root / "data").mkdir()
    (project.root / "data/n.txt").write_text("s1\n")
    # before the list exists: the read fails, and the hint names the step that writes it
    error = refused(project, toml)
    assert "out/list.txt" in str(error) and "'lister' writes it" in (error.hint or "")
    (project.root / "out").mkdir()
    (project.root / "out/list.txt").write_text("s1\n")
    error = refused(project, toml)
    assert "matrix key 'seed' of 'train'" in str(error)
    assert "file out/list.txt, which step 'lister' writes" in str(error)
    assert "source files" in (error.hint or "")


def test_a_glob_a_step_writes_into_is_refused(project):
    (project.root / "data").mkdir()
    (project.root / "data/a.txt").write_text("a")
    toml = """
[processes.prep]
type = "Copy"
matrix = { img = { glob = "data/*.txt" } }
inputs = { src = "data/{img}.txt" }
outputs = { out = "data/{img}_p.txt" }
"""
    error = refused(project, toml)
    assert "glob data/*.txt, which step 'prep[img=a]' writes" in str(error)
    # a step writing a folder the glob reads from is refused the same way
    folder = toml.replace("data/{img}_p.txt", "x/{img}")
    folder += '\n[processes.unpack]\ntype = "Copy"\ninputs = { src = "data/a.txt" }\n'
    folder += 'outputs = { out = "data" }\n'
    error = refused(project, folder)
    assert "which step 'unpack' writes" in str(error)
    # an output beside the glob, not matched by it, is fine
    fine = toml.replace("data/{img}_p.txt", "data/{img}.out")
    project.pipeline("m", fine, steps=STEPS)
    Engine("m").make()
    assert project.read("data/a.out") == "a"


@pytest.mark.parametrize(
    ("matrix", "message", "hint"),
    [
        ("[]", "has no values", "remove the matrix"),
        ('{ lines = "data/empty.txt" }', "data/empty.txt has no line", "one value a line"),
        ('{ glob = "data/*.png" }', "glob data/*.png matches no file", "add the files"),
        ('{ glob = "data/[" }', "glob data/[ matches no file", "needs its ']'"),
        ('{ glob = "data/{pipeline}/*.txt" }', "matches no file", "not expanded in a glob"),
    ],
)
def test_a_matrix_with_no_value_is_refused(project, matrix, message, hint):
    (project.root / "data/m").mkdir(parents=True)
    (project.root / "data/m/a.txt").write_text("a")
    (project.root / "data/empty.txt").write_text("\n# nothing\n\n")
    toml = GATHERED.replace("VALUES", matrix)
    error = refused(project, toml)
    assert "matrix key 'x' of 'train'" in str(error) and message in str(error), error
    assert hint in (error.hint or ""), error.hint


def test_odd_lines_files(project):
    lines = GATHERED.replace("VALUES", '{ lines = "data/v.txt" }')
    (project.root / "data").mkdir()
    (project.root / "data/v.txt").write_text("a" * 201 + "\n")
    error = refused(project, lines)
    assert "201 characters long" in str(error) and "at most 200" in str(error)
    assert value_problem("a" * 200) is None
    # a byte order mark is not part of the first value
    (project.root / "data/v.txt").write_bytes("\ufeffa\nb\n".encode())
    project.pipeline("m", lines, steps=STEPS)
    assert [s.name for s in Engine("m").status()][:2] == ["train[x=a]", "train[x=b]"]
    # too large
    (project.root / "data/v.txt").write_text("a\n" * 600_000)
    error = refused(project, lines)
    assert "larger than 1024 KiB" in str(error)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_lines_file_that_is_not_a_regular_file_is_refused(project):
    error = refused(project, GATHERED.replace("VALUES", '{ lines = "/dev/zero" }'))
    assert "/dev/zero: it is not a regular file" in str(error)
    fifo = project.root / "fifo"
    os.mkfifo(fifo)  # opening it would block forever
    error = refused(project, GATHERED.replace("VALUES", f'{{ lines = "{fifo}" }}'))
    assert "not a regular file" in str(error)


def test_what_a_step_writing_near_a_glob_may_write():
    from tipi.config.matrix_sources import _writes

    assert _writes("/p/data/a_p.txt", "/p/data/*.txt", glob=True)
    assert _writes("/p/data", "/p/data/*.txt", glob=True)  # a folder output
    assert _writes("/p/data/sub/x.png", "/p/data/**/*.png", glob=True)
    assert not _writes("/p/data/sub/stats.json", "/p/data/**/*.png", glob=True)
    assert not _writes("/p/data/sub/x.png", "/p/data/*.png", glob=True)  # * stays in a folder
    assert not _writes("/p/data/.hidden.txt", "/p/data/*.txt", glob=True)  # as glob does
    assert not _writes("/p/out/train", "/p/data/*.txt", glob=True)
    assert _writes("/p/out/list.txt", "/p/out/list.txt", glob=False)
    assert _writes("/p/out/lists", "/p/out/lists/a.txt", glob=False)
    assert not _writes("/p/out/list.txt.bak", "/p/out/list.txt", glob=False)
