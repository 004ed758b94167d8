"""Dask failures are errors a user can read: a bad or dead scheduler, one lost mid-make, a step
that kills its worker, multi-threaded workers, workers that do not see the project. Against a
real `dask scheduler` process and `dask worker` processes started by the tests."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import textwrap
import threading
from pathlib import Path

import pytest

from tests.dask_cluster import TIPI, DaskCluster, make, wait_until
from tipi.config.planned import check_unchanged, stat_dep, with_content
from tipi.errors import ConfigError

pytest.importorskip("distributed")

STEPS = """
import json, os, signal, time
from pathlib import Path
from tipi import PipelineProcess


def events():
    return Path(os.environ["EVENTS_DIR"])


class Step(PipelineProcess):
    def __init__(self, controller, force: bool = False, tag: str = "", lines: int = 0,
                 die: int = 0, hold: bool = False) -> None:
        super().__init__(controller, force)
        self.lines, self.die, self.hold = lines, die, hold

    def execute(self) -> None:
        tries = events() / f"{self.name}.tries"
        with open(tries, "a") as f:
            f.write("x")
        if len(tries.read_text()) <= self.die:  # its first `die` tries kill their process
            os.kill(os.getpid(), signal.SIGKILL)
        for i in range(self.lines):
            print(f"{self.name} line {i}", flush=True)
            time.sleep(0.005)
        deadline = time.time() + 60
        while self.hold and not (events() / "go").exists() and time.time() < deadline:
            time.sleep(0.02)
        self.outputs["out"].write_text(json.dumps({"pid": os.getpid()}))
