"""A push to the remote cache (objects, then records, then the suspects it heals), and the
names of its temporary uploads and when they are left over."""

from __future__ import annotations

import os
import posixpath
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tipi.runcache.files import STALE_SECONDS
from tipi.runcache.record import CachedRun, CorruptCache, is_digest

if TYPE_CHECKING:
    from tipi.runcache.content import ContentStore
    from tipi.runcache.remote_io import Connection
    from tipi.runcache.remote_suspects import Suspects


@dataclass
class Transfer:
    """What a push or pull copied."""

    records: int = 0
    objects: int = 0
    bytes: int = 0


class Remote(Protocol):
    """What a push needs of the RemoteStore (remote.py) it is a part of."""

    url: str
    warn: Callable[[str], None]
    _io: Connection
    _suspects: Suspects
    _cache_dir: Path | None
    unasked_put: int

    def keys_and_names(self) -> set[tuple[str, str]]: ...

    def _record(self, key: str, name: str) -> str: ...

    def _object(self, digest: str) -> str: ...

    def _size(self, path: str) -> int | None: ...

    def _each(self, function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]: ...

    def _upload_object(self, local: ContentStore, digest: str) -> int: ...

    def _upload_bytes(self, data: bytes, target: str) -> None: ...


def push(
    remote: Remote, local: ContentStore, only: Iterable[CachedRun] | None, new: bool = False
) -> Transfer:
    """RemoteStore.push, after its sweep."""
    if only is None:  # everything: one listing of the remote beats a query per record
        have = remote.keys_and_names()
        records = [r for _, r in local.all_records()]
        present = lambda r: (r.key, r.name) in have  # noqa: E731
    elif new:  # just made here: no one else has a record of that name
        records = list(only)
        present = lambda r: False  # noqa: E731
    else:  # a few runs: ask about each rather than list the whole remote
        records = list(only)
        present = lambda r: remote._size(remote._record(r.key, r.name)) is not None  # noqa: E731
    done = Transfer()
    healed: set[str] = set()
    suspects = remote._suspects
    try:
        for record in records:
            where = f"{record.key}/{record.name}"
            try:
                if where not in suspects and present(record):
                    continue
                # The run's objects at once; the record only once they are all there.
                wanted = sorted(set(record.objects()))
                sent = remote._each(lambda d: _send(remote, local, d), wanted)
                for digest, size in zip(wanted, sent, strict=True):
                    if size is not None:
                        done.bytes += size
                        done.objects += 1
                        healed.add(digest)
                remote._upload_bytes(record.to_bytes(), remote._record(record.key, record.name))
                done.records += 1
                healed.add(where)
            except CorruptCache as exc:
                remote.warn(f"not pushing the {record.describe()}: {exc}")
        named = {digest for record in records for digest in record.objects()}
        _heal(remote, local, named, done, healed)
    finally:  # what was re-uploaded before a failure is healed too
        suspects.healed(healed & suspects.snapshot(), remote._cache_dir)
    return done


def _send(remote: Remote, local: ContentStore, digest: str) -> int | None:
    """Upload the object if the remote needs it: its size, or None when it did not."""
    return remote._upload_object(local, digest) if _needs_upload(remote, digest, local) else None


def _needs_upload(remote: Remote, digest: str, local: ContentStore) -> bool:
    """Whether the remote lacks the object, has it with the wrong size (the cheap part of
    checking what a push does not download: one HEAD), or it was found corrupt or missing
    there; a small one for an object store, always (RemoteStore.unasked_put)."""
    if digest in remote._suspects:
        return True
    here = local.object_size(digest)
    if here is not None and here <= remote.unasked_put:  # putting costs what asking would
        return True
    size = remote._size(remote._object(digest))
    return size is None or (here is not None and size != here)


def _heal(
    remote: Remote, local: ContentStore, named: set[str], done: Transfer, healed: set[str]
) -> None:
    """Re-upload the suspect objects of the records this push covers that the remote already
    had (so the loop above skipped them), where we have good bytes. Only objects of those
    records: a record someone planted on the remote, naming the digest of a file of ours
    that was never pushed, must not make a push upload it. (A record found bad is healed
    only by a push of that very record.)"""
    for digest in sorted((remote._suspects.snapshot() & named) - healed):
        if not is_digest(digest) or not local.has_object(digest):
            continue
        try:
            done.bytes += remote._upload_object(local, digest)
        except CorruptCache as exc:
            remote.warn(f"not re-uploading {digest} to the remote cache {remote.url}: {exc}")
            continue
        done.objects += 1
        healed.add(digest)


def upload_name() -> str:
    """`.tipi-<process token>.<pid>.<8 random hex>.tmp`: unique to this process among all
    machines (the token is random: host names and pids repeat across CI runners), and never
    taken for this host's by the local store's pid rule (`files.stale_temporary`)."""
    pid = os.getpid()
    token = _TOKENS.get(pid) or _TOKENS.setdefault(pid, uuid.uuid4().hex[:16])  # anew per fork
    return f".tipi-{token}.{pid}.{uuid.uuid4().hex[:8]}.tmp"


_TOKENS: dict[int, str] = {}


def stale_upload(fs: Any, info: Mapping[str, Any]) -> bool:
    """Whether a file listed in the remote's `tmp/` is a temporary nobody has written for
    STALE_SECONDS. Only age counts on a remote: a pid says nothing about another machine."""
    name = posixpath.basename(str(info.get("name", "")).rstrip("/"))
    if info.get("type") != "file" or not (name.startswith(".") and name.endswith(".tmp")):
        return False
    return time.time() - _modified(fs, info) > STALE_SECONDS


def as_int(value: Any, unknown: int) -> int:
    """A listed size as an int (some backends give text; `unknown` when there is none)."""
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else unknown


def _modified(fs: Any, info: Mapping[str, Any]) -> float:
    """When a listed file was last written, in seconds since 1970 (now, when unknown)."""
    for field in ("mtime", "LastModified", "updated", "last_modified"):
        value = info.get(field)
        if isinstance(value, int | float):
            return float(value)
        if hasattr(value, "timestamp"):
            return value.timestamp()
    try:
        return fs.modified(info["name"]).timestamp()
    except Exception:  # backends without modification times: never swept
        return time.time()


__all__ = ["Transfer", "as_int", "push", "stale_upload", "upload_name"]
