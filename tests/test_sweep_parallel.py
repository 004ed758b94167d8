"""`tipi sweep -j N`: up to N variants at once, sharing N worker slots; the shared steps run
once, results are those of a sequential sweep, a failing variant does not stop the others,
Ctrl-C stops every variant and keeps what finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.make_helpers import interruptible, runs
from tipi.sweep.runner import Sweep, SweepFailed
from tipi.sweep.spec import grid_from_options

# Fit meets the fits of other variants: it leaves a marker in meet/ and waits (up to `wait`
# seconds) until `meet` markers are there; alone, it fails. So a sweep whose variants run one
# after another cannot pass, and no test waits a fixed time.
STEPS = """
import json
import os
import time
from tipi import PipelineProcess


def log_run(text):
    with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
        f.write(text + "\\n")


def meet(name, count, wait):
    os.makedirs("meet", exist_ok=True)
    with open(os.path.join("meet", name), "w") as f:
        f.write(str(os.getpid()))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if len(os.listdir("meet")) >= count:
            return True
        time.sleep(0.01)
    return False


class Prepare(PipelineProcess):
    def execute(self) -> None:
        log_run("prepare")
        self.outputs["data"].write_text("data")


class Fit(PipelineProcess):
    def __init__(self, controller, force: bool = False, lr: float = 0.1, meet: int = 0,
                 wait: float = 30.0) -> None:
        super().__init__(controller, force)
        self.lr, self.meet, self.wait = lr, meet, wait

    def execute(self) -> None:
        log_run(f"fit:{self.lr}")
        with open("pids.log", "a") as f:
            f.write(f"{os.getpid()}\\n")
        if self.meet and not meet(str(self.lr), self.meet, self.wait):
            raise RuntimeError("no other variant's fit ran beside this one")
        if self.lr > 1:
            raise RuntimeError("lr too large")
        assert self.inputs["data"].read_text() == "data"
        self.outputs["model"].write_text(repr(self.lr))
        self.outputs["history"].write_text(json.dumps({"best_score": self.lr * 10}))


class Score(PipelineProcess):
    def execute(self) -> None:
        log_run("score")
        lr = float(self.inputs["model"].read_text())
        self.outputs["metrics"].write_text(json.dumps({"accuracy": 1 - abs(lr - 0.05)}))
"""

PIPELINE = """
[processes.prepare]
type = "Prepare"
outputs = { data = "data/toy/data.txt" }

[processes.fit]
type = "Fit"
inputs = { data = "data/toy/data.txt" }
outputs = { model = "out/toy/fit/model.txt", history = "out/toy/fit/history.json" }

