"""Attacks on the remote run cache as a team meets it (issue 26 items 1, 2, 8): hostile or
mistyped remote URLs, Ctrl-C while a make waits for its uploads, a server that is down, on a
real S3-compatible server (moto's) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from s3_server import KEYS, s3, s3_env

from tests.dask_cluster import TIPI, wait_until
from tests.make_helpers import interruptible
from tests.test_run_cache import PIPELINE, STEPS
from tipi.runcache.remote import RemoteStore, RemoteUnavailable

FIXTURES = (s3, s3_env)  # pytest finds them by name in this module
KEY = "0" * 32  # a run key nobody recorded


@pytest.mark.parametrize("command", ["push", "pull"])
@pytest.mark.parametrize("url", ["", "  "])
def test_an_empty_remote_is_refused_not_the_project_root(project, cli, command, url):
    """`tipi cache push --remote "$TIPI_REMOTE"` in a job where the variable is empty (the
    fork recipe of docs/ci-cache.yml empties it) pushed the cache into the project's own
    root: objects/, runs/ and tmp/ beside pipelines/."""
    project.pipeline("rc", PIPELINE, steps=STEPS)
    assert cli("make").exit_code == 0
    result = cli("cache", command, "--remote", url)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: --remote is empty\nhint: ")
    assert "Traceback" not in result.stderr
    assert not {"objects", "runs", "tmp"} & {p.name for p in project.root.iterdir()}


class Proxy:
    """A TCP proxy in front of the S3 server that can hold every PUT (an upload that does
    not finish: a slow link, a big file), and counts the connections it was asked for."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.hold = threading.Event()
        self.held = threading.Semaphore(0)  # one release per PUT it holds
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            self.connections += 1
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, asks: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                if asks and data.startswith(b"PUT ") and self.hold.is_set():
                    self.held.release()
                    threading.Event().wait()  # never forwarded: the upload hangs
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()


class HangUp:
    """A server that takes each connection, waits a moment and hangs up without a word: a
    store that is down in the slow way (a proxy or load balancer with nothing behind it)."""

    def __init__(self) -> None:
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Timer(0.3, client.close).start()

    def close(self) -> None:
        self._server.close()


def lines_of(run: subprocess.Popen[str]) -> tuple[list[str], threading.Thread]:
    """The lines of `run`'s output as they come (read on a thread: a test never blocks),
    and that thread, which ends with the output."""
    said: list[str] = []
    stream = run.stdout
    assert stream is not None
    reader = threading.Thread(target=lambda: said.extend(stream), daemon=True)
    reader.start()
    return said, reader


def tipi(root: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TIPI, *args],
        cwd=root,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=interruptible,  # SIGINT reaches it even when the test run was started in the background
    )


