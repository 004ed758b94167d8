"""Remote cache I/O beside the make (step_cache.py, runcache/remote_pool.py, runcache/lookahead.py):
a fresh clone restores many steps from lookups made ahead, a chain included; runs are pushed
while the next steps run; a failing or vanishing remote is one warning and the make goes on."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from s3_server import s3, s3_env

from tipi.engine import Engine
from tipi.report import ListReporter
from tipi.runcache import content as content_store
from tipi.runcache.content import ContentStore
from tipi.runcache.remote import RemoteStore
from tipi.runcache.remote_pool import Outage, PooledRemote, Relay, Threads, Uploads


@pytest.fixture(autouse=True)
def _objects_only(monkeypatch):
    """Every output an object, the files whose transfers these tests follow (an output held
    inline travels in its record: tests/test_run_cache_inline.py, test_remote_requests.py)."""
    monkeypatch.setattr(content_store, "KEEP_INLINE_MAX", -1)


FIXTURES = (s3, s3_env)  # pytest finds them by name in this module
DOWN = "going on without it"

STEPS = """
import os
import shutil
import time
from pathlib import Path

from tipi import PipelineProcess


def log_run(name):
    with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
        f.write(name + "\\n")


class Touch(PipelineProcess):
    def __init__(self, controller, force: bool = False, i: int = 0) -> None:
        super().__init__(controller, force)
        self.i = i

    def execute(self) -> None:
        log_run(self.name)
        size = sum(len(p.read_bytes()) for p in self.inputs.values())
        self.outputs["out"].write_text(f"{self.i} {size}\\n")


class SeeRemote(PipelineProcess):
    \"\"\"Waits until the directory remote holds `n` run records (at most 20 s), writes how
    many it saw; with `breaks`, then replaces the remote by a file (the remote is gone).\"\"\"

    def __init__(
        self, controller, force: bool = False, remote: str = "", n: int = 1, breaks: bool = False
    ) -> None:
        super().__init__(controller, force)
        self.remote, self.n, self.breaks = remote, n, breaks

    def execute(self) -> None:
        log_run(self.name)
        deadline = time.monotonic() + 20
        while True:  # waiting for the upload beside this step: an event, not a delay
            seen = len(list(Path(self.remote).glob("runs/*/*.msgpack")))
            if seen >= self.n or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if self.breaks:
            shutil.rmtree(self.remote)
            Path(self.remote).write_text("not a remote any more")
        self.outputs["out"].write_text(str(seen))