[processes.score]
type = "Score"
inputs = { model = "out/toy/fit/model.txt" }
outputs = { metrics = "out/toy/score/metrics.json" }
"""

GRID = "fit.lr=0.01,5.0,0.2"


@pytest.fixture
def toy(project):
    project.pipeline("toy", PIPELINE, steps=STEPS)
    return project


def sweep(root: Path, grid: str, *overrides: str, **options) -> Sweep:
    spec = grid_from_options([grid])
    return Sweep("toy", spec, root=root, overrides=overrides, make_options=options)


def results_of(root: Path) -> list[dict]:
    data = json.loads((root / "out/sweeps/toy/grid/results.json").read_text())
    return [{k: v for k, v in row.items() if k != "seconds"} for row in data["variants"]]


@pytest.mark.slow
def test_with_j2_two_variants_run_at_once_and_the_results_are_those_of_j1(toy, tmp_path):
    # -j 2: lr=0.01 and lr=5.0 meet (both run at once); lr=5.0 then fails, lr=0.2 runs.
    with pytest.raises(SweepFailed, match="1 of 3 variants failed: lr=5.0"):
        sweep(toy.root, GRID, "fit.meet=2", jobs=2).run()
    logged = runs(toy)
    assert logged.count("prepare") == 1  # shared: made once, before the variants
    assert sorted(logged) == sorted(["prepare", "fit:0.01", "fit:5.0", "fit:0.2", *["score"] * 2])

    # The same grid one variant after another, in a project of its own.
    alone = tmp_path / "alone"
    (alone / "pipelines").mkdir(parents=True)
    (alone / "pipelines/toy").symlink_to(toy.root / "pipelines/toy")
    with pytest.raises(SweepFailed, match="1 of 3 variants failed: lr=5.0"):
        sweep(alone, GRID, jobs=1).run()
    assert results_of(toy.root) == results_of(alone)
    assert [v["status"] for v in results_of(toy.root)] == ["ran", "failed", "ran"]
    assert "lr too large" in results_of(toy.root)[1]["error"]
    assert (toy.root / "out/sweeps/toy/grid/lr=0.2/fit/model.txt").read_text() == "0.2"

    # Again with -j 2, the failed variant fixed away: what finished is up to date.
    runs(toy)
    again = sweep(toy.root, "fit.lr=0.01,0.2", "fit.meet=2", jobs=2).run()
    assert [v.status for v in again.variants] == ["up to date", "up to date"]
    assert runs(toy) == []


@pytest.mark.slow
def test_the_workers_serve_later_variants_and_live_as_long_as_the_sweep(toy):
    # Linux ends a worker when the thread that started it ends: the threads that make the
    # variants must outlive them, or a later variant's step dies with its reused worker.
    lrs = ",".join(str(0.01 * (i + 1)) for i in range(6))
    results = sweep(toy.root, f"fit.lr={lrs}", jobs=2).run()
    assert [v.status for v in results.variants] == ["ran"] * 6
    assert len(set((toy.root / "pids.log").read_text().split())) <= 2  # 2 workers in all


@pytest.mark.slow
def test_reserved_resources_are_shared_by_the_variants(toy):
    # Each fit reserves the one core the sweep may hand out: two variants' fits never run at
    # once, so the first to run (of either variant) waits for a partner in vain (the second
    # finds its marker).
    from tipi.execution.resources import Inventory

    edit = toy.root / "pipelines/toy/pipeline.toml"
    edit.write_text(
        edit.read_text().replace('type = "Fit"', 'type = "Fit"\nresources = { cpu = 1 }')
    )
    one_core = Inventory.fake(cpu=1, mem_gb=8, gpus=[])
    with pytest.raises(SweepFailed, match="1 of 2 variants failed: lr=0.0[12]$"):
        sweep(
            toy.root, "fit.lr=0.01,0.02", "fit.meet=2", "fit.wait=0.5", jobs=2, inventory=one_core
        ).run()
    assert runs(toy).count("prepare") == 1


def test_one_after_another_the_variants_never_meet(toy):
    # What the test above relies on: without -j the first fit runs alone, and fails so (the
    # second finds its marker).
    with pytest.raises(SweepFailed, match="1 of 2 variants failed: lr=0.01$"):
        sweep(toy.root, "fit.lr=0.01,0.02", "fit.meet=2", "fit.wait=0.2").run()


@pytest.mark.slow
def test_a_failing_variant_under_j2_does_not_stop_the_others(toy, cli):
    result = cli("sweep", "-p", "toy", "-j", "2", "--grid", GRID, "--set", "fit.meet=2")
    assert result.exit_code == 1
    assert "1 of 3 variants failed: lr=5.0" in result.stderr
    assert "RuntimeError: lr too large" in result.stderr
    assert [v["status"] for v in results_of(toy.root)] == ["ran", "failed", "ran"]
    assert "lr=0.2" in result.stdout  # the table is printed all the same
    # The display names each variant's steps: several variants are shown at once.
    assert "fit@lr=0.01 ran" in result.stderr and "fit@lr=5.0 failed" in result.stderr


@pytest.mark.slow
def test_force_all_runs_the_shared_steps_once_not_once_per_variant(toy, cli):
    assert cli("sweep", "-p", "toy", "-j", "2", "--grid", "fit.lr=0.01,0.2").exit_code == 0
    runs(toy)
    result = cli("sweep", "-p", "toy", "-j", "2", "-F", "--grid", "fit.lr=0.01,0.2")
    assert result.exit_code == 0, result.stderr
    assert sorted(runs(toy)) == sorted(["prepare", "fit:0.01", "fit:0.2", "score", "score"])


@pytest.mark.slow
def test_ctrl_c_stops_every_variant_and_keeps_no_partial_output(toy):
    tipi = Path(sys.executable).with_name("tipi")
    args = ["sweep", "-p", "toy", "-j", "2", "--grid", "fit.lr=0.01,0.02,0.03"]
    command = [str(tipi), *args, "--set", "fit.meet=99", "--set", "fit.wait=60"]
    sweeping = subprocess.Popen(
        command,
        cwd=toy.root,
        preexec_fn=interruptible,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    meet = toy.root / "meet"
    deadline = time.monotonic() + 60
    while not (meet.is_dir() and len(os.listdir(meet)) == 2):  # both fits run
        if time.monotonic() > deadline or sweeping.poll() is not None:
            sweeping.kill()
            pytest.fail(f"the two variants never ran at once: {sweeping.communicate()[1]}")
        time.sleep(0.05)
    workers = [int(p.read_text()) for p in meet.iterdir()]
    sweeping.send_signal(signal.SIGINT)
    _, stderr = sweeping.communicate(timeout=60)
    assert sweeping.returncode == 130, stderr
    assert [(v["variant"], v["status"]) for v in results_of(toy.root)] == [
        ("lr=0.01", "interrupted"),
        ("lr=0.02", "interrupted"),
    ]
    assert not list((toy.root / "out/sweeps").glob("**/model.txt"))
    assert not list((toy.root / ".tipi_cache/staging").glob("**/*.txt"))
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"worker {pid} still runs"
    # Nothing was lost: the shared step stays made, the lock is free, the sweep goes on.
    runs(toy)
    done = subprocess.run([str(tipi), *args], cwd=toy.root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(runs(toy)) == sorted(["fit:0.01", "fit:0.02", "fit:0.03", *["score"] * 3])


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
