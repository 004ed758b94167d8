"""`tipi make -j N`: steps in worker processes, one writer of traces, -k, resources and GPUs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.make_helpers import interruptible
from tipi.engine import Engine
from tipi.errors import BuildFailed, ConfigError, WorkerFailure
from tipi.execution.gpus import GpuInfo
from tipi.execution.resources import Inventory, ResourcePool, Resources
from tipi.report import ListReporter

STEPS = """
import json, os, signal, time
from pathlib import Path
from tipi import Permanence, PipelineProcess


def note(event):
    with open(os.path.join(os.environ["EVENTS_DIR"], f"{os.getpid()}.log"), "a") as f:
        f.write(event + "\\n")


class Tracked(Permanence):
    def __init__(self, label: str = "") -> None:
        self.label = label

    def initialize(self) -> None:
        note(f"init {self.label}")

    def cleanup(self) -> None:
        note(f"cleanup {self.label}")


class Sleep(PipelineProcess):
    def __init__(self, controller, force: bool = False, seconds: float = 0.4,
                 uses: str = "", fail: bool = False, lines: int = 0, die: bool = False,
                 tag: str = "") -> None:
        super().__init__(controller, force)
        self.seconds, self.uses, self.fail, self.lines, self.die = seconds, uses, fail, lines, die

    def execute(self) -> None:
        note(f"start {self.name}")
        if self.uses:
            self.controller.get_permanence(self.uses)
        start = time.time()
        for i in range(self.lines):
            print(f"{self.name} line {i}", flush=True)
            time.sleep(0.002)
        time.sleep(self.seconds)
        if self.die:
            os.kill(os.getpid(), signal.SIGKILL)  # os._exit() would only fail the step
        if self.fail:
            raise ValueError(f"{self.name} broke on purpose")
        record = {"pid": os.getpid(), "start": start, "end": time.time(),
                  "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}
        self.outputs["out"].write_text(json.dumps(record))


class Gather(PipelineProcess):
    def execute(self) -> None:
        self.outputs["all"].write_text(str(len(list(self.inputs))))
"""


def wide(names: list[str], extra: dict[str, str] | None = None, gather: bool = True) -> str:
    extra = extra or {}
    toml = """
    [permanences.left]
    type = "Tracked"
    params = { label = "left" }

    [permanences.right]
    type = "Tracked"
    params = { label = "right" }
    """
    for name in names:
        # A tag per step: twins would share one run-cache key, and the later one would be
        # restored from the earlier one's run instead of running beside it.
        more = extra.get(name, "")
        tag = f'tag = "{name}"'
        more = more.replace("params = { ", f"params = {{ {tag}, ") if "params" in more else more
        if "params" not in more:
            more += f"\n    params = {{ {tag} }}"
        toml += f"""
    [processes.{name}]
    type = "Sleep"
    outputs = {{ out = "out/{name}.json" }}
    {more}
    """
    if gather:
        inputs = ", ".join(f'"out/{n}.json"' for n in names)
        toml += f"""
    [processes.all]
    type = "Gather"
    inputs = [{inputs}]
    outputs = {{ all = "out/all.txt" }}
    """
    return toml


@pytest.fixture
def events(project, monkeypatch) -> Path:
    folder = project.root / "events"
    folder.mkdir()
    monkeypatch.setenv("EVENTS_DIR", str(folder))
    return folder


def records(project, names: list[str]) -> dict[str, dict]:
    return {n: json.loads(project.read(f"out/{n}.json")) for n in names}


def overlaps(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def max_concurrency(items: list[dict]) -> int:
    moments = sorted([(r["start"], 1) for r in items] + [(r["end"], -1) for r in items])
    level = peak = 0
    for _, change in moments:
        level += change
        peak = max(peak, level)
    return peak


@pytest.mark.slow
def test_independent_steps_run_at_once_and_the_next_make_runs_nothing(project, events):
    project.pipeline("wide", wide(["a", "b", "c", "d"]), steps=STEPS)
    reporter = ListReporter()
    summary = Engine("wide", reporter=reporter).make(jobs=2)
    assert [r.name for r in summary.of("ran")][-1] == "all"
    assert len(summary.of("ran")) == 5
    runs = records(project, ["a", "b", "c", "d"])
    assert max_concurrency(list(runs.values())) == 2  # never more than -j 2
    assert overlaps(runs["a"], runs["b"])
    assert len({r["pid"] for r in runs.values()} - {os.getpid()}) == 2  # two worker processes
    assert project.read("out/all.txt") == "4"
    # The driver recorded every trace: a sequential make and a parallel one agree.
    again = Engine("wide").make()
    assert not again.of("ran")
    assert not Engine("wide").make(jobs=3).of("ran")
    assert not list((project.root / ".tipi_cache" / "staging").glob("*/*"))


@pytest.mark.slow
def test_each_worker_builds_only_the_permanences_its_step_uses(project, events):
    extra = {"a": 'params = { uses = "left" }', "b": 'params = { uses = "right" }'}
    project.pipeline("wide", wide(["a", "b"], extra, gather=False), steps=STEPS)
    Engine("wide").make(jobs=2)
    by_step = {}
    for log in events.glob("*.log"):
        lines = log.read_text().split("\n")
        for i, line in enumerate(lines):
            if line.startswith("start "):
                # What this worker did for this step: up to the next step it started.
                rest = []
                for after in lines[i + 1 :]:
                    if after.startswith("start "):
                        break
                    rest.append(after)
                by_step[line.split()[1]] = [x for x in rest if x]
    assert by_step == {"a": ["init left", "cleanup left"], "b": ["init right", "cleanup right"]}


@pytest.mark.slow
def test_a_failure_stops_new_steps_and_lets_running_ones_finish(project, events):
    extra = {"a": "params = { fail = true, seconds = 0.1 }", "b": "params = { seconds = 1.0 }"}
    project.pipeline("wide", wide(["a", "b", "c", "d"], extra), steps=STEPS)
    reporter = ListReporter()
    with pytest.raises(WorkerFailure) as caught:
        Engine("wide", reporter=reporter).make(jobs=2)
    assert "a broke on purpose" in str(caught.value)
    assert "ValueError" in caught.value.details and "steps.py" in caught.value.details
    outcomes = {e[1].name: e[1].outcome for e in reporter.events if e[0] == "step_finished"}
    assert outcomes == {"a": "failed", "b": "ran", "c": "not run", "d": "not run", "all": "not run"}
    # b finished while a had failed; it was recorded and does not run again.
    summary = Engine("wide").make(["b"], jobs=2)
    assert not summary.of("ran")


@pytest.mark.slow
def test_keep_going_runs_every_step_that_does_not_depend_on_a_failure(project, events):
    extra = {"a": "params = { fail = true }", "c": "params = { fail = true }"}
    project.pipeline("wide", wide(["a", "b", "c", "d"], extra), steps=STEPS)
    reporter = ListReporter()
    with pytest.raises(BuildFailed) as caught:
        Engine("wide", reporter=reporter).make(jobs=2, keep_going=True)
    assert [name for name, _ in caught.value.failures] == ["a", "c"]
    outcomes = {e[1].name: e[1].outcome for e in reporter.events if e[0] == "step_finished"}
    assert outcomes == {"a": "failed", "b": "ran", "c": "failed", "d": "ran", "all": "not run"}
    reasons = [e[1].reasons for e in reporter.events if e[0] == "step_finished"]
    assert ("upstream 'a' failed",) in reasons


@pytest.mark.slow
def test_each_steps_output_is_shown_in_one_piece(project, events, cli):
    extra = {"a": "params = { lines = 40 }", "b": "params = { lines = 40 }"}
    project.pipeline("wide", wide(["a", "b"], extra, gather=False), steps=STEPS)
    result = cli("make", "-j", "2")
    assert result.exit_code == 0, result.stderr
    shown = [line for line in result.stderr.splitlines() if " line " in line]
    assert len(shown) == 80
    prefixes = [line.split("│")[0].strip() for line in shown]
    assert prefixes in (["a"] * 40 + ["b"] * 40, ["b"] * 40 + ["a"] * 40)  # not interleaved
    assert all(
        line.split("│")[1].strip().startswith(p) for line, p in zip(shown, prefixes, strict=True)
    )


@pytest.mark.slow
def test_a_worker_that_dies_fails_its_step_only(project, events):
    extra = {"a": "params = { die = true, seconds = 0.1 }", "b": "params = { seconds = 0.5 }"}
    project.pipeline("wide", wide(["a", "b"], extra, gather=False), steps=STEPS)
    reporter = ListReporter()
    with pytest.raises(WorkerFailure) as caught:
        Engine("wide", reporter=reporter).make(jobs=2, keep_going=True)
    assert caught.value.step == "a"
    assert "a.log" in (caught.value.hint or "")
    assert (project.root / "out" / "b.json").exists()
    assert not (project.root / "out" / "a.json").exists()


def test_bad_jobs_and_executor_values_are_usage_errors(numbers_project, cli):
    assert cli("make", "-j", "0").exit_code == 2
    result = cli("make", "--executor", "spark")
    assert result.exit_code == 2 and "'spark' is not one of 'local', 'dask'" in result.stderr
    result = cli("make", "--scheduler", "tcp://x:1")
    assert result.exit_code == 2 and "--scheduler needs --executor dask" in result.stderr


# Resources and GPU assignment, with a fake inventory --------------------------------------


def gpu(index: int, free_gib: float) -> GpuInfo:
    total = 16 * 2**30
    return GpuInfo(index, f"Fake GPU {index}", total, total - int(free_gib * 2**30))


def test_the_pool_never_oversubscribes_and_prefers_free_memory():
    pool = ResourcePool(Inventory.fake(cpu=4, mem_gb=10, gpus=[gpu(0, 2), gpu(1, 12), gpu(3, 8)]))
    assert pool.take(Resources(gpu=1)) == ["1"]  # the most free memory first
    assert pool.take(Resources(gpu=2)) == ["0", "3"]
    assert pool.take(Resources(gpu=1)) is None
    assert pool.take(Resources(cpu=3, mem_gb=6)) == []
    assert pool.take(Resources(cpu=2)) is None  # 1 core left
    assert pool.take(Resources(mem_gb=5)) is None  # 4 GiB left
    pool.give_back(Resources(gpu=2), ["0", "3"])
    assert pool.take(Resources(gpu=1)) == ["3"]
    assert pool.take(Resources(cpu=1, mem_gb=4)) == []


def test_a_step_that_can_never_fit_is_refused_before_anything_runs(project, events):
    extra = {"b": "resources = { gpu = 3 }"}
    project.pipeline("wide", wide(["a", "b"], extra, gather=False), steps=STEPS)
    inventory = Inventory.fake(cpu=2, mem_gb=8, gpus=[gpu(0, 8), gpu(1, 8)])
    with pytest.raises(ConfigError, match="step 'b' needs gpu = 3 but this machine has 2"):
        Engine("wide").make(jobs=2, inventory=inventory)
    assert not (project.root / "out").exists()


@pytest.mark.slow
def test_gpu_steps_get_distinct_devices_chosen_by_free_memory(project, events):
    names = ["g1", "g2", "g3", "g4"]
    extra = {n: "resources = { gpu = 1 }\nparams = { seconds = 0.6 }" for n in names}
    project.pipeline("gpus", wide(names, extra, gather=False), steps=STEPS)
    inventory = Inventory.fake(cpu=2, mem_gb=8, gpus=[gpu(0, 3), gpu(2, 9)])
    Engine("gpus").make(jobs=4, inventory=inventory)
    by_name = records(project, names)
    runs = list(by_name.values())
    assert max_concurrency(runs) == 2  # two GPUs: two steps at a time despite -j 4
    for a in runs:
        for b in runs:
            if a is not b and overlaps(a, b):
                assert a["gpus"] != b["gpus"]
    assert {r["gpus"] for r in runs} == {"0", "2"}
    assert by_name["g1"]["gpus"] == "2"  # started first: the device with the most free memory
    assert len({r["pid"] for r in runs}) == 4  # a fresh process per GPU step


@pytest.mark.slow
def test_declared_cores_limit_concurrency(project, events):
    extra = {n: "resources = { cpu = 2 }" for n in ("a", "b", "c")}
    project.pipeline("wide", wide(["a", "b", "c"], extra, gather=False), steps=STEPS)
    inventory = Inventory.fake(cpu=3, mem_gb=8, gpus=[])
    Engine("wide").make(jobs=3, inventory=inventory)
    assert max_concurrency(list(records(project, ["a", "b", "c"]).values())) == 1


def test_resources_are_checked_in_the_pipeline_file(project, cli):
    project.pipeline(
        "bad",
        """
        [processes.a]
        type = "Sleep"
        resources = { gpus = 1 }
        """,
        steps=STEPS,
    )
    result = cli("make", "-p", "bad")
    assert result.exit_code == 2
    assert "unknown key 'gpus'" in result.stderr and "did you mean 'gpu'" in result.stderr
    assert "pipeline.toml:3" in result.stderr


# Interrupting a parallel make ---------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_cleans_up_and_keeps_no_partial_output(project, events):
    extra = {n: 'params = { seconds = 30, uses = "left" }' for n in ("a", "b")}
    project.pipeline("wide", wide(["a", "b"], extra, gather=False), steps=STEPS)
    env = {**os.environ, "EVENTS_DIR": str(events)}
    tipi = Path(sys.executable).with_name("tipi")
    make = subprocess.Popen(
        [str(tipi), "make", "-j", "2"],
        cwd=project.root,
        preexec_fn=interruptible,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        started = "".join(p.read_text() for p in events.glob("*.log")).count("init left")
        if started == 2:
            break
        time.sleep(0.1)
    else:
        make.kill()
        pytest.fail("the two steps never started")
    make.send_signal(signal.SIGINT)
    _, stderr = make.communicate(timeout=60)
    assert make.returncode == 130, stderr
    assert "interrupted" in stderr
    log = "".join(p.read_text() for p in events.glob("*.log"))
    assert log.count("cleanup left") == 2  # each worker cleaned up its permanence
    assert not (project.root / "out").exists()
    workers = {int(p.stem) for p in events.glob("*.log")}
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"worker {pid} still runs"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


PHASED = """
import os, time
from tipi import PipelineProcess


class Phased(PipelineProcess):
    def __init__(self, controller, force: bool = False, text: str = "", pre: float = 0.0,
                 post: float = 0.0) -> None:
        super().__init__(controller, force)
        self.text, self.pre, self.post = text, pre, post

    def execute(self) -> None:
        with open(os.path.join(os.environ["EVENTS_DIR"], "pids"), "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(self.pre)
        self.outputs["out"].write_text(self.text)
        time.sleep(self.post)
"""


@pytest.mark.slow
def test_a_killed_make_leaves_no_worker_writing_where_the_next_make_stages(project, events):
    """kill -9 of a -j make: its worker is interrupted at once (it would otherwise go on and
    write its old result where the next make stages, which then kept it as the new one)."""
    project.pipeline(
        "k",
        """
        [processes.a]
        type = "Phased"
        outputs = { out = "out/a.txt" }
        """,
        steps=PHASED,
    )
    env = {**os.environ, "EVENTS_DIR": str(events)}
    tipi = str(Path(sys.executable).with_name("tipi"))
    make = subprocess.Popen(
        [tipi, "make", "-j", "2", "--set", 'a.text="OLD"', "--set", "a.pre=30"],
        cwd=project.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    pids = events / "pids"
    deadline = time.monotonic() + 60
    while not pids.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    make.kill()
    make.wait()
    worker = int(pids.read_text().split()[0])
    deadline = time.monotonic() + 10  # well before its 30 s are over
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the worker {worker} of the killed make still runs")
    new = [tipi, "make", "-j", "2", "--set", 'a.text="NEW"', "--set", "a.post=5"]
    done = subprocess.run(new, cwd=project.root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert project.read("out/a.txt") == "NEW"


def test_two_makes_never_stage_in_the_same_folder(tmp_path):
    from tipi.execution.staging import Staging

    outputs = {"out": tmp_path / "out/a.txt"}
    first, _ = Staging(tmp_path / ".tipi_cache", "p").prepare("a", outputs, slot=0)
    second, _ = Staging(tmp_path / ".tipi_cache", "p").prepare("a", outputs, slot=0)
    assert first["out"].name == second["out"].name == "a.txt"  # names and suffixes kept
    assert first["out"].parent != second["out"].parent
