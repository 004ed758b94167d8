"""Real `tipi make` processes killed mid-step, interrupted, or run two at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.make_helpers import interruptible

# every test here starts processes (or takes seconds): not in the fast tier
pytestmark = pytest.mark.slow

SLOW = """
import os, time
from pathlib import Path
from tipi import Permanence, PipelineProcess

ROOT = Path(os.getcwd())


def log(line):
    with open(ROOT / "events.log", "a") as f:
        f.write(line + "\\n")


class Res(Permanence):
    def initialize(self):
        log("init res")

    def cleanup(self):
        log("cleanup res")


class Quick(PipelineProcess):
    def execute(self):
        log("run quick")
        self.outputs["out"].write_text("quick")


class Slow(PipelineProcess):
    def execute(self):
        self.controller.get_permanence("res")
        log("run slow")
        self.outputs["out"].write_text("partial")
        (ROOT / "ready").write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not (ROOT / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        (ROOT / "go").unlink(missing_ok=True)
        self.outputs["out"].write_text(self.inputs["src"].read_text() + " then slow")


class After(PipelineProcess):
    def execute(self):
        log("run after")
        self.outputs["out"].write_text(self.inputs["src"].read_text() + "!")
"""

PIPELINE = """
[permanences.res]
type = "Res"

[processes.quick]
type = "Quick"
outputs = { out = "out/quick.txt" }

[processes.slow]
type = "Slow"
inputs = { src = "out/quick.txt" }
outputs = { out = "out/slow.txt" }

[processes.after]
type = "After"
inputs = { src = "out/slow.txt" }
outputs = { out = "out/after.txt" }
"""


@pytest.fixture
def crash_project(project):
    project.pipeline("c", PIPELINE, steps=SLOW)
    return project


def tipi(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tipi", *args],
        cwd=root,
        preexec_fn=interruptible,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process ended early: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def events(root: Path) -> list[str]:
    path = root / "events.log"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_a_killed_step_leaves_no_output_and_no_trace_and_reruns_alone(crash_project, sig):
    root = crash_project.root
    proc = tipi(root, "make")
    wait_for(root / "ready", proc)
    proc.send_signal(sig)
    code, err = finish(proc)
    assert not (root / "out/slow.txt").exists()  # "partial" stayed in staging
    assert (root / "out/quick.txt").read_text() == "quick"
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert events(root) == ["run quick", "init res", "run slow"]
    else:
        assert code == 130, err
        assert "interrupted" in err and "Traceback" not in err
        assert "tipi make" in err  # the command to resume
        assert events(root) == ["run quick", "init res", "run slow", "cleanup res"]
    (root / "ready").unlink()
    (root / "go").write_text("")
    code, err = finish(tipi(root, "make"))
    assert code == 0, err
    assert events(root) == ["init res", "run slow", "run after", "cleanup res"]
    assert (root / "out/after.txt").read_text() == "quick then slow!"
    assert not any((root / ".tipi_cache/staging").rglob("*.txt"))


def test_a_second_make_waits_names_the_holder_and_then_has_nothing_to_do(crash_project):
    root = crash_project.root
    first = tipi(root, "make")
    wait_for(root / "ready", first)
    said = root / "second.err"  # a file, not a pipe: read while the make runs
    with said.open("w") as stderr:
        second = subprocess.Popen(
            [sys.executable, "-m", "tipi", "make"],
            cwd=root,
            preexec_fn=interruptible,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 30
    holder = root / ".tipi_cache/lock.holder"
    assert holder.exists()
    while "waiting for" not in said.read_text():  # the second make waits on the lock
        assert second.poll() is None, said.read_text()
        assert time.monotonic() < deadline, "the second make never said it waits"
        time.sleep(0.02)
    assert second.poll() is None
    (root / "go").write_text("")
    code1, err1 = finish(first)
    code2, err2 = second.wait(timeout=60), said.read_text()
    assert time.monotonic() < deadline + 60
    assert (code1, code2) == (0, 0), (err1, err2)
    assert f"waiting for pid {first.pid}" in err2
    assert "tipi make" in err2
    assert events(root).count("run slow") == 1  # the second make reread the traces
    assert "up to date" in err2 or "skipped" in err2


def test_a_lock_left_by_a_dead_process_is_taken_over(crash_project):
    root = crash_project.root
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from tipi.state.lock import ProjectLock;"
            "lock = ProjectLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); time.sleep(60)",
            str(root / ".tipi_cache"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    (root / "go").write_text("")
    code, err = finish(tipi(root, "make"))
    assert code == 0, err
    assert "waiting" not in err


def test_a_no_op_make_imports_neither_torch_nor_the_pipeline_modules(project):
    project.pipeline(
        "t",
        '[processes.a]\ntype = "UsesTorch"\noutputs = { out = "out/a.txt" }\n',
        steps="import torch\nfrom tipi import PipelineProcess\n\n\n"
        "class UsesTorch(PipelineProcess):\n"
        "    def execute(self):\n"
        "        self.outputs['out'].write_text(str(torch.tensor([1, 2]).sum().item()))\n",
    )
    past = time.time() - 60
    for f in (project.root / "pipelines/t").iterdir():
        os.utime(f, (past, past))
    probe = (
        "import sys\n"
        "from tipi.cli import app\n"
        "try:\n"
        "    app(['make'])\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "print('torch' in sys.modules, 'networkx' in sys.modules,"
        " any(m.startswith('_tipi_pipelines') for m in sys.modules),"
        " 'tipi.identity.closure' in sys.modules or 'importlib.metadata' in sys.modules)\n"
    )

    def run_probe() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=project.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    # the first make imports and runs the step (planning needs no networkx: graph/dag.py)
    assert run_probe() == "True False True True"
    assert (project.root / "out/a.txt").read_text() == "3"
    # the no-op make imports none of them, nor what computes code closures and environments
    assert run_probe() == "False False False False"