"""


def pipeline(project, steps: dict[str, str]) -> None:
    """Steps of type Step writing out/NAME.json; `steps`: name → more of its table."""
    toml = ""
    for name, more in steps.items():
        toml += f"""
        [processes.{name}]
        type = "Step"
        outputs = {{ out = "out/{name}.json" }}
        {more}
        """
    project.pipeline("p", textwrap.dedent(toml), steps=STEPS)


@pytest.fixture
def events(project, monkeypatch) -> Path:
    folder = project.root / "events"
    folder.mkdir()
    monkeypatch.setenv("EVENTS_DIR", str(folder))
    return folder


@pytest.fixture
def cluster(project, events, tmp_path_factory):
    """A scheduler process; each test starts the workers it needs."""
    running = DaskCluster(tmp_path_factory.mktemp("dask"), env={"EVENTS_DIR": str(events)})
    try:
        yield running
    finally:
        running.stop()


def tries(events: Path, step: str) -> int:
    path = events / f"{step}.tries"
    return len(path.read_text()) if path.exists() else 0


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "address, said",
    [
        ("bogus:xyz", "'bogus:xyz' is not a Dask scheduler address"),
        ("http://127.0.0.1:8787", "'http://127.0.0.1:8787' is not a Dask scheduler address"),
        ("tcp://127.0.0.1:{port}", "cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"),
    ],
)
def test_a_bad_address_or_a_scheduler_down_is_one_line_and_no_table(
    project, events, cli, address, said
):
    pipeline(project, {f"s{i}": f'params = {{ tag = "{i}" }}' for i in range(12)})
    port = free_port()
    result = cli("make", "--executor", "dask", "--scheduler", address.format(port=port))
    assert result.exit_code == 2
    (line,) = errors(result.stderr)
    assert line.startswith(f"error: {said.format(port=port)}")
    assert "hint:" in result.stderr
    assert "not run" not in result.stderr and "up to date" not in result.stderr
    assert "internal error" not in result.stderr


def test_a_port_where_no_scheduler_answers_is_refused(project, events, cli):
    """The client would wait for a handshake forever (an HTTP server, the dashboard)."""
    pipeline(project, {"s0": ""})
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def hang_up() -> None:
            connection, _ = server.accept()
            connection.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        result = cli("make", "--executor", "dask", "--scheduler", f"tcp://127.0.0.1:{port}")
        thread.join(10)
    assert result.exit_code == 2
    (line,) = errors(result.stderr)
    assert "something listens there but hung up: not a Dask scheduler" in line


@pytest.mark.slow
def test_a_scheduler_lost_mid_make_is_one_line_and_exit_1(project, events, cluster):
    pipeline(
        project, {"a": "", "b": 'inputs = { a = "out/a.json" }\n        params = { hold = true }'}
    )
    cluster.start(workers=2)
    run = make(project.root, "--executor", "dask", "--scheduler", cluster.address, "-k")
    wait_until(lambda: tries(events, "b"), what="b to start")
    cluster.kill_scheduler()
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 1, stderr
    assert errors(stderr) == [f"error: lost the Dask scheduler at {cluster.address} while 'b' ran"]
    assert "Traceback" not in stderr and "internal error" not in stderr
    # What finished is kept, as after any failure: `a` does not run again.
    (events / "go").touch()
    again = subprocess.run([TIPI, "make"], cwd=project.root, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "done: 1 ran" in again.stderr and tries(events, "a") == 1


@pytest.mark.slow
def test_a_step_that_kills_its_worker_fails_once_and_takes_no_other_worker(
    project, events, cluster
):
    pipeline(project, {"s0": "params = { die = 1 }", "s1": ""})
    cluster.start(workers=2)
    run = make(project.root, "--executor", "dask", "--scheduler", cluster.address, "-k")
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 1, stderr
    assert tries(events, "s0") == 1  # Dask would try it on the next worker, and the next
    assert "error: the Dask worker running 's0' died (tcp://127.0.0.1:" in stderr
    assert "resources = { retries = 1 }" in stderr
    assert (project.root / "out" / "s1.json").exists()
    assert cluster.worker_count() == 1


@pytest.mark.slow
def test_resources_retries_runs_a_step_again_after_its_worker_died(project, events, cluster):
    pipeline(project, {"s0": "params = { die = 1 }\n        resources = { retries = 1 }"})
    cluster.start(workers=2)
    run = make(project.root, "--executor", "dask", "--scheduler", cluster.address)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    assert tries(events, "s0") == 2 and cluster.worker_count() == 1


def test_retries_must_be_a_whole_number(project, events, cli):
    pipeline(project, {"s0": "resources = { retries = 1.5 }"})
    result = cli("make", "--dry-run")
    assert result.exit_code == 2 and "'retries' must be a whole number" in result.stderr


@pytest.mark.slow
def test_steps_on_multithreaded_workers_keep_their_own_logs(project, events, cluster):
    names = [f"s{i}" for i in range(4)]
    pipeline(project, {n: f'params = {{ tag = "{n}", lines = 40 }}' for n in names})
    cluster.start(workers=2, nthreads=4)
    run = make(project.root, "--executor", "dask", "--scheduler", cluster.address, "-F")
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    for name in names:
        log = (project.root / ".tipi_cache" / "logs" / "p" / f"{name}.log").read_text()
        assert log.splitlines() == [f"{name} line {i}" for i in range(40)]
    assert "run several threads: tipi runs one step at a time in each worker" in stderr


def _can_hide_folders() -> bool:
    """Whether this machine lets a process mount over a folder in a namespace of its own."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run(
        [unshare, "-rm", "sh", "-c", "mount -t tmpfs none /tmp"], capture_output=True
    )
    return probe.returncode == 0


def _hidden(folder: Path, source: Path | None = None) -> list[str]:
    """A command prefix that runs its command where `folder` is empty (or holds `source`)."""
    mount = f"mount --bind {shlex.quote(str(source))}" if source else "mount -t tmpfs none"
    script = f'{mount} {shlex.quote(str(folder))} && exec "$@"'
    return ["unshare", "-rm", "sh", "-c", script, "sh"]