def fresh_clone(project, tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(project.root / "pipelines", root / "pipelines")
    return root


@pytest.mark.slow  # the make waits PROGRESS_AFTER (2 s) before it says it waits
def test_ctrl_c_while_uploads_hang_says_every_run_not_pushed(project, s3_env, tmp_path):
    """Found: SIGINT while a make waited for its 8 uploads said "pushed 2 run(s)" and no
    warning; 6 runs never reached the remote and nothing said `tipi cache push`."""
    project.pipeline("rc", PIPELINE, steps=STEPS)
    url = f"s3://{s3_env.bucket()}/team"
    proxy = Proxy(s3_env.port)
    try:
        proxy.hold.set()
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
        run = tipi(project.root, "make", "--remote", url, env=env)
        said, reader = lines_of(run)
        waiting = f"pushing to {url}: 0 of 2 run(s) sent"
        wait_until(lambda: any(waiting in line for line in said), 30, "the make to wait")
        assert proxy.held.acquire(timeout=10)  # the uploads hang
        run.send_signal(signal.SIGINT)
        run.wait(timeout=30)
        reader.join(10)
    finally:
        proxy.close()
    output = "".join(said)
    assert "Traceback" not in output and "internal error" not in output
    on_remote = len(RemoteStore(url).keys_and_names())
    assert on_remote == 0  # every PUT was held
    assert f"push to {url} interrupted: 2 run(s) not pushed" in output, output
    # What the warning says to do sends them, and a fresh clone then runs nothing.
    pushed = subprocess.run(
        [TIPI, "cache", "push", "--remote", url],
        cwd=project.root,
        capture_output=True,
        text=True,
    )
    assert pushed.returncode == 0 and "pushed 2 run(s)" in pushed.stdout, pushed.stderr
    clone = fresh_clone(project, tmp_path, "b")
    again = subprocess.run(
        [TIPI, "make", "--remote", url],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    assert "done: 2 restored" in again.stderr, again.stderr


@pytest.mark.slow  # the server down costs its retries (about 1 s)
def test_a_make_asks_a_dead_store_once(project, cli, tmp_path, monkeypatch):
    """Found: with the store down, the lookup thread's probe failed, and the make's own
    thread, which had waited for it, probed again: a make paid the store's timeout twice
    (15 s instead of 5 with botocore's default retries)."""
    project.pipeline("rc", PIPELINE, steps=STEPS)
    server = HangUp()
    try:
        for name, value in {**KEYS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.port}"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        url = "s3://bucket/team"
        with pytest.raises(RemoteUnavailable):
            RemoteStore(url).records(KEY)
        once = server.connections
        server.connections = 0
        result = cli("make", "--remote", url)
    finally:
        server.close()
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("going on without it") == 1
    assert server.connections == once, f"{server.connections} connections, {once} for one ask"


def test_push_and_pull_of_a_url_with_an_empty_segment(project, cli, s3_env, tmp_path, monkeypatch):
    """`s3://bucket/${PREFIX}/cache` with PREFIX empty: the make restores from it, but
    `tipi cache push` pushed everything again each time (warning 'ignoring
    team//double/runs: not a run record') and `tipi cache pull` pulled nothing."""
    project.pipeline("rc", PIPELINE, steps=STEPS)
    url = f"s3://{s3_env.bucket()}//cache"
    assert cli("make").exit_code == 0
    first = cli("cache", "push", "--remote", url)
    assert first.exit_code == 0 and "pushed 2 run(s)" in first.stdout
    again = cli("cache", "push", "--remote", url)
    assert again.exit_code == 0 and "pushed 0 run(s)" in again.stdout, again.stdout
    assert "warning" not in again.stderr, again.stderr
    clone = fresh_clone(project, tmp_path, "b")
    monkeypatch.chdir(clone)
    pulled = cli("cache", "pull", "--remote", url)
    assert pulled.exit_code == 0 and "pulled 2 run(s)" in pulled.stdout, pulled.stdout


class Silent:
    """A server that takes every connection and never answers (a stuck proxy, a firewall
    that accepts and drops): the slowest way for a store to be down."""

    def __init__(self) -> None:
        self.connections: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.connections.append(self._server.accept()[0])

    def close(self) -> None:
        for s in [self._server, *self.connections]:
            with contextlib.suppress(OSError):
                s.close()


@pytest.mark.slow  # up to BUDGET seconds
def test_a_store_that_never_answers_costs_a_make_seconds_not_minutes(project, tmp_path):
    """Found: against a server that accepts and never answers, `timeout 400 tipi make
    --remote s3://team/c` was killed after 400 s, 27 connections made, not a step run."""
    # One botocore attempt keeps the test short (botocore's defaults are checked in
    # test_remote_defaults.py); s3fs's 5 retries of a timeout would still take 50 s
    budget = 40
    project.pipeline("rc", PIPELINE, steps=STEPS)
    server = Silent()
    env = {
        **os.environ,
        **KEYS,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.port}",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }
    for name in ("AWS_RETRY_MODE", "FSSPEC_S3"):
        env.pop(name, None)  # tipi's defaults, as a user who set nothing has them
    env["AWS_MAX_ATTEMPTS"] = "1"
    run = subprocess.Popen(
        [TIPI, "make", "--remote", "s3://bucket/team"],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = run.communicate(timeout=budget)
    except subprocess.TimeoutExpired:
        run.kill()
        output, _ = run.communicate()
    finally:
        server.close()
    assert run.returncode == 0, f"still waiting after {budget} s:\n{output}"
    assert "going on without it" in output and "done: 2 ran" in output
