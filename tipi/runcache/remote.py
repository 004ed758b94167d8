"""A remote run cache through fsspec: a directory, `file://`, `s3://`, `gs://`, ... with the
same layout as the local store (content.py), so push and pull only copy missing files.

Concurrent pushes are safe: every file is named by the hash of its content, and a record is
uploaded after the objects it names. On a directory remote each file is written under a
temporary name in `tmp/` unique to the uploading process and then renamed; on an object store
straight to its name, as an upload is created whole or not at all there (remote_ops.py). A
push first removes the temporary files nobody has written for an hour: never by process id,
as machines sharing a remote may share a host name and pids too.

A remote never fails a make: every failure of it (network, credentials, a missing bucket,
throttling, a server gone mid-transfer) is a `RemoteUnavailable` naming the remote and the
cause, after which the store is `down` and fails at once (remote_io.py). tipi never creates a
bucket. A file of the remote found corrupt or missing is remembered (remote_suspects.py) and
re-uploaded by the next push that has good bytes for it: the remote heals.

A remote may be writable by people the reader does not trust (a CI bucket), so nothing from it
is believed: records are checked as local ones are (`CachedRun.from_bytes`), every object's
bytes against its name while it is downloaded, and every path is built from checked names
under the remote's prefix; on a directory remote it must also stay there after resolving
symbolic links. A bad file is refused (a warning, or a `CorruptCache` the engine turns into
one) and never deleted, only replaced by good bytes: the remote is not ours to clean.
"""

from __future__ import annotations

import os
import posixpath
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tipi.errors import UsageError
from tipi.runcache.content import (
    CachedRun,
    ContentStore,
    CorruptCache,
    copy_hashing,
    is_digest,
    is_record_name,
)
from tipi.runcache.record import MAX_RECORD_BYTES, BadRecord, ForeignRecord
from tipi.runcache.remote_config import limit_own_retries, storage_options
from tipi.runcache.remote_errors import RemoteUnavailable
from tipi.runcache.remote_io import Connection
from tipi.runcache.remote_ops import Entry, files_for
from tipi.runcache.remote_push import Transfer, as_int, push, stale_upload, upload_name
from tipi.runcache.remote_suspects import Suspects
from tipi.runcache.threads import Threads, each
from tipi.state.layout import OBJECTS_DIR, RECORDS_DIR, TMP_DIR

FILE_THREADS = 8  # the objects of one run, uploaded or downloaded at once
SURVEY_MOST = 1000  # records listed in one request (S3's most), to answer a make's lookups
# An object store takes an object this small in one PUT, about the cost of the HEAD that
# would ask whether it is there already: it is put without asking (same name, same bytes).
UNASKED_PUT = 256 << 10


