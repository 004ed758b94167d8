"""A step's inputs count by name, not only by file: naming a file the step already reads a
second time, or renaming an input, changes what the step sees (`self.inputs`), so the step
runs again. Before, its fingerprint held input paths only and the step stayed up to date
(found with Compare given a third arm that is one of the first two's models)."""

from __future__ import annotations

STEPS = """
from tipi import PipelineProcess


class Source(PipelineProcess):
    def execute(self) -> None:
        self.outputs["data"].write_text("1")


class Names(PipelineProcess):
    def execute(self) -> None:
        self.outputs["names"].write_text(",".join(sorted(self.inputs)))
"""

PIPELINE = """
[processes.source]
type = "Source"
outputs = { data = "out/data.txt" }

[processes.names]
type = "Names"
inputs = { a = "out/data.txt" }
outputs = { names = "out/names.txt" }
"""


def test_one_more_name_for_a_file_already_read_reruns_the_step(project, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the reasons read on one line
    project.pipeline("p", PIPELINE, steps=STEPS)
    assert cli("make", "-q").exit_code == 0
    assert project.read("out/names.txt") == "a"
    toml = project.root / "pipelines/p/pipeline.toml"
    toml.write_text(
        toml.read_text().replace(
            '{ a = "out/data.txt" }', '{ a = "out/data.txt", b = "out/data.txt" }'
        )
    )
    status = cli("status", "--explain").stdout
    assert "inputs changed: b (none) → 'out/data.txt'" in status
    assert cli("make", "-q").exit_code == 0
    assert project.read("out/names.txt") == "a,b"
    toml.write_text(toml.read_text().replace("b = ", "c = "))  # renamed: the same file
    assert cli("make", "-q").exit_code == 0
    assert project.read("out/names.txt") == "a,c"
    made = cli("make")
    assert made.exit_code == 0 and "up to date: 2 skipped" in made.stdout + made.stderr
