"""tipi's defaults for an S3 remote (botocore's standard retries, a 3 s connect timeout) that
never override what the user set, and a directory remote with a file where its layout has a
folder."""

from __future__ import annotations

from pathlib import Path

import fsspec.config
import pytest
import xxhash
from s3_server import s3, s3_env

from tipi.runcache import content
from tipi.runcache.content import ContentStore
from tipi.runcache.remote import RemoteStore
from tipi.runcache.remote_config import CONNECT_TIMEOUT, READ_TIMEOUT, S3_RETRIES, storage_options

FIXTURES = (s3, s3_env)  # pytest finds them by name in this module
DEFAULTS = {
    "config_kwargs": {
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "retries": {"mode": "standard"},
    }
}


@pytest.fixture
def unset(monkeypatch, tmp_path):
    """No retry settings anywhere: environment, AWS config file, fsspec's configuration."""
    for name in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setattr(fsspec.config, "conf", {})
    return tmp_path


def test_an_s3_remote_gets_standard_retries_and_a_short_connect_timeout(unset):
    assert storage_options("s3://bucket/prefix") == DEFAULTS
    assert storage_options("s3a://bucket") == DEFAULTS
    for url in ("/srv/cache", "file:///srv/cache", "gs://bucket/p", "memory://x"):
        assert storage_options(url) == {}


@pytest.mark.parametrize("name", ["AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"])
def test_retries_set_in_the_environment_are_left_to_botocore(unset, monkeypatch, name):
    monkeypatch.setenv(name, "adaptive" if name == "AWS_RETRY_MODE" else "7")
    expected = {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT}
    assert storage_options("s3://b") == {"config_kwargs": expected}


def test_retries_set_in_the_aws_profile_are_left_to_botocore(unset, monkeypatch):
    config = unset / "aws-config"
    config.write_text("[profile ci]\nmax_attempts = 9\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "ci")
    assert "retries" not in storage_options("s3://b")["config_kwargs"]


def test_fsspec_configuration_wins_and_is_kept_whole(unset, monkeypatch):
    """fsspec merges its configuration one level deep: tipi's defaults must go under the
    user's config_kwargs, not replace them."""
    user = {"connect_timeout": 10, "s3": {"addressing_style": "path"}}
    monkeypatch.setattr(fsspec.config, "conf", {"s3": {"config_kwargs": user, "anon": True}})
    options = storage_options("s3://b")
    expected = {**user, "read_timeout": READ_TIMEOUT, "retries": {"mode": "standard"}}
    assert options == {"config_kwargs": expected}
    retries = {"mode": "legacy", "max_attempts": 10}
    monkeypatch.setattr(
        fsspec.config,
        "conf",
        {"s3": {"config_kwargs": {**user, "read_timeout": 60, "retries": retries}}},
    )
    assert storage_options("s3://b") == {}  # all set by the user: nothing to add


def test_the_s3_client_is_made_with_the_defaults(s3_env, unset):
    remote = RemoteStore(f"s3://{s3_env.bucket()}/p")
    assert remote.records("0" * 32) == []
    config = remote.fs.s3.meta.config
    assert config.retries["mode"] == "standard"
    assert config.connect_timeout == CONNECT_TIMEOUT
    assert config.read_timeout == READ_TIMEOUT
    assert remote.fs.retries == S3_RETRIES  # s3fs's own retries, around botocore's


def test_a_program_calling_tipi_keeps_its_garbage_collector(s3_env, unset):
    """Only the `tipi` command freezes the object-store client's heap (gc.freeze): in a
    notebook or script the heap is the caller's, and frozen cycles are never collected."""
    import gc

    before = gc.get_freeze_count()
    remote = RemoteStore(f"s3://{s3_env.bucket()}/p")
    assert remote.records("1" * 32) == []
    assert gc.get_freeze_count() == before


def test_a_file_where_the_layout_has_a_folder_refuses_that_run_only(tmp_path, monkeypatch):
    """A directory remote with a file planted at objects/<2 hex>: the run whose object
    belongs there is not pushed (a warning), the others are, and the remote is not taken
    for down. (Before: NotADirectoryError from the size check, or 'File exists' from
    makedirs, and the whole push failed.)"""
    monkeypatch.setattr(content, "KEEP_INLINE_MAX", -1)  # small outputs as objects too
    local = ContentStore(tmp_path / "p" / ".tipi_cache")
    records = []
    for i, text in enumerate(("blocked", "fine")):
        out = tmp_path / f"{i}.txt"
        out.write_text(text)
        digest = lambda p: xxhash.xxh3_128_hexdigest(Path(p).read_bytes())  # noqa: E731
        records.append(local.save(str(i) * 32, f"s{i}", {}, {"out": out}, digest, 1.0))
    blocked = xxhash.xxh3_128_hexdigest(b"blocked")
    remote_dir = tmp_path / "remote"
    (remote_dir / "objects").mkdir(parents=True)
    (remote_dir / "objects" / blocked[:2]).write_text("planted")
    warnings: list[str] = []
    remote = RemoteStore(str(remote_dir), warnings.append)
    assert remote.push(local).records == 1
    assert remote.down is None
    assert len(warnings) == 1, warnings
    assert f"objects/{blocked[:2]} on the remote cache is not a folder" in warnings[0]
    assert remote._size(remote._object(blocked)) is None  # asked again: an answer, no error
    assert (remote_dir / "objects" / blocked[:2]).read_text() == "planted"  # not ours to clean
    assert list((remote_dir / "tmp").iterdir()) == []