class RemoteStore:
    """The run cache at `url`, opened with fsspec."""

    def __init__(self, url: str, warn: Callable[[str], None] = lambda _: None) -> None:
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec is a dependency
            raise UsageError("--remote needs fsspec", hint="pip install fsspec") from None
        try:
            # Its own instance: fsspec would share one per process, with listings cached for
            # good and credentials read once, stale for a second make in a long-lived process.
            self.fs, self.base = fsspec.core.url_to_fs(
                url, skip_instance_cache=True, **storage_options(url)
            )
        except (ImportError, ValueError) as exc:
            raise UsageError(
                f"cannot open the remote cache {url}: {exc}",
                hint="install the fsspec backend for it: pip install 'tipi[s3]' for s3://, "
                "'tipi[gcs]' for gs://",
            ) from None
        limit_own_retries(self.fs, url)
        self.url = url
        self.warn = warn
        self._io = Connection(self.fs, url, self.base)
        self._local = self._io.local
        if self._io.object_store and not self._io.bucket:
            raise UsageError(
                f"the remote cache {url} names no bucket", hint="give one: s3://bucket/prefix"
            )
        self._files = files_for(self._io, self.base, self._confined)
        self._suspects = Suspects(url.rstrip("/"))
        self._cache_dir: Path | None = None  # where suspects are remembered, once known
        self._lock = threading.Lock()
        self._swept = False
        self._threads: Threads | None = None
        self._known: dict[str, list[Entry]] | None = None  # every record, by key (`survey`)
        self.unasked_put = UNASKED_PUT if self._io.object_store else -1

    @property
    def down(self) -> str | None:
        """Why the remote cannot be used (its first failure), or None while it can."""
        return self._io.down

    def _open_local(self, local: ContentStore) -> None:
        """Fail at once if the remote is down; learn the suspects remembered beside `local`."""
        self._io.check()
        cache_dir = local.cache_dir
        with self._lock:
            self._cache_dir = self._cache_dir or cache_dir
        self._suspects.load(cache_dir)

    def _path(self, *parts: str) -> str:
        """A path under the remote's prefix (parts are checked names or literals)."""
        return self._confined(posixpath.join(self.base, *parts))

    def _confined(self, path: str) -> str:
        """`path`, after checking (on a directory remote) that no symbolic link someone
        planted there leads it out of the remote."""
        if self._local:
            base = os.path.realpath(self.base)
            real = os.path.realpath(path)
            if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
                raise CorruptCache(f"{path} leads out of the remote cache (to {real}); refused")
        return path

    def _object(self, digest: str) -> str:
        if not is_digest(digest):
            raise CorruptCache(f"{digest!r} is not an object name")
        return self._path(OBJECTS_DIR, digest[:2], digest)

    def _record(self, key: str, name: str) -> str:
        if not is_digest(key) or not is_record_name(name):
            raise CorruptCache(f"{key!r}/{name!r} is not a run record name")
        return self._path(RECORDS_DIR, key, name)

    def _each(self, function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """`function` of each item, FILE_THREADS at once (see threads.each)."""
        items = list(items)
        if len(items) > 1:
            with self._lock:
                if self._threads is None:
                    self._threads = Threads(FILE_THREADS, "tipi-remote-files")
        return each(self._threads, function, items)

    def keys_and_names(self) -> set[tuple[str, str]]:
        """(key, record name) of every record on the remote."""
        self._io.check()
        runs = self._path(RECORDS_DIR)
        paths = self._files.find(runs)
        found = set()
        prefix = runs.rstrip("/") + "/"
        for path in paths:
            parts = path[len(prefix) :].split("/") if path.startswith(prefix) else []
            if len(parts) == 2 and parts[1].startswith("."):
                continue  # an older tipi's temporary file
            if len(parts) == 2 and is_digest(parts[0]) and is_record_name(parts[1]):
                found.add((parts[0], parts[1]))
            else:
                self.warn(f"ignoring {path} on the remote cache {self.url}: not a run record")
        return found

    def survey(self) -> bool:
        """List every record of the remote in one request, if it has at most SURVEY_MOST
        (an object store's listing can), so that `records` then reads them without a
        listing per key; whether it did. The listing is not updated: for one make."""
        self._io.check()
        known = self._files.survey(self._path(RECORDS_DIR), SURVEY_MOST)
        with self._lock:
            self._known = known
        return known is not None

    def forget_survey(self) -> None:
        with self._lock:
            self._known = None

    def records(self, key: str) -> list[CachedRun]:
        """The well-formed runs recorded under `key`, newest first (others: a warning)."""
        self._io.check()
        if not is_digest(key):
            return []
        known = self._known
        if known is not None:
            listed = known.get(key, [])
        else:
            listed = self._files.listing(self._path(RECORDS_DIR, key))
        found = []
        for info in sorted(listed, key=lambda i: i["name"]):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith("."):  # an older tipi's temporary file
                found.append(self._read_record(key, name, info))
        return sorted((r for r in found if r is not None), key=lambda r: -r.finished)

    def _read_record(self, key: str, name: str, info: Entry | None = None) -> CachedRun | None:
        """The record at runs/<key>/<name> (`info`: its listing, if at hand), or None with a
        warning when it is anything but a well-formed record filed there (then a suspect:
        a push that has it re-uploads it)."""
        where = f"runs/{key}/{name}"
        try:
            path = self._record(key, name)
            if info is not None:
                kind, size = info.get("type"), info.get("size")
                if kind != "file" or not 0 <= as_int(size, 0) <= MAX_RECORD_BYTES:
                    raise CorruptCache(f"not a record file but a {kind} of {size} bytes")
            try:
                data = self._files.read_bytes(path, MAX_RECORD_BYTES)
            except IsADirectoryError:
                raise CorruptCache("not a record file but a folder") from None
            return CachedRun.from_bytes(data, key, name)
        except RemoteUnavailable:
            raise
        except (OSError, ValueError) as exc:
            if isinstance(exc, BadRecord | CorruptCache | FileNotFoundError) and not isinstance(
                exc, ForeignRecord
            ):
                self._suspect(f"{key}/{name}")
            self.warn(f"skipping the run record {where} of the remote cache {self.url}: {exc}")
            return None

    def find(
        self, key: str, configs: Mapping[str, Any], names: Iterable[str] | None = None
    ) -> CachedRun | None:
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
    ) -> CachedRun | None:
        """Copy the newest matching run under `key` (record and objects) into `local`.

        Raises:
            CorruptCache: one of its objects is missing or not what its name says (what was
                already copied is sound; the record is not copied; the object is a suspect
                the next push with good bytes re-uploads).
            RemoteUnavailable: the remote cannot be used (then or since an earlier failure).
        """
        self._open_local(local)
        record = self.find(key, configs, names)
        if record is not None:
            self._download(record, local)
        return record

    def push(
        self, local: ContentStore, only: Iterable[CachedRun] | None = None, new: bool = False
    ) -> Transfer:
        """Upload local records (all, or `only`) the remote lacks, objects first, and the
        suspects (files of the remote found corrupt or missing) this store has good bytes
        for; a run with a corrupt local object is not uploaded (a warning) and the object is
        dropped. `new`: the records of `only` were just made here, so the remote is not
        asked whether it has them (their names hash their bytes, finishing time included).

        Raises:
            RemoteUnavailable: the remote cannot be used; what was uploaded is whole.
        """
        self._open_local(local)
        with self._lock:
            # Once per store (a make pushes each of its runs on its own); on an object store,
            # where only an older tipi wrote temporaries, only for a whole `tipi cache push`.
            sweep = not self._swept and (only is None or not self._io.object_store)
            self._swept = self._swept or sweep
        if sweep:
            self.sweep()
        return push(self, local, only, new)

    def pull(self, local: ContentStore) -> Transfer:
        """Download every remote record (and its objects) that is not here; a bad one is
        skipped with a warning."""
        self._open_local(local)
        done = Transfer()
        for key, name in sorted(self.keys_and_names()):
            if local.has_record(key, name):
                continue
            record = self._read_record(key, name)
            if record is None:
                continue
            try:
                objects, size = self._download(record, local)
            except CorruptCache as exc:
                self.warn(f"not pulling from the remote cache {self.url}: {exc}")
                continue
            done.records += 1
            done.objects += objects
            done.bytes += size
        return done

    def sweep(self) -> int:
        """Remove the temporary files nobody has written for an hour (pushes that died, or
        an older tipi's on an object store, where uploads now go straight to their names);
        returns how many. Never by process id: another machine's live push may carry this
        host's name and one of its pids."""
        self._io.check()
        removed = 0
        for info in self._files.listing(self._path(TMP_DIR)):
            if stale_upload(self.fs, info):
                self._io.check()
                try:
                    self.fs.rm_file(info["name"])
                    removed += 1
                except (FileNotFoundError, NotADirectoryError):  # another push was first
                    pass
                except PermissionError:  # a writer that may not delete: a push all the same
                    break
                except Exception as exc:
                    raise self._io.fail(exc) from None
        return removed

    def _size(self, path: str) -> int | None:
        """The size of the file at `path`; -1 for something else there; None for nothing."""
        return self._files.size(path)

    def _suspect(self, entry: str) -> None:
        """A file of the remote found corrupt or missing: the next push with good bytes
        for it re-uploads it."""
        self._suspects.add(entry, self._cache_dir)

    def _download(self, record: CachedRun, local: ContentStore) -> tuple[int, int]:
        """Copy the objects of `record` that `local` lacks (FILE_THREADS at once), then
        the record; (objects, bytes) copied."""
        missing = [d for d in sorted(set(record.objects())) if not local.has_object(d)]
        sizes = self._each(lambda digest: self._download_object(record, digest, local), missing)
        local.add_record(record)
        return len(sizes), sum(sizes)

    def _download_object(self, record: CachedRun, digest: str, local: ContentStore) -> int:
        what = f"object {digest} of the {record.describe()}"
        try:
            try:
                source = self._files.reader(self._object(digest))
            except FileNotFoundError:
                raise CorruptCache(f"{what} is missing") from None
            except (IsADirectoryError, NotADirectoryError):
                raise CorruptCache(f"{what} is not a file; refused") from None
            with source:
                return local.ingest(source, digest, what)  # type: ignore[arg-type]
        except CorruptCache:
            self._suspect(digest)
            raise

    def _upload_object(self, local: ContentStore, digest: str) -> int:
        """Stream a local object to the remote, checking its bytes on the way."""
        target = self._object(digest)
        try:
            source = local.open_object(digest)
        except CorruptCache as exc:
            raise CorruptCache(f"the local object {digest}: {exc}; dropped") from None
        except FileNotFoundError:
            raise CorruptCache(f"the local object {digest} is missing") from None
        with source, self._files.writer(target) as out:
            actual, size = copy_hashing(source, out)
            if actual != digest:  # before the upload completes: nothing is uploaded
                local.drop_object(digest)
                raise CorruptCache(
                    f"the local object {digest} is corrupt (its bytes hash to {actual}); dropped"
                )
        return size

    def _upload_bytes(self, data: bytes, target: str) -> None:
        self._files.write_bytes(target, data)


__all__ = ["RemoteStore", "RemoteUnavailable", "Transfer", "upload_name"]
