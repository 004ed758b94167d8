"""PipelineRunner: order, skip/force, cleanup after success, failure and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.make_helpers import interruptible
from tipi import PipelineRunner
from tipi.errors import DefinitionError, PipelineInterrupted, ProcessFailure
from tipi.report import ListReporter

TRACKED = """
from pathlib import Path
from tipi import Permanence, PipelineProcess

LOG = Path(__file__).parent / "events.log"


def log(event):
    with LOG.open("a") as f:
        f.write(event + "\\n")


class Res(Permanence):
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def initialize(self):
        log(f"init {self.tag}")

    def checkpoint(self):
        log(f"checkpoint {self.tag}")

    def cleanup(self):
        log(f"cleanup {self.tag}")


class Use(PipelineProcess):
    def __init__(self, controller, force: bool = False, uses: list[str] = [], fail: str = "",
                 done: bool = False) -> None:
        super().__init__(controller, force)
        self.uses, self.fail, self.done = uses, fail, done

    def skip(self) -> bool:
        return self.done

    def execute(self):
        for name in self.uses:
            self.controller.get_permanence(name)
        log(f"execute {self.__class__.__name__}:{sorted(self.outputs)}")
        if self.fail == "error":
            raise ValueError("step broke")
        if self.fail == "interrupt":
            raise KeyboardInterrupt
        if self.fail == "hang":
            log("hanging")
            import time
            time.sleep(60)
        for path in self.outputs.values():
            path.write_text("ok")
"""

PIPELINE = """
[permanences.a]
type = "Res"
params = { tag = "a" }

[permanences.b]
type = "Res"
params = { tag = "b" }

[permanences.unused]
type = "Res"
params = { tag = "unused" }

[processes.last]
type = "Use"
params = { uses = ["b"], fail = "LAST" }
inputs = { x = "out/first.txt" }
outputs = { last = "out/last.txt" }

[processes.first]
type = "Use"
params = { uses = ["a", "b"] }
outputs = { first = "out/first.txt" }
"""


def events(project) -> list[str]:
    path = project.root / "pipelines/p/events.log"
    return path.read_text().splitlines() if path.exists() else []


def make(project, last_fail: str = "") -> None:
    project.pipeline("p", PIPELINE.replace("LAST", last_fail), steps=TRACKED)


def test_steps_run_in_dependency_order_with_lazy_permanences(project):
    make(project)
    reporter = ListReporter()
    summary = PipelineRunner("p", reporter=reporter).run()
    assert [r.name for r in summary.results] == ["first", "last"]
    assert [r.outcome for r in summary.results] == ["ran", "ran"]
    assert events(project) == [
        "init a",
        "init b",
        "execute Use:['first']",
        "checkpoint a",
        "checkpoint b",
        "execute Use:['last']",
        "checkpoint b",
        "cleanup b",
        "cleanup a",
    ]
    assert (project.root / "out/last.txt").read_text() == "ok"
    names = [e for e, _ in reporter.events]
    assert names[0] == "run_started" and names[-1] == "run_finished"


def test_cleanup_after_a_failing_process(project):
    make(project, last_fail="error")
    reporter = ListReporter()
    with pytest.raises(ProcessFailure, match="step 'last' failed: ValueError: step broke") as info:
        PipelineRunner("p", reporter=reporter).run()
    assert isinstance(info.value.error, ValueError)
    assert events(project)[-2:] == ["cleanup b", "cleanup a"]
    summary = reporter.events[-1][1]
    assert [(r.name, r.outcome) for r in summary.results] == [("first", "ran"), ("last", "failed")]


def test_cleanup_after_keyboard_interrupt(project):
    make(project, last_fail="interrupt")
    with pytest.raises(PipelineInterrupted):
        PipelineRunner("p").run()
    assert events(project)[-2:] == ["cleanup b", "cleanup a"]


@pytest.mark.slow
def test_real_sigint_cleans_up_and_exits_130(project):
    make(project, last_fail="hang")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tipi", "run", "p"],
        cwd=project.root,
        preexec_fn=interruptible,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while "hanging" not in events(project):
        assert time.monotonic() < deadline, proc.stderr
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert events(project)[-2:] == ["cleanup b", "cleanup a"]


def test_skip_and_force_keep_their_meaning(project):
    project.pipeline(
        "p",
        '[processes.s]\ntype = "Use"\nparams = { done = true }\noutputs = { s = "out/s.txt" }\n',
        steps=TRACKED,
    )
    summary = PipelineRunner("p").run()
    assert summary.results[0].outcome == "skipped"
    assert "skip()" in summary.results[0].reasons[0]
    assert PipelineRunner("p").run(force=True).results[0].outcome == "ran"


def test_a_cycle_is_reported_with_its_steps(project):
    project.pipeline(
        "p",
        """
        [processes.a]
        type = "Use"
        inputs = { x = "out/b.txt" }
        outputs = { a = "out/a.txt" }
        [processes.b]
        type = "Use"
        inputs = { x = "out/a.txt" }
        outputs = { b = "out/b.txt" }
        """,
        steps=TRACKED,
    )
    with pytest.raises(DefinitionError, match="cycle: a → b → a|cycle: b → a → b"):
        PipelineRunner("p").load()


def test_two_producers_of_one_path(project):
    project.pipeline(
        "p",
        """
        [processes.a]
        type = "Use"
        outputs = { a = "out/x.txt" }
        [processes.b]
        type = "Use"
        outputs = { b = "out/./x.txt" }
        """,
        steps=TRACKED,
    )
    with pytest.raises(DefinitionError, match="two steps produce .*x.txt: 'a' and 'b'"):
        PipelineRunner("p").load()


def test_the_only_pipeline_needs_no_name(project):
    make(project)
    assert PipelineRunner().name == "p"
    assert os.fspath(PipelineRunner().file).endswith("pipelines/p/pipeline.toml")
