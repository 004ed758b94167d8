"""How many requests the remote cache sends an S3-compatible server (moto's, on 127.0.0.1),
counted where botocore sends them: a regression in requests per run shows here, not only as
a slower benchmark. Also: a run's objects go up at once, and tipi's S3 retry defaults."""

from __future__ import annotations

import asyncio
import collections
import shutil
import threading
from pathlib import Path

import pytest
import xxhash
from s3_server import s3, s3_env

from tests.test_remote_parallel import STEPS, many
from tipi.runcache.content import ContentStore
from tipi.runcache.remote import UNASKED_PUT, RemoteStore

FIXTURES = (s3, s3_env)  # pytest finds them by name in this module


class Requests:
    """Every HTTP request botocore sends in this process (retries included), by kind, while
    active; `hold` makes PUTs of objects wait until that many are in flight at once."""

    def __init__(self) -> None:
        self.kinds: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.hold = 0
        self.in_flight = 0
        self.most_in_flight = 0

    def kind(self, request) -> str:
        method, url = request.method, request.url
        if method == "GET" and "list-type=2" in url:
            return "LIST"
        return method

    def clear(self) -> None:
        with self.lock:
            self.kinds.clear()

    def counted(self) -> dict[str, int]:
        with self.lock:
            return dict(self.kinds)


@pytest.fixture
def requests(monkeypatch) -> Requests:
    from aiobotocore.endpoint import AioEndpoint

    seen = Requests()
    send = AioEndpoint._send

    async def counting(self, request):
        with seen.lock:
            seen.kinds[seen.kind(request)] += 1
        if seen.hold and request.method == "PUT" and "/objects/" in request.url:
            with seen.lock:
                seen.in_flight += 1
                seen.most_in_flight = max(seen.most_in_flight, seen.in_flight)
            for _ in range(500):  # until the others are in flight too (at most 5 s)
                if seen.most_in_flight >= seen.hold:
                    break
                await asyncio.sleep(0.01)
            try:
                return await send(self, request)
            finally:
                with seen.lock:
                    seen.in_flight -= 1
        return await send(self, request)

    monkeypatch.setattr(AioEndpoint, "_send", counting)
    return seen


def fresh_clone(project, tmp_path: Path, name: str, monkeypatch) -> Path:
    root = tmp_path / name
    shutil.copytree(project.root / "pipelines", root / "pipelines")
    monkeypatch.chdir(root)
    return root


@pytest.mark.slow
def test_a_first_build_sends_one_request_per_run_and_a_clone_one_per_step(
    project, cli, s3_env, requests, tmp_path, monkeypatch
):
    """A make opens the remote with one HEAD (the bucket exists) and one listing of every
    record (a small remote), then per run one PUT of its record, which holds its small
    output; a fresh clone reads per step its record. (Before: 18 requests per run: a HEAD
    and a listing per question, uploads to tmp/ then copied and deleted; then two, the
    output an object of its own.)"""
    n = 6
    project.pipeline("rq", many(chain=3, wide=2), steps=STEPS)  # 3 + 2 + the sink
    url = f"s3://{s3_env.bucket()}/cache"
    result = cli("make", "--remote", url)
    assert result.exit_code == 0, result.stderr
    assert f"pushed {n} run(s), 0 file(s)" in result.stderr
    assert requests.counted() == {"HEAD": 1, "LIST": 1, "PUT": n}

    requests.clear()
    fresh_clone(project, tmp_path, "b", monkeypatch)
    result = cli("make", "--remote", url)
    assert result.exit_code == 0 and f"done: {n} restored" in result.stderr, result.stderr
    assert "warning" not in result.stderr
    assert requests.counted() == {"HEAD": 1, "LIST": 1, "GET": n}


def save(local: ContentStore, key: str, files: dict[str, bytes], folder: Path):
    """A run of `key` whose folder output holds `files`."""
    out = folder / key[:4]
    for name, data in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    return local.save(key, "s", {}, {"out": out}, content_hash, 1.0)


def content_hash(path: str) -> str:
    """A file's xxh3-128, or a folder's ("d" + the hash of its file names: enough here)."""
    if Path(path).is_dir():
        names = sorted(str(p.relative_to(path)) for p in Path(path).rglob("*"))
        return "d" + xxhash.xxh3_128_hexdigest("\n".join(names).encode())
    return xxhash.xxh3_128_hexdigest(Path(path).read_bytes())


