"""Params that only name permanences which do not change results (loggers, progress) stay out
of a step's fingerprint: choosing another logger never reruns it, and `--explain` says so."""

from __future__ import annotations

import json

import pytest

from tipi.engine import Engine

STEPS = """
from tipi import Permanence, PipelineProcess


class Counter(Permanence):
    def __init__(self, start: int = 0) -> None:
        self.start = start

    def cleanup(self) -> None:
        pass


class Count(PipelineProcess):
    permanence_params = ("loggers", "counter")
    outputs = {"value": "out/value.txt"}

    def __init__(
        self, controller, force: bool = False, loggers: str = "", counter: str = "counter",
        mode: str = "",
    ) -> None:
        super().__init__(controller, force)
        self.loggers, self.counter, self.mode = loggers, counter, mode

    def execute(self) -> None:
        start = self.controller.get_permanence(self.counter).start
        if self.loggers:
            logger = self.controller.get_permanence(self.loggers)
            getattr(logger, "log_metrics", print)({"start": float(start)})
        self.outputs["value"].write_text(f"{start} {self.mode}")


class Plain(PipelineProcess):
    outputs = {"done": "out/plain.txt"}

    def __init__(self, controller, force: bool = False, loggers: list[str] | None = None) -> None:
        super().__init__(controller, force)
        self.loggers = loggers or []

    def execute(self) -> None:
        for name in self.loggers:
            self.controller.get_permanence(name).log_metrics({"one": 1.0}, step=0)
        self.outputs["done"].write_text("done")
"""

PIPELINE = """
[permanences.files]
type = "BasicLogger"
params = { log_dir = "logs/files" }
[permanences.board]
type = "BasicLogger"
params = { log_dir = "logs/board" }
[permanences.counter]
type = "Counter"
[permanences.other]
type = "Counter"
params = { start = 10 }

[processes.count]
type = "Count"
params = { loggers = "files" }

[processes.plain]
type = "Plain"
params = { loggers = ["files"] }
"""


@pytest.fixture
def logged(project):
    project.pipeline("logged", PIPELINE, steps=STEPS)
    Engine("logged").make()
    return project


