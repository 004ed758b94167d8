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

A file that is unusable is reported once and treated as empty (statefile.py): the engine
starts over, it never crashes on its cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgpack

from tipi.state.statefile import (
    REBUILT,
    ROLES,
    BrokenState,
    Check,
    Warn,
    fields_problem,
    is_map,
    map_problem,
    number_problem,
    open_append,
    shown,
    state_bytes,
    text_problem,
    warn_broken,
    write_state,
)

if TYPE_CHECKING:
    # Imported where used: the no-op fast path reads documents through this module and must
    # not pay for their dataclasses (nor hashing's xxhash).
    from tipi.identity.hashing import StatCache
    from tipi.identity.trace import Trace

FORMAT_VERSION = 1


def write_document(path: Path, kind: str, data: Any) -> None:
    """Write a versioned msgpack document atomically (fsynced unless it is a cache tipi
    rebuilds, statefile.REBUILT)."""
    packed = msgpack.packb(
        {"tipi": kind, "version": FORMAT_VERSION, "data": data}, use_bin_type=True
    )
    write_state(path, packed, durable=kind not in REBUILT)


def load_document(path: Path, kind: str, check: Check | None = None) -> Any:
    """The data of a document written by write_document; None when there is none.

    Args:
        check: says what is wrong with the data ("steps is not a list"), None when it is
            usable. Default: the data must be a map (every tipi document is one).

    Raises:
        BrokenState: the file is unusable.
    """
    raw = state_bytes(path)
    if raw is None:
        return None
    if not raw:
        raise BrokenState("is empty")
    try:
        doc = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception:
        raise BrokenState("is corrupt") from None
    if not isinstance(doc, dict) or doc.get("tipi") != kind:
        raise BrokenState(f"is not a tipi {kind} file")
    if doc.get("version") != FORMAT_VERSION:
        raise BrokenState(
            f"has format version {doc.get('version')!r}, this tipi reads {FORMAT_VERSION}"
        )
    data = doc.get("data")
    problem = (check or is_map)(data)
    if problem:
        raise BrokenState(f"is malformed: {problem}")
    return data


def read_document(path: Path, kind: str, warn: Warn, check: Check | None = None) -> Any:
    """Read a document written by write_document; None when there is none or it is unusable
    (then with one warning). `check` as for load_document."""
    return read_document_flagged(path, kind, warn, check)[0]


def read_document_flagged(
    path: Path, kind: str, warn: Warn, check: Check | None = None
) -> tuple[Any, bool]:
    """As read_document, and whether the file was unusable: a caller that writes the document
    back then writes it even when its data did not change, so the next make reads it."""
    try:
        return load_document(path, kind, check), False
    except BrokenState as broken:
        warn_broken(warn, path, str(broken), kind)
        return None, True


def load_stat_cache(path: Path, warn: Warn, trusted: bool = True) -> StatCache:
    """The stat cache saved at `path` (hashing.py); empty, with one warning, when that file is
    unusable, and then written back even if nothing new is hashed, so the next make reads it.

    Args:
        trusted: False (`--rehash`) trusts no saved signature.
    """
    from tipi.identity.hashing import STAT_KIND, StatCache, stat_problem

    entries, broken = read_document_flagged(path, STAT_KIND, warn, stat_problem)
    return StatCache(entries or {}, trusted=trusted, dirty=broken)