def test_a_runs_objects_go_up_at_once_and_only_big_ones_are_asked_about_first(
    s3_env, requests, tmp_path
):
    local = ContentStore(tmp_path / "p" / ".tipi_cache")
    small = save(local, "1" * 32, {"a": b"a", "b": b"b", "c": b"c"}, tmp_path / "out")
    big = save(local, "2" * 32, {"big": b"x" * (UNASKED_PUT + 1)}, tmp_path / "out")
    url = f"s3://{s3_env.bucket()}/c"
    remote = RemoteStore(url)
    remote.records("3" * 32)  # opens the client and checks the bucket: not counted below
    requests.clear()
    requests.hold = 3
    assert remote.push(local, [small], new=True).objects == 3
    assert requests.most_in_flight == 3  # the three objects were in flight at once
    assert requests.counted() == {"PUT": 4}  # three objects, then the record
    requests.hold = 0

    requests.clear()
    assert remote.push(local, [big], new=True).objects == 1
    assert requests.counted() == {"HEAD": 1, "PUT": 2}  # asked first: it is big
    requests.clear()
    assert remote.push(local, [big]).records == 0  # known: one HEAD of its record
    assert requests.counted() == {"HEAD": 1}

    requests.clear()  # a lookup: one listing of its key, one GET per record
    assert [r.name for r in RemoteStore(url).records("1" * 32)] == [small.name]
    assert requests.counted() == {"HEAD": 1, "LIST": 1, "GET": 1}
    requests.clear()
    assert RemoteStore(url).records("4" * 32) == []
    assert requests.counted() == {"HEAD": 1, "LIST": 1}


def test_a_lookup_after_a_survey_reads_records_without_listing(s3_env, requests, tmp_path):
    local = ContentStore(tmp_path / "p" / ".tipi_cache")
    runs = [save(local, str(i) * 32, {"f": str(i).encode()}, tmp_path / "o") for i in range(3)]
    url = f"s3://{s3_env.bucket()}/c"
    RemoteStore(url).push(local)
    remote = RemoteStore(url)
    requests.clear()
    assert remote.survey()
    assert [r.name for r in remote.records("1" * 32)] == [runs[1].name]
    assert remote.records("9" * 32) == []
    fresh = ContentStore(tmp_path / "q" / ".tipi_cache")
    assert remote.fetch("2" * 32, {}, fresh) == runs[2]
    assert requests.counted() == {"HEAD": 1, "LIST": 1, "GET": 3}  # 2 records, 1 object


@pytest.mark.slow
def test_a_make_with_nothing_to_ask_never_opens_the_remote(project, cli, s3_env, requests):
    """Every step up to date: no request, and s3fs is not even imported (0.3 s of a no-op
    `tipi make --remote s3://...`, which CI runs on every unchanged commit)."""
    import os
    import subprocess
    import sys

    project.pipeline("rq", many(chain=2, wide=1), steps=STEPS)
    url = f"s3://{s3_env.bucket()}/cache"
    assert cli("make", "--remote", url).exit_code == 0
    requests.clear()
    assert cli("make", "--remote", url).exit_code == 0
    assert requests.counted() == {}
    make = [sys.executable, "-c", SAYS_IF_S3FS, "make", "--remote", url]
    done = subprocess.run(make, cwd=project.root, env=os.environ, capture_output=True, text=True)
    assert done.returncode == 0 and "up to date" in done.stderr, done.stderr
    assert "s3fs imported: False" in done.stdout, done.stdout


SAYS_IF_S3FS = """import atexit, os, sys
atexit.register(lambda: os.write(1, f"s3fs imported: {'s3fs' in sys.modules}\\n".encode()))
sys.argv[0] = "tipi"
from tipi._fastpath import main
main()
"""


@pytest.mark.parametrize(
    ("url", "says"),
    [("s3://", "names no bucket"), ("nosuch://x/y", "Protocol not known: nosuch")],
)
def test_a_remote_url_that_cannot_work_is_refused_before_any_step(project, cli, url, says):
    project.pipeline("rq", many(chain=1, wide=0), steps=STEPS)
    result = cli("make", "--remote", url)
    assert result.exit_code == 2 and says in result.stderr, result.stderr
    assert not (project.root / "runs.log").exists()  # nothing ran
