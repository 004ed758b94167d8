"""The remote cache's file operations by kind of remote, each in as few requests as it allows.

A directory (or any file system with renames) writes under a temporary name in `tmp/` and
renames it into place. An object store writes straight to the final name: a PUT (or the end
of a multipart upload) is atomic there, a reader sees the old object or the whole new one,
and every name is content-addressed, so two writers of one name write the same bytes. On S3
each question is one request of a known name (`S3Files`): a HEAD for a size, a GET for
bytes, one listing of `runs/<key>/` for a lookup; s3fs's own `info`, `ls` and `cat_file`
would add listings (a missing key is asked again as a folder, an empty one lists its parent)
and a cached listing that goes stale while others push.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from tipi.runcache.content import CorruptCache
from tipi.runcache.remote_io import Connection, RemoteFile
from tipi.runcache.remote_push import as_int, upload_name
from tipi.state.layout import TMP_DIR

Entry = dict[str, Any]  # a listed file: name, type ("file" or "directory"), size, ...


class Files:
    """Any fsspec file system; writes through a temporary file and a rename (a directory
    remote, sftp, ...)."""

    def __init__(self, io: Connection, base: str, confined: Callable[[str], str]) -> None:
        self.io = io
        self.fs = io.fs
        self.base = base
        self.confined = confined  # checks a path stays in the remote (links), returns it
        self._tmp_ready = False

    def listing(self, folder: str) -> list[Entry]:
        """The entries of `folder` (none when it is missing)."""
        try:
            return list(self.io.read("ls", folder, detail=True))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def find(self, folder: str) -> list[str]:
        """The path of every file below `folder` (none when it is missing)."""
        try:
            return list(self.io.read("find", folder))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def survey(self, folder: str, most: int) -> dict[str, list[Entry]] | None:
        """The entries of every subfolder of `folder` by subfolder name, in one request,
        if it holds at most `most` files; None when it holds more or this remote cannot
        tell in one request."""
        return None

    def size(self, path: str) -> int | None:
        """The size of the file at `path`; -1 for something else there; None for nothing."""
        try:
            info = self.io.read("info", path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return as_int(info.get("size"), -1) if info.get("type") == "file" else -1

    def reader(self, path: str) -> RemoteFile:
        """The file at `path`, to read; FileNotFoundError when there is none, CorruptCache
        (from the caller's check) when it is not a file."""
        if self.size(path) == -1:
            raise IsADirectoryError(path)
        return self.io.open(path, "rb")

    def read_bytes(self, path: str, limit: int) -> bytes:
        """Up to `limit` + 1 bytes of the file at `path` (more than `limit`: not what the
        caller expects there)."""
        with self.reader(path) as f:
            return f.read(limit + 1)

    @contextlib.contextmanager
    def writer(self, target: str) -> Iterator[BinaryIO]:
        """A file whose bytes appear at `target` only when the block ends without an
        exception, and whole."""
        tmp = self._temporary()
        try:
            with self.io.open(tmp, "wb") as out:
                yield out  # type: ignore[misc]
            self._move(tmp, target)
        except BaseException:
            self._discard(tmp)
            raise

    def write_bytes(self, target: str, data: bytes) -> None:
        tmp = self._temporary()
        try:
            self.io.write("pipe_file", tmp, data)
            self._move(tmp, target)
        except BaseException:
            self._discard(tmp)
            raise

    def _move(self, tmp: str, target: str) -> None:
        folder = posixpath.dirname(target)
        if self.io.local and os.path.lexists(folder) and not os.path.isdir(folder):
            # A file someone put where a folder of the layout belongs: that file's fault,
            # not a remote that is down; the run is not pushed (the caller warns).
            raise CorruptCache(f"{folder} on the remote cache is not a folder; refused")
        self.io.write("makedirs", folder, exist_ok=True)
        self.io.write("mv", tmp, self.confined(target))  # again: links may have changed

    def _temporary(self) -> str:
        if not self._tmp_ready:
            self.io.write("makedirs", posixpath.join(self.base, TMP_DIR), exist_ok=True)
            self._tmp_ready = True  # twice (two threads) is harmless
        return self.confined(posixpath.join(self.base, TMP_DIR, upload_name()))

    def _discard(self, tmp: str) -> None:
        """Remove an upload's temporary file, unless the remote is gone (no use waiting for
        it; the sweep of a later push removes it after an hour)."""
        if self.io.down is None or self.io.local:
            with contextlib.suppress(OSError, ValueError):  # never written: nothing to remove
                self.fs.rm_file(tmp)


class ObjectFiles(Files):
    """An object store (gs://, az://, ...): no folders (s3fs's makedirs would even create a
    missing bucket), writes straight to the final name, and listings asked of the server,
    never of the file system's cache (stale while others push)."""

    def listing(self, folder: str) -> list[Entry]:
        self.fs.invalidate_cache(folder)
        return super().listing(folder)

    def size(self, path: str) -> int | None:
        self.fs.invalidate_cache(path)
        return super().size(path)

    @contextlib.contextmanager
    def writer(self, target: str) -> Iterator[BinaryIO]:
        # An object is created when its upload completes: an exception in the block
        # discards the upload (aborts a multipart one), and nothing is ever at `target`.
        with self.io.open(target, "wb") as out:
            yield out  # type: ignore[misc]

    def write_bytes(self, target: str, data: bytes) -> None:
        self.io.write("pipe_file", target, data)

    def find(self, folder: str) -> list[str]:
        self.fs.invalidate_cache(folder)  # another push may have added some since
        return super().find(folder)


class S3Files(ObjectFiles):
    """S3 and S3-compatible stores through s3fs's `call_s3` (its retries, error translation
    and `s3_additional_kwargs`, such as encryption settings): one request per question."""

    def listing(self, folder: str) -> list[Entry]:
        bucket, key, _ = self.fs.split_path(folder)
        prefix = key.rstrip("/") + "/"
        entries: list[Entry] = []
        ask: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        while True:
            page = self._list(bucket, ask)
            for common in page.get("CommonPrefixes") or []:
                name = f"{bucket}/{str(common.get('Prefix', '')).rstrip('/')}"
                entries.append({"name": name, "type": "directory", "size": 0})
            for item in page.get("Contents") or []:
                if item.get("Key") == prefix:  # a folder marker some tool made
                    continue
                entries.append(
                    {
                        "name": f"{bucket}/{item.get('Key')}",
                        "type": "file",
                        "size": item.get("Size"),
                        "LastModified": item.get("LastModified"),
                    }
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return entries
            ask["ContinuationToken"] = token

    def find(self, folder: str) -> list[str]:
        # s3fs's own find loses keys under an empty path segment (s3://bucket//cache).
        bucket, key, _ = self.fs.split_path(folder)
        ask: dict[str, Any] = {"Bucket": bucket, "Prefix": key.rstrip("/") + "/"}
        found = []
        while True:
            page = self._list(bucket, ask)
            found += [f"{bucket}/{item.get('Key')}" for item in page.get("Contents") or []]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return found
            ask["ContinuationToken"] = token

    def _list(self, bucket: str, ask: dict[str, Any]) -> dict[str, Any]:
        """One page of a listing (ListObjectsV2 with `ask`)."""
        try:
            return self.io.read("call_s3", "list_objects_v2", **ask)
        except (FileNotFoundError, NotADirectoryError):  # the bucket went away
            raise self.io.fail(f"bucket '{bucket}' does not exist") from None

    def survey(self, folder: str, most: int) -> dict[str, list[Entry]] | None:
        bucket, key, _ = self.fs.split_path(folder)
        prefix = key.rstrip("/") + "/"
        page = self._list(bucket, {"Bucket": bucket, "Prefix": prefix, "MaxKeys": most})
        if page.get("IsTruncated"):
            return None
        found: dict[str, list[Entry]] = {}
        for item in page.get("Contents") or []:
            name = str(item.get("Key", ""))[len(prefix) :]
            sub, _, rest = name.partition("/")
            if not rest:  # a file beside the subfolders, or a folder marker: not listed
                continue
            entries = found.setdefault(sub, [])
            path = f"{bucket}/{prefix}{sub}/{rest.split('/')[0]}"
            if "/" in rest:  # deeper: its subfolder, as a listing of `sub` shows it, once
                if not any(e["name"] == path for e in entries):
                    entries.append({"name": path, "type": "directory", "size": 0})
                continue
            entries.append({"name": path, "type": "file", "size": item.get("Size")})
        return found

    def size(self, path: str) -> int | None:
        bucket, key, _ = self.fs.split_path(path)
        try:
            head = self.io.read("call_s3", "head_object", Bucket=bucket, Key=key)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return as_int(head.get("ContentLength"), -1)

    def reader(self, path: str) -> RemoteFile:
        """One GET, its body streamed (no HEAD first: a missing key is the GET's 404)."""
        bucket, key, _ = self.fs.split_path(path)
        response = self.io.read("call_s3", "get_object", Bucket=bucket, Key=key)
        return RemoteFile(self.io, _Body(self.fs, response["Body"]), path)


class _Body:
    """The body of an S3 GET, read from a plain thread (it lives on s3fs's event loop)."""

    mode = "rb"

    def __init__(self, fs: Any, body: Any) -> None:
        self._fs = fs
        self._body = body
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        from fsspec.asyn import sync

        return sync(self._fs.loop, _read, self._body, size)

    def close(self) -> None:
        from fsspec.asyn import sync

        if not self.closed:
            self.closed = True
            sync(self._fs.loop, _close, self._body)


async def _read(body: Any, size: int) -> bytes:
    """`size` bytes of `body` (all when negative), fewer only at its end: the stream hands
    out what has arrived, and a short read must not pass for the end of a record."""
    if size < 0:
        return await body.read()
    chunks: list[bytes] = []
    while size > 0 and (chunk := await body.read(size)):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


async def _close(body: Any) -> None:
    body.close()  # on the loop that owns the connection


def files_for(io: Connection, base: str, confined: Callable[[str], str]) -> Files:
    """The operations that suit the remote behind `io`."""
    if not io.object_store:
        return Files(io, base, confined)
    if "s3" in io.protocols and hasattr(io.fs, "call_s3") and hasattr(io.fs, "split_path"):
        return S3Files(io, base, confined)
    return ObjectFiles(io, base, confined)


__all__ = ["Entry", "Files", "ObjectFiles", "S3Files", "files_for"]
