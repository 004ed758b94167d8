"""A remote run cache through fsspec: a directory, `file://`, `s3://`, `gs://`, ... with the
same layout as the local store (content.py), so push and pull only copy missing files.

Concurrent pushes are safe: every file is named by the hash of its content, is uploaded under
a temporary name and then moved (a put is atomic on object stores), and a record is uploaded
after the objects it names.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tipi.cache.content import ContentStore, RunRecord, write_atomic
from tipi.errors import UsageError


@dataclass
class Transfer:
    """What a push or pull copied."""

    records: int = 0
    objects: int = 0
    bytes: int = 0


class RemoteStore:
    """The run cache at `url`, opened with fsspec."""

    def __init__(self, url: str, warn: Callable[[str], None] = lambda _: None) -> None:
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec is a dependency
            raise UsageError("--remote needs fsspec", hint="pip install fsspec") from None
        try:
            self.fs, self.base = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise UsageError(
                f"cannot open the remote cache {url}: {exc}",
                hint="install the fsspec backend for it (s3fs for s3://, gcsfs for gs://)",
            ) from None
        self.url = url
        self.warn = warn

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.base, *parts)

    def keys_and_names(self) -> set[tuple[str, str]]:
        """(key, record name) of every record on the remote."""
        runs = self._path("runs")
        if not self.fs.exists(runs):
            return set()
        found = set()
        for path in self.fs.find(runs):
            parts = path.rstrip("/").split("/")
            if parts[-1].endswith(".msgpack") and not parts[-1].startswith("."):
                found.add((parts[-2], parts[-1]))
        return found

    def records(self, key: str) -> list[RunRecord]:
        folder = self._path("runs", key)
        try:
            names = [p.rstrip("/").split("/")[-1] for p in self.fs.ls(folder, detail=False)]
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if name.endswith(".msgpack") and not name.startswith("."):
                try:
                    found.append(
                        RunRecord.from_bytes(self.fs.cat_file(self._path("runs", key, name)))
                    )
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    self.warn(f"skipping unreadable remote record {key}/{name}: {exc}")
        return sorted(found, key=lambda r: -r.finished)

    def find(
        self, key: str, configs: Mapping[str, Any], names: Iterable[str] | None = None
    ) -> RunRecord | None:
        """The newest run under `key` whose permanence configs match and whose outputs are
        `names` (when given); nothing is copied."""
        wanted = None if names is None else set(names)
        return next(
            (
                r
                for r in self.records(key)
                if r.matches(configs) and (wanted is None or set(r.outputs) == wanted)
            ),
            None,
        )

    def fetch(
        self,
        key: str,
        configs: Mapping[str, Any],
        local: ContentStore,
        names: Iterable[str] | None = None,
    ) -> RunRecord | None:
        """Copy the newest matching run under `key` (record and objects) into `local`."""
        record = self.find(key, configs, names)
        if record is not None:
            self._download(record, local)
        return record

    def push(self, local: ContentStore, only: Iterable[RunRecord] | None = None) -> Transfer:
        """Upload local records (all, or `only`) the remote lacks, objects first."""
        if only is None:  # everything: one listing of the remote beats a query per record
            have = self.keys_and_names()
            records = [r for _, r in local.all_records()]
            present = lambda r: (r.key, r.name) in have  # noqa: E731
        else:  # a make's few new runs: ask about each rather than list the whole remote
            records = list(only)
            present = lambda r: self.fs.exists(self._path("runs", r.key, r.name))  # noqa: E731
        done = Transfer()
        for record in records:
            if present(record):
                continue
            for digest in set(record.objects()):
                target = self._path("objects", digest[:2], digest)
                if self.fs.exists(target):
                    continue
                source = local.object_path(digest)
                self._upload(str(source), target)
                done.objects += 1
                done.bytes += source.stat().st_size
            data = record.to_bytes()
            self._upload_bytes(data, self._path("runs", record.key, record.name))
            done.records += 1
        return done

    def pull(self, local: ContentStore) -> Transfer:
        """Download every remote record (and its objects) that is not here."""
        done = Transfer()
        for key, name in sorted(self.keys_and_names()):
            if local.record_path(key, name).exists():
                continue
            try:
                record = RunRecord.from_bytes(self.fs.cat_file(self._path("runs", key, name)))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.warn(f"skipping unreadable remote record {key}/{name}: {exc}")
                continue
            objects, size = self._download(record, local)
            done.records += 1
            done.objects += objects
            done.bytes += size
        return done

    def _download(self, record: RunRecord, local: ContentStore) -> tuple[int, int]:
        count = size = 0
        for digest in set(record.objects()):
            target = local.object_path(digest)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{digest}.{uuid.uuid4().hex[:8]}.tmp")
            self.fs.get_file(self._path("objects", digest[:2], digest), str(tmp))
            tmp.replace(target)
            count += 1
            size += target.stat().st_size
        local.add_record(record)
        return count, size

    def _upload(self, source: str, target: str) -> None:
        tmp = posixpath.join(posixpath.dirname(target), f".{uuid.uuid4().hex}.tmp")
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        self.fs.put_file(source, tmp)
        self.fs.mv(tmp, target)

    def _upload_bytes(self, data: bytes, target: str) -> None:
        tmp = posixpath.join(posixpath.dirname(target), f".{uuid.uuid4().hex}.tmp")
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, target)


__all__ = ["RemoteStore", "Transfer", "write_atomic"]
