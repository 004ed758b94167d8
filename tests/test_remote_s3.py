"""The remote run cache on a real S3-compatible server (moto's, on 127.0.0.1), as CI uses it:
machine A builds and pushes, a fresh clone restores; a server down, no credentials, a missing
bucket are warnings for a make and one line for `tipi cache push/pull`; a corrupt object is
re-uploaded by the next push; concurrent pushes lose nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import xxhash
from s3_server import free_port, running_s3, s3, s3_env

from tests.make_helpers import runs
from tests.test_run_cache import PIPELINE, STEPS
from tipi.runcache import content as content_store
from tipi.runcache.content import ContentStore
from tipi.runcache.remote import RemoteStore, RemoteUnavailable
from tipi.runcache.remote_suspects import FILE as SUSPECTS


@pytest.fixture(autouse=True)
def _objects_only(monkeypatch):
    """Every output an object, the files whose transfers these tests follow (an output held
    inline travels in its record: tests/test_run_cache_inline.py, test_remote_requests.py)."""
    monkeypatch.setattr(content_store, "KEEP_INLINE_MAX", -1)


FIXTURES = (s3, s3_env)  # pytest finds them by name in this module
KEY = "0" * 32  # a run key nobody recorded


def clone(project, tmp_path: Path, name: str, monkeypatch) -> Path:
    """A fresh checkout of the project (pipelines only, no .tipi_cache, no outputs)."""
    root = tmp_path / name
    shutil.copytree(project.root / "pipelines", root / "pipelines")
    monkeypatch.chdir(root)
    return root


def ran(root: Path) -> list[str]:
    log = root / "runs.log"
    return log.read_text().split() if log.exists() else []


def no_credentials(monkeypatch, tmp_path: Path) -> None:
    """As a fork's CI job: no keys, no config files, no instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_a_fresh_clone_restores_what_machine_a_pushed(project, cli, s3_env, tmp_path, monkeypatch):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    url = f"s3://{s3_env.bucket()}/team/cache"
    result = cli("make", "--remote", url)
    assert result.exit_code == 0, result.stderr
    assert "pushed 2 run(s)" in result.stdout + result.stderr
    assert runs(project) == ["scale", "expand"]

    b = clone(project, tmp_path, "b", monkeypatch)
    result = cli("make", "--remote", url)
    assert result.exit_code == 0, result.stderr
    assert ran(b) == []  # 0 steps run
    assert (b / "out" / "folder" / "deep" / "b.txt").read_text() == "5"
    assert "warning" not in result.stderr
    # Nothing but the layout under the prefix: no folder markers, no temporaries left.
    listed = s3_env.client().list_objects_v2(Bucket=url.split("/")[2])["Contents"]
    keys = [o["Key"] for o in listed]
    assert all(
        k.startswith("team/cache/objects/") or k.startswith("team/cache/runs/") for k in keys
    )


def test_a_make_with_the_server_down_warns_and_builds_locally(project, cli, s3_env, monkeypatch):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    port = free_port()  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = cli("make", "--remote", "s3://team-cache")
    assert result.exit_code == 0, result.stderr
    assert runs(project) == ["scale", "expand"]
    assert f"cannot connect to http://127.0.0.1:{port}/ (connection refused)" in result.stderr
    assert "internal error" not in result.stderr + result.stdout

    for command in ("push", "pull"):
        result = cli("cache", command, "--remote", "s3://team-cache")
        assert result.exit_code == 1
        first = result.stderr.splitlines()[0]
        assert first.endswith(
            f"s3://team-cache: cannot connect to http://127.0.0.1:{port}/ (connection refused)"
        ), result.stderr
        assert "Traceback" not in result.stderr