@pytest.mark.slow
@pytest.mark.skipif(not _can_hide_folders(), reason="needs unshare and mount namespaces")
def test_a_worker_that_does_not_see_the_project_is_told_so(project, events, cluster, tmp_path):
    pipeline(project, {"s0": "", "s1": 'inputs = { a = "out/s0.json" }'})
    cluster.start(workers=0)
    # A worker on a machine without the project: its folder is not there at all.
    blind = cluster.add_worker(wrap=_hidden(project.root.parent))
    cluster.wait_for_workers(1)
    run = make(project.root, "--executor", "dask", "--scheduler", cluster.address)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 2, stderr
    said = f"does not see this project's files at {project.root}: Dask workers need the project"
    assert said in errors(stderr)[0] and len(errors(stderr)) == 1
    assert "changed after this make planned" not in stderr
    # A worker with a copy of its own at the same path (times and inodes of its own): the same
    # refusal, not a loop on "steps.py changed after this make planned its steps".
    blind.kill()
    blind.wait()
    wait_until(lambda: cluster.worker_count() == 0, what="the worker to leave")
    copy = tmp_path.parent / f"{tmp_path.name}-copy"
    shutil.copytree(project.root, copy, ignore=shutil.ignore_patterns(".tipi_cache"))
    cluster.add_worker(wrap=_hidden(project.root, source=copy))
    cluster.wait_for_workers(1)
    run = make(project.root, "--executor", "dask", "--scheduler", cluster.address)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 2, stderr
    assert f"has a folder at {project.root}, but not the files of this make" in stderr
    assert "changed after this make planned" not in stderr


@pytest.mark.slow
@pytest.mark.skipif(not _can_hide_folders(), reason="needs unshare and mount namespaces")
def test_a_worker_that_sees_the_code_with_other_inodes_runs_it(project, events, cluster, tmp_path):
    """As a shared file system may show a file to another machine (FUSE, some NFS setups):
    the same bytes under other inode numbers and times. Compared by content, it runs."""
    pipeline(project, {"s0": "", "s1": 'inputs = { a = "out/s0.json" }'})
    cluster.start(workers=0)
    copy = tmp_path.parent / f"{tmp_path.name}-pipelines"
    shutil.copytree(project.root / "pipelines", copy)
    os.utime(copy / "p" / "steps.py", ns=(1, 1))
    cluster.add_worker(wrap=_hidden(project.root / "pipelines", source=copy))
    cluster.wait_for_workers(1)
    run = make(project.root, "--executor", "dask", "--scheduler", cluster.address)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    assert "done: 2 ran" in stderr


def test_a_worker_joining_later_that_does_not_see_the_project_fails_the_step(tmp_path):
    from tipi.execution.dask_worker import run_on_worker
    from tipi.execution.types import Task

    root = tmp_path / "elsewhere"
    task = Task(str(root), "p", str(root / "pipeline.toml"), (), "s0", {}, str(tmp_path / "s"))
    result = run_on_worker(task, str(root / "meeting"), "token", "tipi-s0-1")
    assert result.outcome == "failed" and result.error is not None
    assert f"does not see this project's files at {root}" in str(result.error)
    assert result.error.exit_code == 2


def test_the_planned_files_check_decides_by_content(tmp_path):
    code = tmp_path / "steps.py"
    code.write_text("x = 1\n")
    planned = [stat_dep(str(code))]
    sent = with_content(planned)
    # The same bytes in a new file (another inode, another time): what another machine's
    # view of a shared file system may show.
    fresh = tmp_path / "fresh.py"
    fresh.write_text("x = 1\n")
    os.utime(fresh, ns=(1, 1))
    os.replace(fresh, code)
    assert stat_dep(str(code)) != planned[0]
    check_unchanged(sent, "pipeline.toml")
    with pytest.raises(ConfigError, match="changed after this make planned its steps"):
        check_unchanged(planned, "pipeline.toml")  # no content to compare: by stat
    code.write_text("x = 2\n")
    with pytest.raises(ConfigError, match="changed after this make planned its steps"):
        check_unchanged(sent, "pipeline.toml")
    # A file that changed on the driver before the task was sent carries no digest.
    assert with_content(planned) == (tuple(planned[0]),)
    assert json.loads(json.dumps(sent))  # a task's deps travel as plain data