"""


def touch(name: str, i: int, inputs: list[str]) -> str:
    ins = ", ".join(f'i{j} = "out/{s}.txt"' for j, s in enumerate(inputs))
    return (
        f'[processes.{name}]\ntype = "Touch"\nparams = {{ i = {i} }}\n'
        f'inputs = {{ {ins} }}\noutputs = {{ out = "out/{name}.txt" }}\n'
    )


def many(chain: int, wide: int) -> str:
    """A chain c0 → c1 → ..., `wide` independent steps, and a sink reading all their ends."""
    parts = [touch(f"c{i}", i, [f"c{i - 1}"] if i else []) for i in range(chain)]
    parts += [touch(f"w{i}", 100 + i, []) for i in range(wide)]
    parts.append(touch("sink", 999, [f"c{chain - 1}", *(f"w{i}" for i in range(wide))]))
    return "\n".join(parts)


def see_remote(name: str, after: str, remote: Path, n: int, breaks: bool = False) -> str:
    return (
        f'[processes.{name}]\ntype = "SeeRemote"\n'
        f'params = {{ remote = "{remote}", n = {n}, breaks = {str(breaks).lower()} }}\n'
        f'inputs = {{ before = "out/{after}.txt" }}\noutputs = {{ out = "out/{name}.txt" }}\n'
    )


def clone(project, tmp_path: Path, name: str) -> Path:
    """A fresh checkout: the pipelines only, no .tipi_cache, no outputs."""
    root = tmp_path / name
    shutil.copytree(project.root / "pipelines", root / "pipelines")
    return root


def ran(root: Path) -> list[str]:
    log = root / "runs.log"
    return log.read_text().split() if log.exists() else []


def outcomes(reporter: ListReporter) -> dict[str, str]:
    return {e[1].name: e[1].outcome for e in reporter.events if e[0] == "step_finished"}


def warnings(reporter: ListReporter) -> list[str]:
    return [e[1] for e in reporter.events if e[0] == "warning"]


def outputs(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((root / "out").glob("*.txt"))}


def test_a_fresh_clone_restores_many_steps_and_runs_none(project, tmp_path):
    project.pipeline("many", many(6, 16), steps=STEPS)
    remote = tmp_path / "remote"
    reporter = ListReporter()
    Engine("many", reporter=reporter).make(remote=str(remote))
    assert len(ran(project.root)) == 23 and not warnings(reporter)
    assert len(RemoteStore(str(remote)).keys_and_names()) == 23

    b = clone(project, tmp_path, "b")
    reporter = ListReporter()
    Engine("many", root=b, reporter=reporter).make(remote=str(remote))
    assert set(outcomes(reporter).values()) == {"restored"} and len(outcomes(reporter)) == 23
    assert ran(b) == [] and not warnings(reporter)
    assert outputs(b) == outputs(project.root)


def test_a_chain_is_looked_up_and_downloaded_ahead_of_its_turn(project, tmp_path):
    """Each link's key is known from the record found for the link before it: with every
    lookup and download done ahead, the make needs the remote no more."""
    project.pipeline("many", many(6, 3), steps=STEPS)
    remote = tmp_path / "remote"
    Engine("many").make(remote=str(remote))
    b = clone(project, tmp_path, "b")
    reporter = ListReporter()
    build = Engine("many", root=b, reporter=reporter).build(remote=str(remote))
    cache = build.steps.cache
    cache.prefetch(build.order)
    pooled = cache.remote
    deadline = time.monotonic() + 20
    while len(pooled._pool_fetched) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)  # the lookups answer one link after another on their threads
    for future in list(pooled._pool_fetched.values()):
        assert future.result(timeout=20) is not None
    assert len(pooled._pool_asked) == 10  # 6 links, 3 wide steps and the sink: once each
    shutil.rmtree(remote)

    build.run()
    assert set(outcomes(reporter).values()) == {"restored"} and len(outcomes(reporter)) == 10
    assert ran(b) == [] and not warnings(reporter)
    assert outputs(b) == outputs(project.root)


def test_a_kept_run_is_on_the_remote_while_the_next_step_runs(project, tmp_path):
    remote = tmp_path / "remote"
    toml = touch("first", 1, []) + "\n" + see_remote("second", "first", remote, n=1)
    project.pipeline("push", toml, steps=STEPS)
    reporter = ListReporter()
    Engine("push", reporter=reporter).make(remote=str(remote))
    assert project.read("out/second.txt") == "1"  # first's run was pushed while second ran
    assert not warnings(reporter)
    notices = [e[1] for e in reporter.events if e[0] == "notice"]
    assert any(n.startswith("pushed 2 run(s), 2 file(s) to ") for n in notices), notices


def test_a_failing_upload_is_one_warning_and_the_make_succeeds(project, tmp_path, cli):
    project.pipeline("many", many(3, 5), steps=STEPS)
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "objects").write_text("a file where the objects' folder belongs")
    result = cli("make", "--remote", str(remote))
    assert result.exit_code == 0, result.stderr
    assert len(ran(project.root)) == 9
    assert result.stderr.count(DOWN) == 1, result.stderr
    # Which thread meets the broken remote first (an upload, or a lookup after it) is a
    # race: either way it is one warning naming the remote
    assert f"remote cache {remote}: " in result.stderr, result.stderr
    assert "pushed" not in result.stderr and "Traceback" not in result.stderr
    assert not list(remote.glob("runs/*/*"))  # no record without its objects


def test_a_remote_gone_in_the_middle_of_a_make_warns_once(project, tmp_path):
    remote = tmp_path / "remote"
    toml = "\n".join(
        [
            touch("first", 1, []),
            see_remote("breaker", "first", remote, n=1, breaks=True),
            *(touch(f"after{i}", 10 + i, ["breaker"]) for i in range(6)),
        ]
    )
    project.pipeline("gone", toml, steps=STEPS)
    reporter = ListReporter()
    summary = Engine("gone", reporter=reporter).make(remote=str(remote))
    assert summary.ok and len(ran(project.root)) == 8
    assert project.read("out/breaker.txt") == "1"  # the remote worked until then
    said = warnings(reporter)
    assert len(said) == 1 and said[0].endswith(DOWN), said
    # The push meets the failure; a lookup thread may tell it first (the store is down for
    # both): either way one warning that names the remote
    assert f"remote cache {remote}: " in said[0], said


@pytest.mark.slow
def test_an_s3_remote_serves_a_fresh_clone_of_many_steps(project, cli, s3_env, tmp_path):
    project.pipeline("many", many(5, 14), steps=STEPS)
    url = f"s3://{s3_env.bucket()}/ci/cache"
    result = cli("make", "--remote", url)
    assert result.exit_code == 0, result.stderr
    assert "pushed 20 run(s), 20 file(s)" in result.stderr and "warning" not in result.stderr

    b = clone(project, tmp_path, "b")
    reporter = ListReporter()
    Engine("many", root=b, reporter=reporter).make(remote=url)
    assert set(outcomes(reporter).values()) == {"restored"} and len(outcomes(reporter)) == 20
    assert ran(b) == [] and not warnings(reporter)
    assert outputs(b) == outputs(project.root)


def test_ctrl_c_while_waiting_for_uploads_leaves_only_whole_runs(project, tmp_path):
    project.pipeline("many", many(2, 30), steps=STEPS)
    Engine("many").make()
    local = ContentStore(project.root / ".tipi_cache")
    records = [record for _, record in local.all_records()]
    remote = tmp_path / "remote"
    said: list[str] = []
    pooled = PooledRemote(str(remote))
    uploads = Uploads(pooled, local, Outage(pooled.url, said.append), said.append)
    for record in records:
        uploads.submit(record)
    futures = list(uploads.futures)

    def interrupt() -> None:
        raise KeyboardInterrupt

    sent = uploads.wait(said.append, interrupt)  # returns: the make goes on to its end
    for thread in threading.enumerate():
        if thread.name.startswith("tipi-remote-upload"):
            thread.join(timeout=20)  # those under way finish here (in tipi: die with it)
    dropped = sum(f.cancelled() for f in futures)
    # Not pushed, as the warning counts them: the dropped ones and those under way then.
    told = [int(s.split(" interrupted: ")[1].split()[0]) for s in said if "interrupted" in s]
    assert sum(told) + sent.records == len(records), said
    assert sum(told) >= dropped
    on_remote = RemoteStore(str(remote))
    fresh = ContentStore(tmp_path / "fresh")
    pulled = on_remote.pull(fresh)
    assert pulled.records == len(on_remote.keys_and_names())  # each one whole
    assert not list((remote / "tmp").iterdir()) if (remote / "tmp").exists() else True


def test_warnings_of_worker_threads_are_shown_by_the_make_thread():
    shown: list[tuple[str, str]] = []
    relay = Relay(lambda text: shown.append((threading.current_thread().name, text)))
    worker = threading.Thread(target=relay, args=("from a worker",), name="worker")
    worker.start()
    worker.join()
    assert shown == []  # not on the worker's thread
    relay("from the make")
    here = threading.current_thread().name
    assert shown == [(here, "from a worker"), (here, "from the make")]


@pytest.mark.parametrize("dry", [True, False])
def test_nothing_is_asked_of_a_remote_already_down(project, tmp_path, dry):
    project.pipeline("many", many(2, 2), steps=STEPS)
    remote = tmp_path / "remote"
    reporter = ListReporter()
    build = Engine("many", reporter=reporter).build(remote=str(remote), dry_run=dry)
    build.steps.cache.outage.declare(OSError("down before it started"))
    build.run()
    assert build.steps.cache.remote is None  # never even opened
    assert [w for w in warnings(reporter) if DOWN in w] == [
        f"remote cache {remote}: down before it started; {DOWN}"
    ]


def test_remote_threads_never_hold_up_the_exit_and_stop_drops_what_waits():
    threads = Threads(1, "tipi-remote-test")
    release = threading.Event()
    running = threads.submit(release.wait, 20)
    waiting = threads.submit(lambda: "never")
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("tipi-remote-test"))
    threads.stop()
    assert waiting.cancelled() and threads.submit(lambda: "late").cancelled()
    release.set()
    assert running.result(timeout=20) is True