def test_a_down_remote_fails_once_then_at_once_from_every_thread(s3_env, monkeypatch):
    bucket = "not-yet-made"
    remote = RemoteStore(f"s3://{bucket}/p")
    with pytest.raises(RemoteUnavailable, match=f"bucket '{bucket}' does not exist"):
        remote.records(KEY)
    assert remote.down and remote.down.startswith(f"remote cache s3://{bucket}/p: bucket")
    s3_env.client().create_bucket(Bucket=bucket)  # it is down for good: no second look
    failures: list[BaseException] = []

    def look() -> None:
        try:
            remote.records(KEY)
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [str(f) for f in failures] == [remote.down] * 8
    assert all(isinstance(f, RemoteUnavailable) for f in failures)


def test_no_credentials_is_a_warning_for_make_and_one_line_for_push(
    project, cli, s3_env, monkeypatch, tmp_path
):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    url = f"s3://{s3_env.bucket()}"
    no_credentials(monkeypatch, tmp_path)
    result = cli("make", "--remote", url)
    assert result.exit_code == 0, result.stderr
    assert runs(project) == ["scale", "expand"]
    assert f"remote cache {url}: no credentials found" in result.stderr
    result = cli("cache", "push", "--remote", url)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: could not push to {url}: no credentials found")


@pytest.mark.slow
def test_a_fork_without_credentials_restores_anonymously(
    project, cli, s3_env, tmp_path, monkeypatch
):
    """docs/ci-cache.yml's fork job: no keys, FSSPEC_S3='{"anon": true}' (fsspec's own config,
    read when the process starts), `tipi make --remote` as a user runs it."""
    project.pipeline("rc", PIPELINE, steps=STEPS)
    bucket = s3_env.bucket()
    url = f"s3://{bucket}/main"
    assert cli("make", "--remote", url).exit_code == 0
    public_read = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                # (HeadObject: moto's name for a HEAD; S3 itself checks GetObject)
                "Action": ["s3:GetObject", "s3:HeadObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    s3_env.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read))
    fork = clone(project, tmp_path, "fork", monkeypatch)
    no_credentials(monkeypatch, tmp_path)
    env = {**os.environ, "FSSPEC_S3": '{"anon": true}'}
    make = [sys.executable, "-m", "tipi", "make", "--remote", url]
    done = subprocess.run(make, cwd=fork, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ran(fork) == [], done.stderr  # everything restored


def test_a_missing_bucket_is_named_and_never_created(project, cli, s3_env):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    url = "s3://tipi-mistyped-bucket/cache"
    result = cli("make", "--remote", url)
    assert result.exit_code == 0, result.stderr
    assert runs(project) == ["scale", "expand"]
    assert "bucket 'tipi-mistyped-bucket' does not exist" in result.stderr
    for command in ("push", "pull"):
        result = cli("cache", command, "--remote", url)
        assert result.exit_code == 1
        assert "bucket 'tipi-mistyped-bucket' does not exist" in result.stderr.splitlines()[0]
    names = [b["Name"] for b in s3_env.client().list_buckets()["Buckets"]]
    assert "tipi-mistyped-bucket" not in names
    result = cli("cache", "push", "--remote", "s3://")
    assert result.exit_code == 2 and "names no bucket" in result.stderr


KILLER = """

class Kill(PipelineProcess):
    def execute(self) -> None:
        import os, signal
        os.kill(int(os.environ["TIPI_TEST_S3_PID"]), signal.SIGKILL)  # the server dies
        self.outputs["out"].write_text("killed")
"""


@pytest.mark.slow  # a server of its own: started, then killed
def test_the_server_dying_during_a_make_leaves_a_warning(project, cli, tmp_path, monkeypatch):
    pytest.importorskip("moto")
    project.pipeline(
        "rc",
        PIPELINE + '\n[processes.kill]\ntype = "Kill"\noutputs = { out = "out/k.txt" }\n',
        steps=STEPS + KILLER,
    )
    with running_s3(tmp_path) as server:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        url = f"s3://{server.bucket()}"
        monkeypatch.setenv("TIPI_TEST_S3_PID", str(server.process.pid))
        result = cli("make", "--remote", url)  # looked up with it alive, pushed with it dead
        assert result.exit_code == 0, result.stderr
        assert f"remote cache {url}: cannot connect to {server.endpoint}/" in result.stderr
        assert "internal error" not in result.stderr
        result = cli("cache", "push", "--remote", url)
        assert result.exit_code == 1 and "Traceback" not in result.stderr
        assert f"could not push to {url}: cannot connect" in result.stderr


def corrupt(s3_server, bucket: str, prefix: str, content: bytes, bad: bytes) -> str:
    """Replace the remote object holding `content` with `bad` bytes of the same size."""
    digest = xxhash.xxh3_128_hexdigest(content)
    key = "/".join(p for p in (prefix, "objects", digest[:2], digest) if p)
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=bad)
    return digest


def test_a_corrupt_object_is_healed_by_the_next_make_that_pushes(
    project, cli, s3_env, tmp_path, monkeypatch
):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    bucket = s3_env.bucket()
    url = f"s3://{bucket}/c"
    assert cli("make", "--remote", url).exit_code == 0
    digest = corrupt(s3_env, bucket, "c", b"3", b"7")  # scale's output, same size

    b = clone(project, tmp_path, "b", monkeypatch)
    result = cli("make", "--remote", url)
    assert result.exit_code == 0, result.stderr
    assert f"object {digest}" in result.stderr and "is corrupt" in result.stderr
    assert ran(b) == ["scale"]  # refused, so it ran; expand was restored
    # ... and this make's own push put good bytes back.
    body = s3_env.client().get_object(Bucket=bucket, Key=f"c/objects/{digest[:2]}/{digest}")
    assert body["Body"].read() == b"3"

    c = clone(project, tmp_path, "c", monkeypatch)
    result = cli("make", "--remote", url)
    assert result.exit_code == 0 and "warning" not in result.stderr, result.stderr
    assert ran(c) == []


def test_a_corrupt_object_found_by_pull_is_healed_by_a_later_push(
    project, cli, s3_env, tmp_path, monkeypatch
):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    bucket = s3_env.bucket()
    url = f"s3://{bucket}"
    assert cli("make", "--remote", url).exit_code == 0
    digest = corrupt(s3_env, bucket, "", b"3", b"9")

    b = clone(project, tmp_path, "b", monkeypatch)
    result = cli("cache", "pull", "--remote", url)
    assert result.exit_code == 0 and "is corrupt" in result.stderr
    assert (b / ".tipi_cache" / SUSPECTS).exists()  # remembered for a later push
    assert cli("make").exit_code == 0  # no remote: builds scale itself
    result = cli("cache", "push", "--remote", url)
    assert result.exit_code == 0, result.stderr
    body = s3_env.client().get_object(Bucket=bucket, Key=f"objects/{digest[:2]}/{digest}")
    assert body["Body"].read() == b"3"

    c = clone(project, tmp_path, "c", monkeypatch)
    assert cli("cache", "pull", "--remote", url).exit_code == 0
    assert cli("make").exit_code == 0 and ran(c) == []


@pytest.mark.slow
def test_another_machines_live_upload_is_never_swept(s3_env, tmp_path):
    """A temporary named after this host and a pid that is not alive here: on a remote it
    may be another CI runner's (same host name) upload in progress."""
    from tipi.runcache.files import temporary_name

    bucket = s3_env.bucket()
    with subprocess.Popen([sys.executable, "-c", "pass"]) as gone:
        gone.wait()
    name = temporary_name().replace(f".{os.getpid()}.", f".{gone.pid}.")
    s3_env.client().put_object(Bucket=bucket, Key=f"tmp/{name}", Body=b"half")
    assert RemoteStore(f"s3://{bucket}").sweep() == 0
    assert s3_env.client().get_object(Bucket=bucket, Key=f"tmp/{name}")["Body"].read() == b"half"


@pytest.mark.slow
def test_concurrent_pushes_from_several_processes_lose_nothing(s3_env, tmp_path):
    """Four projects with different runs push at once, as four CI jobs on runners that all
    share one host name (tipi's upload names do not depend on it)."""
    bucket = s3_env.bucket()
    url = f"s3://{bucket}/shared"
    roots = []
    for factor in range(1, 5):
        folder = tmp_path / f"job{factor}" / "pipelines" / "rc"
        root = folder.parent.parent
        folder.mkdir(parents=True)
        (folder / "pipeline.toml").write_text(PIPELINE.replace("factor = 1", f"factor = {factor}"))
        (folder / "steps.py").write_text(STEPS)
        roots.append(root)
    tipi = [sys.executable, "-m", "tipi"]
    env = {**os.environ, "HOSTNAME": "runner"}
    for root in roots:
        subprocess.run([*tipi, "make", "-q"], cwd=root, env=env, check=True, capture_output=True)
    pushes = [
        subprocess.Popen(
            [*tipi, "cache", "push", "--remote", url],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for root in roots
    ]
    for push in pushes:
        _, err = push.communicate(timeout=60)
        assert push.returncode == 0, err.decode()
    fresh = ContentStore(tmp_path / "fresh" / ".tipi_cache")
    warnings: list[str] = []
    assert RemoteStore(url, warnings.append).pull(fresh).records == 8
    assert warnings == []
    listed = s3_env.client().list_objects_v2(Bucket=bucket, Prefix="shared/tmp/")
    assert listed.get("KeyCount", 0) == 0  # every upload moved into place


@pytest.mark.slow
def test_upload_names_are_unique_per_process():
    from tipi.runcache.remote import upload_name

    script = "from tipi.runcache.remote import upload_name; print(upload_name())"
    theirs = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    mine = upload_name()
    assert mine.split(".")[1] != theirs.split(".")[1]  # the process token
    assert mine.split(".")[1] == upload_name().split(".")[1]
    assert mine != upload_name()


def test_a_suspect_makes_a_push_upload_only_objects_of_the_runs_it_pushes(tmp_path):
    """A suspect (from a hostile remote or a planted note) never makes a push upload a
    local file that no run it pushes names: only good bytes of what it shares anyway."""
    from tipi.runcache.remote_suspects import Suspects

    local = ContentStore(tmp_path / "project" / ".tipi_cache")
    shared, private = tmp_path / "shared.txt", tmp_path / "private.txt"
    shared.write_text("for everyone")
    private.write_text("never pushed")
    digest = lambda path: xxhash.xxh3_128_hexdigest(path.read_bytes())  # noqa: E731
    pushed = local.save("1" * 32, "a", {}, {"out": shared}, lambda p: digest(Path(p)), 1.0)
    local.save("2" * 32, "b", {}, {"out": private}, lambda p: digest(Path(p)), 1.0)
    remote_dir = tmp_path / "remote"
    Suspects(str(remote_dir)).add(digest(private), local.root.parent)  # the planted note

    assert RemoteStore(str(remote_dir)).push(local, [pushed]).objects == 1
    names = {p.name for p in (remote_dir / "objects").rglob("*") if p.is_file()}
    assert names == {digest(shared)}


def test_each_failure_of_an_object_store_is_one_line_naming_its_cause():
    """botocore's and s3fs's own exceptions (as they raise them) become one line each."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
    from s3fs.errors import translate_boto_error

    from tipi.runcache.remote_errors import describe

    def client_error(code: str, message: str) -> OSError:
        error = ClientError({"Error": {"Code": code, "Message": message}}, "PutObject")
        return translate_boto_error(error)

    refused = EndpointConnectionError(endpoint_url="http://10.0.0.9:9000/b?list-type=2")
    refused.__context__ = ConnectionRefusedError(111, "Connect call failed")
    assert describe(refused) == "cannot connect to http://10.0.0.9:9000/ (connection refused)"
    assert describe(NoCredentialsError()).startswith("no credentials found (set AWS_ACCESS_KEY")
    slow = describe(client_error("SlowDown", "Please reduce your request rate."))
    assert slow.startswith("the server is busy or throttling requests (")
    assert (
        describe(client_error("AccessDenied", "Access Denied")) == "access denied (Access Denied)"
    )
    assert describe(ConnectionResetError(104, "Connection reset by peer")).startswith(
        "the connection to the server broke"
    )
    assert "\n" not in describe(ValueError("two\nlines"))