def outcomes(*overrides: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    results = Engine("logged", overrides=overrides).make().results
    return {r.name: (r.outcome, r.reasons) for r in results}


def test_choosing_another_logger_leaves_the_step_up_to_date(logged):
    found = outcomes("count.loggers=board", 'plain.loggers=["files", "board"]')
    assert found["count"][0] == "skipped"
    assert found["plain"][0] == "skipped"
    note = "loggers 'files' → 'board' does not rerun the step: it names only permanences"
    assert any(r.startswith(note) for r in found["count"][1])
    assert outcomes("count.loggers=''")["count"][0] == "skipped"  # no logger at all


def test_a_param_naming_a_result_permanence_reruns_the_step(logged):
    outcome, reasons = outcomes("count.counter=other")["count"]
    assert outcome == "ran"
    assert reasons[0] == "params changed: counter 'counter' → 'other'"
    assert logged.read("out/value.txt").startswith("10")
    # A declared permanence param that names a result permanence is a param like any other.
    outcome, reasons = outcomes("count.counter=other", "count.loggers=counter")["count"]
    assert outcome == "ran" and reasons[0].startswith("params changed: loggers added")


def test_a_param_equal_to_a_loggers_name_is_still_a_param(logged):
    """Declared, not guessed: `mode` is not a permanence param even when it reads 'files'."""
    assert outcomes("count.mode=files")["count"][0] == "ran"
    outcome, reasons = outcomes("count.mode=board")["count"]
    assert outcome == "ran" and reasons[0] == "params changed: mode 'files' → 'board'"


def test_status_explains_that_a_logger_change_does_not_rerun(logged, cli):
    result = cli("status", "-p", "logged", "--set", "count.loggers=board", "--explain")
    assert result.exit_code == 0
    assert "loggers 'files' → 'board' does not rerun the step" in " ".join(result.stdout.split())
    result = cli("status", "-p", "logged", "--set", "count.loggers=board", "--json")
    (count,) = [s for s in json.loads(result.stdout) if s["name"] == "count"]
    assert count["status"] == "up-to-date"


def test_a_trace_of_an_older_tipi_does_not_rerun_the_step(logged):
    """Traces written before params could be inert hold them among their params and in their
    fingerprint: the step stays up to date, and a real change is still found."""
    from tipi.identity.fingerprint import step_fingerprint
    from tipi.identity.trace import Trace
    from tipi.state.layout import Layout
    from tipi.state.stores import State

    state = State(Layout(logged.root, "logged"), warn=print, notice=print)
    trace = state.traces.get("count")
    params = dict(sorted({**trace.params, "loggers": "files"}.items()))
    old = Trace(
        fingerprint=step_fingerprint(
            trace.type, trace.code, params, trace.inputs, trace.permanences
        ),
        type=trace.type,
        code=trace.code,
        params=params,
        inputs=trace.inputs,
        permanences=trace.permanences,
        outputs=trace.outputs,
        environment=trace.environment,
    )
    state.traces.put("count", old)
    state.close()
    assert outcomes("count.loggers=board")["count"][0] == "skipped"
    outcome, reasons = outcomes("count.loggers=board", "count.mode=x")["count"]
    assert outcome == "ran" and reasons == ("params changed: mode '' → 'x'",)


TRAIN = """
[permanences.device]
type = "Device"
params = { device = "cpu" }
[permanences.progress]
type = "ProgressManager"
[permanences.files]
type = "BasicLogger"
params = { log_dir = "logs" }
[permanences.tb]
type = "BasicLogger"
params = { log_dir = "logs-tb" }
[permanences.net]
type = "Network"
params = { model = "small_cnn", params = { width = 4 } }
[permanences.data]
type = "Data"
params = { dataset = "synthetic_images", params = { n = 64 } }

[processes.train]
type = "Train"
params = { epochs = 1, batch_size = 32, loggers = "files", progress = "progress" }
"""


@pytest.mark.slow
def test_switching_trains_loggers_does_not_retrain(project, cli):
    """The issue's case: `--set train.loggers=tb` reran training ("params changed:
    loggers 'files' → 'tb'"); now it is up to date, and a change of lr still retrains."""
    project.pipeline("t", TRAIN)
    assert cli("make", "-p", "t").exit_code == 0
    result = cli("make", "-p", "t", "--set", "train.loggers=tb", "--explain")
    assert result.exit_code == 0
    text = " ".join(result.stderr.split())
    assert "train ran" not in text and "1 skipped" in text
    assert "loggers 'files' → 'tb' does not rerun the step" in text
    result = cli("make", "-p", "t", "--set", "train.loggers=tb", "--set", "train.lr=0.01")
    assert "params changed: lr 0.001 → 0.01" in " ".join(result.stderr.split())


FUNCTION_STEPS = """
from pathlib import Path

from tipi.decorators import pipeline_process


@pipeline_process(outputs={"out": "out/fn.txt"})
def write_device(device: str = "cpu", loggers: str = "", out: Path | None = None):
    out.write_text(f"{device} {loggers}")
"""


def test_a_decorated_functions_device_or_loggers_param_is_a_plain_param(project):
    """A function never receives a permanence for its params, only their values: switching
    one to a logger's name or to "" changes what it computes, so it reruns."""
    pipeline = PIPELINE.split("[processes.count]")[0]
    pipeline += '[processes.fn]\ntype = "write_device"\nparams = { device = "cpu" }\n'
    project.pipeline("logged", pipeline, steps=STEPS, fn=FUNCTION_STEPS)
    Engine("logged").make()
    assert outcomes("fn.device=''")["fn"][0] == "ran"
    assert project.read("out/fn.txt") == " "
    assert outcomes("fn.device=''", "fn.loggers=files")["fn"][0] == "ran"
    assert project.read("out/fn.txt") == " files"
