"""Shared fixtures: a throw-away project on disk and a CLI invoker that runs in it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tipi.cli import app

STEPS = """
from tipi import Permanence, PipelineProcess

EVENTS = []


class Counter(Permanence):
    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.value = start

    def next(self) -> int:
        self.value += 1
        return self.value

    def cleanup(self) -> None:
        pass


class WriteNumbers(PipelineProcess):
    def __init__(self, controller, force: bool = False, n: int = 3) -> None:
        super().__init__(controller, force)
        self.n = n

    def execute(self) -> None:
        counter = self.controller.get_permanence("counter")
        self.outputs["numbers"].write_text("\\n".join(str(counter.next()) for _ in range(self.n)))


class SumNumbers(PipelineProcess):
    def execute(self) -> None:
        total = sum(int(x) for x in self.inputs["numbers"].read_text().split())
        self.outputs["total"].write_text(str(total))
"""

PIPELINE = """
[permanences.counter]
type = "Counter"
params = { start = 0 }

[processes.numbers]
type = "WriteNumbers"
params = { n = 4 }
outputs = { numbers = "out/numbers.txt" }

[processes.total]
type = "SumNumbers"
inputs = { numbers = "out/numbers.txt" }
outputs = { total = "out/total.txt" }
"""


@dataclass
class Project:
    """A project root on disk with helpers to add pipelines."""

    root: Path

    def pipeline(self, name: str, toml: str, **modules: str) -> Path:
        folder = self.root / "pipelines" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "pipeline.toml").write_text(textwrap.dedent(toml).lstrip())
        for module, source in modules.items():
            (folder / f"{module}.py").write_text(textwrap.dedent(source).lstrip())
        return folder

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """An empty project (a folder with `pipelines/`), made the working directory."""
    (tmp_path / "pipelines").mkdir()
    monkeypatch.chdir(tmp_path)
    return Project(tmp_path)


@pytest.fixture
def numbers_project(project: Project) -> Project:
    """A project with the two-step `numbers` pipeline (WriteNumbers → SumNumbers)."""
    project.pipeline("numbers", PIPELINE, steps=STEPS)
    return project


# Fixtures that start a process: a test that asks for one (directly or through another fixture)
# is slow wherever it is written, left out of the fast tier (`-m "not slow"`).
PROCESS_FIXTURES = {"s3": "the S3 server (moto's), started once per test process"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Invoke `tipi ARGS...` in-process and return exit code, stdout and stderr."""
    runner = CliRunner()

    def invoke(*args: str) -> CliResult:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke
