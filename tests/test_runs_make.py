"""Every make that runs or restores a step is a run (build.py records it through
tipi/runs/recorder.py): what ran, with which params, what it logged, and how it ended."""

from __future__ import annotations

import pytest

from tests.make_helpers import PIPELINE, STEPS
from tipi.engine import Engine
from tipi.errors import PipelineInterrupted, ProcessFailure
from tipi.runs.store import RunStore

LOGGING = """
from tipi import PipelineProcess
from tipi.helpers import logger


class Logs(PipelineProcess):
    def __init__(self, controller, force: bool = False, lr: float = 0.1) -> None:
        super().__init__(controller, force)
        self.lr = lr

    def execute(self) -> None:
        for epoch in range(3):
            logger.log({"loss": 1.0 / (epoch + 1) / self.lr})
        self.outputs["out"].write_text(str(self.lr))


class Breaks(PipelineProcess):
    def execute(self) -> None:
        raise ValueError("broken on purpose")


class Stops(PipelineProcess):
    def execute(self) -> None:
        raise KeyboardInterrupt
"""


@pytest.fixture
def proj(project):
    project.pipeline("m", PIPELINE, steps=STEPS)
    return project


def runs_of(project, pipeline: str = "m") -> list:
    return list(RunStore(project.root).records(pipeline))


def test_a_make_that_runs_steps_is_one_run_and_a_no_op_none(proj):
    Engine("m").make()
    Engine("m").make()  # nothing to do: no run
    Engine("m").make(dry_run=True)  # says, changes nothing: no run
    (run,) = runs_of(proj)
    assert run.status == "ok"
    assert run.ran == ["a", "up", "b", "cat", "conf"]
    assert run.params()["a.text"] == "abc"


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_runs_keep_params_restores_and_what_the_steps_logged(project, jobs):
    toml = """
    [permanences.files]
    type = "BasicLogger"
    params = { log_dir = "logs" }

    [processes.fit]
    type = "Logs"
    params = { lr = 0.5 }
    outputs = { out = "out/fit.txt" }
    """
    project.pipeline("l", toml, steps=LOGGING)
    Engine("l").make(jobs=jobs)
    path = project.root / "pipelines/l/pipeline.toml"
    path.write_text(path.read_text().replace("lr = 0.5", "lr = 0.25"))
    Engine("l").make(jobs=jobs)
    path.write_text(path.read_text().replace("lr = 0.25", "lr = 0.5"))
    Engine("l").make(jobs=jobs)  # the first run's result, restored from the run cache
    newest, second, first = runs_of(project, "l")
    assert first.params()["fit.lr"] == 0.5 and second.params()["fit.lr"] == 0.25
    assert first.ran == ["fit"] and newest.restored == ["fit"]
    assert first.steps["fit"].logged == {"loss": pytest.approx(1 / 3 / 0.5)}
    assert second.steps["fit"].logged == {"loss": pytest.approx(1 / 3 / 0.25)}
    assert len({first.id, second.id, newest.id}) == 3


@pytest.mark.slow  # wandb starts its service process
def test_a_failed_and_an_interrupted_make_say_so(project):
    toml = """
    [processes.ok]
    type = "Logs"
    outputs = { out = "out/ok.txt" }

    [processes.bad]
    type = "Breaks"
    after = ["ok"]
    """
    project.pipeline("f", toml, steps=LOGGING)
    with pytest.raises(ProcessFailure):
        Engine("f").make()
    (failed,) = runs_of(project, "f")
    assert failed.status == "failed"
    assert failed.steps["ok"].outcome == "ran"
    assert failed.steps["bad"].outcome == "failed"
    assert "broken on purpose" in failed.steps["bad"].error
    path = project.root / "pipelines/f/pipeline.toml"
    path.write_text(path.read_text().replace('"Breaks"', '"Stops"'))
    with pytest.raises(PipelineInterrupted):
        Engine("f").make()
    interrupted = runs_of(project, "f")[0]
    assert interrupted.status == "interrupted"
    assert interrupted.steps["bad"].outcome == "interrupted"


SECRETS = """
from tipi import Permanence, PipelineProcess


class Service(Permanence):
    def __init__(self, api_key: str = "", url: str = "") -> None:
        self.api_key, self.url = api_key, url

    def cleanup(self) -> None:
        pass


class Push(PipelineProcess):
    def __init__(self, controller, force: bool = False, token: str = "") -> None:
        super().__init__(controller, force)
        self.token = token

    def execute(self) -> None:
        self.controller.get_permanence("service")
        self.outputs["out"].write_text("pushed")
"""


def test_secrets_reach_no_trace_run_cache_or_run_record(project, cli):
    toml = """
    [permanences.service]
    type = "Service"
    params = { api_key = "KEY-0123456789abcdef", url = "https://example.org" }

    [processes.push]
    type = "Push"
    params = { token = "TOKEN-fedcba9876543210" }
    outputs = { out = "out/push.txt" }
    """
    project.pipeline("s", toml, steps=SECRETS)
    assert cli("make", "-p", "s").exit_code == 0
    path = project.root / "pipelines/s/pipeline.toml"
    path.write_text(path.read_text().replace("TOKEN-fedcba9876543210", "TOKEN-0000000000000000"))
    changed = cli("make", "-p", "s", "--explain", "--set", 'service.api_key="KEY-99999999999"')
    assert changed.exit_code == 0, changed.stderr
    assert "params changed: token '<hidden>' → '<hidden>'" in changed.stderr  # still a change
    shown = "".join(
        cli(*args).stdout for args in (["runs"], ["runs", "--json"], ["show"], ["diff"])
    )
    assert "push" in shown
    cache = project.root / ".tipi_cache"
    places = [cache / "pipelines/s/traces.log", cache / "store", cache / "runs"]
    files = [p for place in places for p in ([place] if place.is_file() else place.rglob("*"))]
    written = b"".join(p.read_bytes() for p in files if p.is_file())
    for secret in ("KEY-0123456789abcdef", "KEY-99999999999", "TOKEN-fedcba9876543210"):
        assert secret.encode() not in written
        assert secret not in shown and secret not in changed.stderr


SKIPS = """
from tipi import PipelineProcess


class Done(PipelineProcess):
    def skip(self) -> bool:
        return True

    def execute(self) -> None:
        raise AssertionError("skip() said the work is done")
"""


@pytest.mark.slow  # wandb starts its service process
def test_a_step_its_skip_declines_and_a_step_left_after_a_failure_say_so(project):
    toml = """
    [processes.done]
    type = "Done"

    [processes.ok]
    type = "Logs"
    outputs = { out = "out/ok.txt" }

    [processes.bad]
    type = "Breaks"
    after = ["ok", "done"]

    [processes.later]
    type = "Logs"
    params = { lr = 0.2 }
    outputs = { out = "out/later.txt" }
    after = ["bad"]
    """
    project.pipeline(
        "o", toml, steps=LOGGING + SKIPS.replace("from tipi import PipelineProcess", "")
    )
    with pytest.raises(ProcessFailure):
        Engine("o").make()
    (run,) = runs_of(project, "o")
    outcomes = {name: step.outcome for name, step in run.steps.items()}
    assert outcomes == {"done": "skipped", "ok": "ran", "bad": "failed", "later": "not run"}