class TraceStore:
    """The traces of one pipeline's steps, backed by an append-only msgpack log."""

    HEADER = {"tipi": "trace-log", "version": FORMAT_VERSION}
    KIND = "trace-log"

    def __init__(self, path: Path, warn: Warn | None = None) -> None:
        self.path = path
        self._warn = warn or (lambda message: None)
        # Records stay as loaded until asked for: a no-op make of thousands of steps reads
        # them all but needs Trace objects only for the steps it looks at closely.
        self._traces: dict[str, Trace | dict[str, Any]] = {}
        self._entries = 0
        self._rewrite = False
        self._warned = False
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
        if not isinstance(found, dict):  # None, or a Trace already
            return found
        problem = record_problem(found)
        if problem is None:
            from tipi.identity.trace import Trace

            try:
                trace = Trace.from_record(found)
            except (KeyError, TypeError, ValueError) as exc:
                problem = f"cannot be read ({exc})"
        if problem is not None:
            self._damaged(f"ignored a malformed entry for '{step}' ({problem}); it will run")
            del self._traces[step]
            return None
        self._traces[step] = trace
        return trace

    def put(self, step: str, trace: Trace | None) -> None:
        """Record (or, with None, forget) a step's trace durably before returning."""
        if trace is None:
            self._traces.pop(step, None)
        else:
            self._traces[step] = trace
        handle = None if self._rewrite else self._open_for_append()
        if handle is None:  # damaged, missing, or not a file to append to: write it whole
            self.compact()
            return
        handle.write(msgpack.packb([step, trace.to_record() if trace else None], use_bin_type=True))
        handle.flush()
        self._entries += 1

    def compact(self, force: bool = True) -> None:
        """Rewrite the log with only live entries (temp file + rename); without `force`,
        only when it holds much more than them or was found damaged."""
        if not force and not self._rewrite and self._entries <= 2 * len(self._traces) + 64:
            return
        self.close()
        packer = msgpack.Packer(use_bin_type=True)
        snapshot = {n: t if isinstance(t, dict) else t.to_record() for n, t in self._traces.items()}
        chunks = [packer.pack(self.HEADER), packer.pack(snapshot)]
        write_state(self.path, b"".join(chunks))
        self._entries = len(self._traces)
        self._rewrite = False

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _open_for_append(self) -> BinaryIO | None:
        if self._handle is None:
            self._handle = open_append(self.path)
        return self._handle

    def _load(self) -> None:
        try:
            raw = state_bytes(self.path)
        except BrokenState as broken:
            self._start_over(str(broken))
            return
        if raw is None:
            return
        if not raw:
            self._start_over("is empty")
            return
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=0)
        unpacker.feed(raw)
        try:
            header = unpacker.unpack()
        except Exception:
            self._start_over("is corrupt")
            return
        if not isinstance(header, dict) or header.get("tipi") != "trace-log":
            self._start_over("is not a tipi trace log")
            return
        if header.get("version") != FORMAT_VERSION:
            self._start_over(
                f"has format version {header.get('version')!r}, this tipi reads {FORMAT_VERSION}"
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
                    self._damaged("ignored a torn last entry (a crash while writing)")
                return
            except Exception:
                self._damaged(f"ignored corrupt entries after {self._entries} good ones")
                return
            if isinstance(entry, dict):
                good = {k: v for k, v in entry.items() if isinstance(k, str) and _is_record(v)}
                self._traces.update(good)
                if len(good) != len(entry):
                    self._damaged("ignored a malformed entry")
            elif isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str):
                name, record = entry
                self._traces.pop(name, None)  # a later entry of any shape ends the earlier
                if _is_record(record):
                    self._traces[name] = record
                elif record is not None:
                    self._damaged(f"ignored a malformed entry for '{name}'; it will run")
            else:
                self._damaged("ignored a malformed entry")
            self._entries += 1

    def _damaged(self, what: str) -> None:
        """Part of the log is unusable: say so once, and rewrite it at the next write."""
        self._rewrite = True
        if not self._warned:
            self._warned = True
            name = f"{shown(self.path)} ({ROLES[self.KIND][0]})"
            self._warn(f"{name}: {what}")

    def _start_over(self, problem: str) -> None:
        self._traces.clear()
        self._rewrite = True
        if not self._warned:
            self._warned = True
            warn_broken(self._warn, self.path, problem, self.KIND)


def _is_record(value: Any) -> bool:
    return isinstance(value, dict)


def _map_of(value: Check | None) -> Check:
    return lambda data: map_problem(data, value)


def _digest_problem(value: Any) -> str | None:
    return None if value is None or isinstance(value, str) else "is not a hash"


def _config_problem(value: Any) -> str | None:
    return fields_problem(value, {"params": (False, _map_of(None))})


# A trace record's fields (trace.py): key → (required, its check).
_FIELDS: dict[str, tuple[bool, Check]] = {
    "fp": (True, text_problem),
    "ty": (True, text_problem),
    "co": (True, text_problem),
    "pa": (True, _map_of(None)),
    "in": (True, _map_of(_digest_problem)),
    "pe": (True, _map_of(_config_problem)),
    "ou": (True, _map_of(_digest_problem)),
    "fi": (False, number_problem),
    "se": (False, number_problem),
    "ex": (False, _map_of(None)),
    "en": (False, _map_of(text_problem)),
}


def record_problem(record: Any) -> str | None:
    """What is wrong with a trace record as read from the log; None if it is usable."""
    return fields_problem(record, _FIELDS)
