"""A step may not write what it reads (attack report, item 1): an output that is one of the
step's own inputs, lies inside an input folder or holds an input is refused when the plan is
made (exit 2, naming the step, both keys and the paths), before the user's source is written
over. Two steps writing the same output stay refused as before."""

from __future__ import annotations

import pytest

STEPS = """
from tipi import PipelineProcess


class Cat(PipelineProcess):
    def execute(self):
        for o in self.outputs.values():
            o.write_text("|".join(p.read_text() for p in self.inputs.values() if p.is_file()))
"""


@pytest.mark.parametrize(
    ("inputs", "outputs", "how"),
    [
        ('src = "data/a.txt"', 'out = "data/a.txt"', "is its own input 'src' (data/a.txt)"),
        ('src = "data"', 'out = "data/b.txt"', "lies inside its input 'src' (data)"),
        ('src = "data/a.txt"', 'out = "data"', "holds its input 'src' (data/a.txt)"),
        ('src = "data/./a.txt"', 'out = "data/a.txt"', "is its own input 'src' (data/a.txt)"),
    ],
)
def test_a_step_writing_its_own_input_is_refused(project, cli, inputs, outputs, how):
    (project.root / "data").mkdir()
    (project.root / "data/a.txt").write_text("a")
    toml = f'[processes.prep]\ntype = "Cat"\ninputs = {{ {inputs} }}\noutputs = {{ {outputs} }}\n'
    project.pipeline("demo", toml, steps=STEPS)
    result = cli("make", "-q")
    assert result.exit_code == 2
    assert "output 'out' of step 'prep' (data" in result.stderr
    assert how in result.stderr
    assert "Traceback" not in result.stderr
    assert project.read("data/a.txt") == "a"  # the source is untouched


def test_a_symlinked_input_to_the_output_is_refused(project, cli):
    (project.root / "data").mkdir()
    (project.root / "data/a.txt").write_text("a")
    (project.root / "link.txt").symlink_to(project.root / "data/a.txt")
    toml = '[processes.prep]\ntype = "Cat"\ninputs = { src = "link.txt" }\n'
    project.pipeline("demo", toml + 'outputs = { out = "data/a.txt" }\n', steps=STEPS)
    result = cli("make", "-q")
    assert result.exit_code == 2
    assert "is its own input 'src' (link.txt)" in result.stderr
    assert project.read("data/a.txt") == "a"


def test_an_input_beside_the_output_is_fine(project, cli):
    (project.root / "data").mkdir()
    (project.root / "data/a.txt").write_text("a")
    toml = '[processes.prep]\ntype = "Cat"\ninputs = { src = "data/a.txt" }\n'
    project.pipeline("demo", toml + 'outputs = { out = "data/a.txt.out" }\n', steps=STEPS)
    assert cli("make", "-q").exit_code == 0
    assert project.read("data/a.txt.out") == "a"


def test_two_steps_writing_one_output_stay_refused(project, cli):
    toml = """
    [processes.one]
    type = "Cat"
    outputs = { out = "out/x.txt" }

    [processes.two]
    type = "Cat"
    outputs = { out = "out/x.txt" }
    """
    project.pipeline("demo", toml, steps=STEPS)
    result = cli("make", "-q")
    assert result.exit_code == 2
    assert "out/x.txt" in result.stderr
    assert not (project.root / "out/x.txt").exists()
