"""A real S3-compatible server (moto's, from PyPI) on 127.0.0.1, started and stopped by tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

KEYS = {"AWS_ACCESS_KEY_ID": "tipi-test", "AWS_SECRET_ACCESS_KEY": "tipi-test-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto_server in its own process; `env` points botocore (and so s3fs and tipi) at it."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach this server with credentials."""
        return {
            **KEYS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            # botocore retries a refused connection with backoff; a test of a server that is
            # down should not wait for that
            "AWS_MAX_ATTEMPTS": "2",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def start(self) -> None:
        """Start (or restart, on the same port) and wait until it answers."""
        command = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        argv = [command] if command else [sys.executable, "-m", "moto.server"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*argv, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **KEYS},
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)  # polling a port that is not yet open
        raise RuntimeError(f"moto_server did not answer on {self.endpoint}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def reset(self) -> None:
        """Forget every bucket and object (moto's own reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def client(self):
        """A botocore S3 client for this server (to create buckets, corrupt objects...)."""
        import botocore.session

        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"],
        )

    def bucket(self) -> str:
        """A new, empty bucket's name."""
        name = f"tipi-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@contextlib.contextmanager
def running_s3(folder: Path) -> Iterator[S3Server]:
    server = S3Server(folder / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3(tmp_path_factory) -> Iterator[S3Server]:
    """One server for the session (each test takes its own bucket with `s3.bucket()`)."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    with running_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_env(s3, monkeypatch) -> S3Server:
    """The session's server, with this process's environment pointed at it."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3
