"""`tipi init NAME`: writes a small pipeline folder that runs as it is."""

from __future__ import annotations

import re
from pathlib import Path

from tipi.errors import UsageError

PIPELINE_TOML = """\
# The "{name}" pipeline. Run it with:  tipi run {name}
# Permanences are shared resources; processes are steps. Edges come from paths: a step whose
# input is another step's output runs after it.

[pipeline]
description = "A starter pipeline: write numbers, then add them up."

[permanences.counter]
type = "Counter"
params = {{ start = 1 }}

[processes.numbers]
type = "WriteNumbers"
params = {{ n = 5 }}
outputs = {{ numbers = "out/{{pipeline}}/numbers.txt" }}

[processes.total]
type = "SumNumbers"
inputs = {{ numbers = "out/{{pipeline}}/numbers.txt" }}
outputs = {{ total = "out/{{pipeline}}/total.txt" }}
"""

STEPS_PY = '''\
"""Types for the "{name}" pipeline. Every *.py beside pipeline.toml is imported; its
Permanence and PipelineProcess classes can be named as `type` in the TOML."""

from tipi import Permanence, PipelineProcess


class Counter(Permanence):
    """Hands out consecutive numbers: a small shared resource with a lifecycle."""

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.value = start

    def initialize(self) -> None:
        self.value = self.start

    def next(self) -> int:
        value = self.value
        self.value += 1
        return value

    def cleanup(self) -> None:
        self.value = self.start


class WriteNumbers(PipelineProcess):
    """Writes `n` numbers from the counter, one a line."""

    def __init__(self, controller, force: bool = False, n: int = 3) -> None:
        super().__init__(controller, force)
        self.n = n

    def execute(self) -> None:
        counter = self.controller.get_permanence("counter")
        numbers = [counter.next() for _ in range(self.n)]
        self.outputs["numbers"].write_text("".join(f"{{x}}\\n" for x in numbers))


class SumNumbers(PipelineProcess):
    """Adds up the numbers it is given."""

    def execute(self) -> None:
        numbers = [int(line) for line in self.inputs["numbers"].read_text().split()]
        self.outputs["total"].write_text(f"{{sum(numbers)}}\\n")
'''

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def scaffold(root: Path, name: str) -> list[Path]:
    """Create `root/pipelines/name/` with a pipeline.toml and steps.py; return the files.

    Raises:
        UsageError: the name is not a simple identifier, or the folder already exists.
    """
    if not _NAME.match(name):
        raise UsageError(
            f"bad pipeline name '{name}'",
            hint="use letters, digits, '-' and '_', starting with a letter",
        )
    folder = root / "pipelines" / name
    if folder.exists():
        raise UsageError(
            f"{folder} already exists", hint=f"pick another name, or run `tipi run {name}`"
        )
    folder.mkdir(parents=True)
    files = {"pipeline.toml": PIPELINE_TOML, "steps.py": STEPS_PY}
    written = []
    for filename, template in files.items():
        path = folder / filename
        path.write_text(template.format(name=name), encoding="utf-8")
        written.append(path)
    return written
