"""On-disk engine state in `.tipi_cache/`: the trace log and atomically written cache files.

Formats (msgpack; never pickle):

* ``pipelines/<name>/traces.log``: an append-only log. The first object is the header
  ``{"tipi": "trace-log", "version": 1}``; every later object is either ``[step_name,
  record]``, where record is a Trace map (trace.py) or nil to forget the step, or a map
  ``{step_name: record, ...}`` (a snapshot, written by compaction and loaded in one call).
  Later entries win. A record is appended only after its step succeeded and its outputs are
  in place, so a crash leaves at worst a torn last entry, which is ignored. The log is
  rewritten as header + snapshot (temp file + rename) when it holds much more than its live
  entries.
* ``stat.msgpack`` and ``pipelines/<name>/plan.msgpack``: ``{"tipi": KIND, "version": 1,
  "data": ...}`` written whole to a temp file and renamed into place.

A file that is unreadable, of another kind or of another version is reported once as a
warning and treated as empty: the engine starts over, it never crashes on its cache.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from tipi.cache.trace import Trace

FORMAT_VERSION = 1
Warn = Callable[[str], None]


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_document(path: Path, kind: str, data: Any) -> None:
    """Write a versioned msgpack document atomically."""
    packed = msgpack.packb(
        {"tipi": kind, "version": FORMAT_VERSION, "data": data}, use_bin_type=True
    )
    atomic_write(path, packed)


def read_document(path: Path, kind: str, warn: Warn) -> Any:
    """Read a document written by write_document; None (with a warning) if unusable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        warn(f"cannot read {path}: {exc.strerror}; starting over")
        return None
    try:
        doc = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception:
        warn(f"{path} is corrupt; starting over")
        return None
    if not isinstance(doc, dict) or doc.get("tipi") != kind:
        warn(f"{path} is not a tipi {kind} file; starting over")
        return None
    if doc.get("version") != FORMAT_VERSION:
        warn(
            f"{path} has format version {doc.get('version')}, "
            f"this tipi reads {FORMAT_VERSION}; starting over"
        )
        return None
    return doc.get("data")


class TraceStore:
    """The traces of one pipeline's steps, backed by an append-only msgpack log."""

    HEADER = {"tipi": "trace-log", "version": FORMAT_VERSION}

    def __init__(self, path: Path, warn: Warn | None = None) -> None:
        self.path = path
        self._warn = warn or (lambda message: None)
        # Records stay as loaded until asked for: a no-op make of thousands of steps reads
        # them all but needs Trace objects only for the steps it looks at closely.
        self._traces: dict[str, Trace | dict[str, Any]] = {}
        self._entries = 0
        self._rewrite = False
        self._handle: BinaryIO | None = None
        self._load()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def traces(self) -> dict[str, Trace]:
        """Step name → its latest trace."""
        loaded = {name: self.get(name) for name in list(self._traces)}
        return {name: trace for name, trace in loaded.items() if trace is not None}

    def get(self, step: str) -> Trace | None:
        found = self._traces.get(step)
        if found is None or isinstance(found, Trace):
            return found
        try:
            trace = Trace.from_record(found)
        except (KeyError, TypeError, ValueError):
            self._warn(f"{self.path}: ignored a malformed entry for '{step}'")
            del self._traces[step]
            self._rewrite = True
            return None
        self._traces[step] = trace
        return trace

    def put(self, step: str, trace: Trace | None) -> None:
        """Record (or, with None, forget) a step's trace durably before returning."""
        if trace is None:
            self._traces.pop(step, None)
        else:
            self._traces[step] = trace
        if self._rewrite:
            self.compact()
            return
        handle = self._open_for_append()
        handle.write(msgpack.packb([step, trace.to_record() if trace else None], use_bin_type=True))
        handle.flush()
        self._entries += 1

    def compact(self, force: bool = True) -> None:
        """Rewrite the log with only live entries (temp file + rename)."""
        if not force and self._entries <= 2 * len(self._traces) + 64:
            return
        self.close()
        packer = msgpack.Packer(use_bin_type=True)
        snapshot = {
            n: t.to_record() if isinstance(t, Trace) else t for n, t in self._traces.items()
        }
        chunks = [packer.pack(self.HEADER), packer.pack(snapshot)]
        atomic_write(self.path, b"".join(chunks))
        self._entries = len(self._traces)
        self._rewrite = False

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _open_for_append(self) -> BinaryIO:
        if self._handle is None:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path, msgpack.packb(self.HEADER, use_bin_type=True))
            self._handle = open(self.path, "ab")  # noqa: SIM115 - kept open across appends
        return self._handle

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._start_over(f"cannot read {self.path}: {exc.strerror}")
            return
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=0)
        unpacker.feed(raw)
        try:
            header = unpacker.unpack()
        except Exception:
            self._start_over(f"{self.path} is corrupt")
            return
        if not isinstance(header, dict) or header.get("tipi") != "trace-log":
            self._start_over(f"{self.path} is not a tipi trace log")
            return
        if header.get("version") != FORMAT_VERSION:
            self._start_over(
                f"{self.path} has format version {header.get('version')}, "
                f"this tipi reads {FORMAT_VERSION}"
            )
            return
        self._read_entries(unpacker, len(raw))

    def _read_entries(self, unpacker: msgpack.Unpacker, size: int) -> None:
        complete = unpacker.tell()
        while True:
            try:
                entry = unpacker.unpack()
                complete = unpacker.tell()
            except msgpack.OutOfData:
                # tell() also counts bytes of a partly read object: compare with the end of
                # the last complete one.
                if complete < size:
                    self._warn(f"{self.path}: ignored a torn last entry (a crash while writing)")
                    self._rewrite = True
                return
            except Exception:
                self._warn(f"{self.path}: ignored corrupt entries after {self._entries} good ones")
                self._rewrite = True
                return
            if isinstance(entry, dict):
                self._traces.update(entry)
            elif isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict | None):
                name, record = entry
                self._traces.pop(name, None)
                if record is not None:
                    self._traces[name] = record
            else:
                self._warn(f"{self.path}: ignored a malformed entry")
                self._rewrite = True
            self._entries += 1

    def _start_over(self, why: str) -> None:
        self._warn(f"{why}; starting over (every step will run)")
        self._traces.clear()
        self._rewrite = True
