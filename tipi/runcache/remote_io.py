"""The remote cache's file system behind one door: each call works, says a path is not there,
or raises `RemoteUnavailable`; after the first of those the remote is down for good."""

from __future__ import annotations

import gc
import sys
import threading
from typing import Any

from tipi.runcache.remote_errors import RemoteUnavailable, describe

# fsspec protocols of object stores: no folders (never makedirs: on s3fs it creates the
# bucket), and a bucket that must exist before anything else makes sense.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss", "r2"})
# Reads where "not found" is an answer (a run key nobody has recorded yet), not a failure.
_ANSWERS = (FileNotFoundError, NotADirectoryError)


_FROZEN: list[bool] = []


def _freeze_once() -> None:
    """Move every object alive now out of the garbage collector's sight, once per process.

    An object store's client (s3fs, aiobotocore, aiohttp, botocore's service models) is
    about a million objects that live as long as the process; the collector would walk
    them in each full collection, and once more when the process exits (0.1 s: a third of
    a whole first build of 30 small steps). Frozen, they are skipped (`gc.freeze`, made for
    such long-lived heaps). Frozen cycles are never collected: hence once, after the client
    was made, not per make, and only in the `tipi` command itself: in a notebook or script
    that calls tipi, the heap is the user's, not ours to freeze."""
    cli = sys.modules.get("tipi._fastpath")
    if not _FROZEN and getattr(cli, "RUNNING", False):
        _FROZEN.append(True)
        gc.freeze()


class Connection:
    """`fs` at `url`, failing once: the first failure's message is kept in `down` and every
    later call raises it at once, without network I/O (a make pays a dead remote once, not
    per step). Safe to use from several threads."""

    def __init__(self, fs: Any, url: str, base: str) -> None:
        self.fs = fs
        self.url = url
        protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
        self.protocols = frozenset(protocols)
        self.object_store = bool(OBJECT_STORES & self.protocols)
        self.local = "file" in self.protocols or "local" in self.protocols
        self.bucket = base.strip("/").split("/")[0] if self.object_store else ""
        self.down: str | None = None
        self._cause = ""
        self._lock = threading.Lock()
        self._probe = threading.Lock()
        self._probed = not self.bucket

    def check(self) -> None:
        """Raise `RemoteUnavailable` if the remote is down; on an object store, the first
        call checks the bucket exists (tipi never creates one)."""
        if self.down is not None:
            raise self.failure()
        if not self._probed:
            with self._probe:  # the other threads wait for the answer rather than ask too
                if self.down is not None:  # the probe they waited for failed: that answers
                    raise self.failure()
                if not self._probed:
                    self._check_bucket()
                    self._probed = True
                    _freeze_once()
        if self.down is not None:
            raise self.failure()

    def _check_bucket(self) -> None:
        try:
            self.fs.info(self.bucket)
        except FileNotFoundError:
            raise self.fail(
                f"bucket '{self.bucket}' does not exist (tipi never creates buckets: "
                "check the URL, or create it)"
            ) from None
        except PermissionError:
            pass  # a key scoped to a prefix may not see the bucket; its objects will tell
        except Exception as exc:
            raise self.fail(exc) from None

    def fail(self, cause: BaseException | str) -> RemoteUnavailable:
        """The remote is down (the first cause wins: later ones are its echoes); the
        exception to raise."""
        if isinstance(cause, RemoteUnavailable):
            text = cause.cause
        else:
            text = cause if isinstance(cause, str) else describe(cause)
        with self._lock:
            if self.down is None:
                self._cause = text
                self.down = str(RemoteUnavailable(self.url, text))
        return RemoteUnavailable(self.url, text)

    def failure(self) -> RemoteUnavailable:
        """The exception of a remote that is down."""
        return RemoteUnavailable(self.url, self._cause)

    def read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """`fs.<method>(...)`, where FileNotFoundError / NotADirectoryError mean "not there"."""
        self.check()
        try:
            return getattr(self.fs, method)(*args, **kwargs)
        except _ANSWERS:
            raise
        except Exception as exc:
            raise self.fail(exc) from None

    def write(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """`fs.<method>(...)`, where any failure is the remote's."""
        self.check()
        try:
            return getattr(self.fs, method)(*args, **kwargs)
        except Exception as exc:
            raise self.fail(exc) from None

    def open(self, path: str, mode: str) -> RemoteFile:
        """The file at `path`; its reads, writes and close fail as `RemoteUnavailable`."""
        call = self.read if "r" in mode else self.write
        return RemoteFile(self, call("open", path, mode), path)


class RemoteFile:
    """A remote file whose every failure (the server gone mid-transfer) is the remote's, so
    it is told apart from a failure of the local file on the other end of the copy."""

    def __init__(self, connection: Connection, file: Any, path: str) -> None:
        self._connection = connection
        self._file = file
        self.path = path

    def read(self, size: int = -1) -> bytes:
        return self._call(self._file.read, size)

    def write(self, data: bytes) -> int:
        return self._call(self._file.write, data)

    def close(self) -> None:
        self._call(self._file.close)  # an object store's upload happens here

    def discard(self) -> None:
        """Give up: close without uploading what was written (the caller removes the
        temporary file), and without a network call when the remote is down."""
        file = self._file
        try:
            if "r" in file.mode or not self._connection.object_store:
                file.close()
                return
            if self._connection.down is None and hasattr(file, "discard"):
                file.discard()  # aborts a multipart upload
            file.closed = True  # so that nothing flushes the rest later (`__del__`)
        except Exception:  # already failing: the first failure is the one told
            pass

    def _call(self, function: Any, *args: Any) -> Any:
        if self._connection.down is not None:
            raise self._connection.failure()
        try:
            return function(*args)
        except Exception as exc:
            raise self._connection.fail(exc) from None

    def __enter__(self) -> RemoteFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


__all__ = ["OBJECT_STORES", "Connection", "RemoteFile"]
