"""A small pipeline of file-writing steps that log each execution, for engine tests."""

from __future__ import annotations

STEPS = """
import os
from pathlib import Path
from tipi import Permanence, PipelineProcess


def log_run(name):
    with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
        f.write(name + "\\n")


class Config(Permanence):
    def __init__(self, value: int = 0) -> None:
        self.value = value

    def cleanup(self) -> None:
        pass


class Logger(Permanence):
    affects_results = False

    def __init__(self, project: str = "x") -> None:
        self.project = project

    def cleanup(self) -> None:
        pass


class Write(PipelineProcess):
    def __init__(self, controller, force: bool = False, text: str = "", fail: bool = False) -> None:
        super().__init__(controller, force)
        self.text, self.fail = text, fail

    def execute(self) -> None:
        log_run(self.text or "write")
        self.outputs["out"].write_text("partial")
        if self.fail:
            raise RuntimeError("asked to fail")
        self.outputs["out"].write_text(self.text)


class Upper(PipelineProcess):
    def execute(self) -> None:
        log_run("upper")
        self.outputs["out"].write_text(self.inputs["src"].read_text().upper())


class Concat(PipelineProcess):
    def __init__(self, controller, force: bool = False, sep: str = "+") -> None:
        super().__init__(controller, force)
        self.sep = sep

    def execute(self) -> None:
        log_run("concat")
        parts = [self.inputs[k].read_text() for k in sorted(self.inputs)]
        self.outputs["out"].write_text(self.sep.join(parts))


class UseConfig(PipelineProcess):
    def execute(self) -> None:
        log_run("useconfig")
        value = self.controller.get_permanence("config").value
        self.controller.get_permanence("logger")
        self.outputs["out"].write_text(str(value))


class NoWrite(PipelineProcess):
    def execute(self) -> None:
        log_run("nowrite")
"""

PIPELINE = """
[permanences.config]
type = "Config"
params = { value = 1 }

[permanences.logger]
type = "Logger"

[processes.a]
type = "Write"
params = { text = "abc" }
outputs = { out = "out/a.txt" }

[processes.up]
type = "Upper"
inputs = { src = "out/a.txt" }
outputs = { out = "out/up.txt" }

[processes.b]
type = "Write"
params = { text = "b" }
outputs = { out = "out/b.txt" }

[processes.cat]
type = "Concat"
inputs = { x = "out/up.txt", y = "out/b.txt" }
outputs = { out = "out/cat.txt" }

[processes.conf]
type = "UseConfig"
outputs = { out = "out/conf.txt" }
"""


def runs(project) -> list[str]:
    """Steps executed since the last call (their log lines), and reset the log."""
    path = project.root / "runs.log"
    if not path.exists():
        return []
    lines = path.read_text().split()
    path.unlink()
    return lines


def interruptible() -> None:
    """A `preexec_fn`: Ctrl-C behaves as in a terminal even when the test run itself was
    started in the background (a non-interactive shell starts background jobs with SIGINT
    ignored, and a Python started so never raises KeyboardInterrupt)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def edit(project, old: str, new: str, file: str = "pipeline.toml", pipeline: str = "m") -> None:
    """Replace `old` (which must be there) by `new` in a file of the pipeline's folder."""
    path = project.root / "pipelines" / pipeline / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def make(*targets, **options):
    """`tipi make` of the `m` pipeline (PIPELINE) in the working directory's project."""
    from tipi.engine import Engine

    return Engine("m").make(targets, **options)
