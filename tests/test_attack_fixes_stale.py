"""A step reading a file that an earlier run of a step made, and that no step makes any more,
is warned about when the plan is made (attack report, item 4): its outputs moved (a matrix key
added), the old file stays, and the reader would silently keep reading the leftover."""

from __future__ import annotations

STEPS = """
from tipi import PipelineProcess


class Train(PipelineProcess):
    def __init__(self, controller, force: bool = False, seed: int = 0, lr: float = 0.1):
        super().__init__(controller, force)
        self.seed, self.lr = seed, lr

    def execute(self):
        self.outputs["model"].write_text(f"{self.seed} {self.lr}")


class Evaluate(PipelineProcess):
    def execute(self):
        self.outputs["metrics"].write_text(self.inputs["model"].read_text())
"""

PIPELINE = """
[processes.train]
type = "Train"
params = { seed = 0 }
outputs = { model = "out/train/model.txt" }

[processes.evaluate]
type = "Evaluate"
inputs = { model = "out/train/model.txt" }
outputs = { metrics = "out/metrics.txt" }
"""

MOVED = 'params = { seed = 0, lr = 0.5 }\noutputs = { model = "out/train/0.5/model.txt" }'
BEFORE = 'params = { seed = 0 }\noutputs = { model = "out/train/model.txt" }'
STALE = (
    "warning: input 'model' of step 'evaluate' (out/train/model.txt) was made by an earlier "
    "run of step 'train', which no longer makes it: it is stale"
)


def _moved(project, cli):
    folder = project.pipeline("demo", PIPELINE, steps=STEPS)
    first = cli("make", "-q")
    assert first.exit_code == 0 and "warning" not in first.stderr
    toml = folder / "pipeline.toml"
    toml.write_text(toml.read_text().replace(BEFORE, MOVED))


def test_a_leftover_output_read_as_a_source_is_warned_about(project, cli):
    _moved(project, cli)
    result = cli("make", "-q")
    assert result.exit_code == 0
    assert result.stderr.count(STALE) == 1, result.stderr
    status = cli("status")  # plans twice, nothing saved: one warning
    assert status.stderr.count(STALE) <= 1, status.stderr


def test_a_leftover_edited_by_the_user_is_theirs_no_warning(project, cli):
    _moved(project, cli)
    (project.root / "out/train/model.txt").write_text("my own model")
    result = cli("make", "-q")
    assert result.exit_code == 0 and "stale" not in result.stderr


def test_sources_and_produced_inputs_give_no_warning(project, cli):
    folder = project.pipeline("demo", PIPELINE, steps=STEPS)
    assert cli("make", "-q").exit_code == 0
    toml = folder / "pipeline.toml"
    toml.write_text(toml.read_text().replace("seed = 0", "seed = 1"))  # replanned, same paths
    result = cli("make", "-q")
    assert result.exit_code == 0 and "warning" not in result.stderr
