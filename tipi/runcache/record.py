"""A cached run (`CachedRun`: the run cache's record of one successful run; a make's run of
`tipi runs` is tipi/runs/record.py's RunRecord), and the checks it passes before anything
trusts it: its key and name, every digest, every path of a folder output, the bytes of a
small output held inline (content.py keeps the records).

Format versions: 1 names every output file's object; 2 (written only when a record holds
one) may also hold a small file output's bytes inline (`{"hash": h, "data": bytes}`, at most
INLINE_MAX bytes): a first build of many small steps then creates one file a step in the
store, not two. A tipi that reads only version 1 skips a version 2 record and leaves it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from tipi.identity.hashing import hash_bytes

# A record names every file of its outputs (~100 bytes each): this admits about two million.
MAX_RECORD_BYTES = 256 << 20
# A file output this small is kept inside its run's record, not as an object of its own.
INLINE_MAX = 8 << 10
_LATEST = 10_000_000_000  # seconds since 1970 (year 2286): later timestamps are garbage
_DIGEST = re.compile(r"[0-9a-f]{32}")
_RECORD_NAME = re.compile(r"[0-9a-f]{32}\.msgpack")


class CorruptCache(OSError):
    """A cache file that is not what its name says (or leads out of its store). An OSError,
    so the engine treats it as an unreadable cache: a warning, and the step runs."""


class BadRecord(ValueError):
    """A run record that is malformed or filed under the wrong name."""


class ForeignRecord(BadRecord):
    """A run record of another format version: skipped, but left for the tipi that wrote it."""


def is_digest(value: object) -> bool:
    """Whether `value` is an object name: an xxh3-128 hash as 32 lowercase hex digits."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def is_record_name(value: object) -> bool:
    return isinstance(value, str) and _RECORD_NAME.fullmatch(value) is not None


def safe_relative(path: object) -> bool:
    """Whether `path` is a plain relative POSIX path: no absolute, `..`, `.` or empty parts,
    no backslash or NUL; such a path is its own normal form and stays below its folder."""
    if not isinstance(path, str) or not path or len(path) > 4096 or "\\" in path or "\0" in path:
        return False
    return all(
        part not in ("", ".", "..") and len(part.encode("utf-8", "surrogatepass")) <= 255
        for part in path.split("/")
    )


def show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class CachedRun:
    """One successful run, restorable from the objects it names.

    Attributes:
        step: the step's name when it ran (for `gc --keep-last`, and for people).
        permanences: name → config of the result-relevant permanences it used.
        outputs: output name → {"hash": h} for a file, {"hash": h, "data": its bytes} for a
            small file held inline, {"hash": "d" + h, "tree": {rel: h}} for a directory
            (rel: a POSIX path below it).
    """

    key: str
    step: str
    permanences: Mapping[str, Any]
    outputs: Mapping[str, Mapping[str, Any]]
    finished: float
    seconds: float

    def to_bytes(self) -> bytes:
        return msgpack.packb(
            {
                "v": self.version,
                "key": self.key,
                "step": self.step,
                "permanences": dict(self.permanences),
                "outputs": {k: dict(v) for k, v in self.outputs.items()},
                "finished": self.finished,
                "seconds": self.seconds,
            },
            use_bin_type=True,
        )

    @classmethod
    def from_bytes(cls, data: bytes, key: str | None = None, name: str | None = None) -> CachedRun:
        """Parse and check a record read from `runs/<key>/<name>` (those checked when given).

        Raises:
            BadRecord: anything but a well-formed record with that key whose bytes hash to
                that name (ForeignRecord: one of another format version).
        """
        if len(data) > MAX_RECORD_BYTES:
            raise BadRecord(f"{len(data)} bytes is more than a run record holds")
        if name is not None and hash_bytes(data) + ".msgpack" != name:
            raise BadRecord("its bytes do not match its name (truncated or edited)")
        try:
            raw = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several kinds on malformed input
            raise BadRecord(f"not msgpack ({type(exc).__name__})") from None
        if not isinstance(raw, dict):
            raise BadRecord(f"a {type(raw).__name__}, not a map")
        version = raw.get("v")
        if type(version) is not int or version not in (1, 2):
            raise ForeignRecord(f"format version {show(version)}; this tipi reads 1 and 2")
        record = cls(
            raw.get("key"),  # type: ignore[arg-type]
            raw.get("step"),  # type: ignore[arg-type]
            raw.get("permanences"),  # type: ignore[arg-type]
            raw.get("outputs"),  # type: ignore[arg-type]
            _seconds(raw, "finished"),
            _seconds(raw, "seconds"),
        )
        record.check()
        if record.version != version:  # then its bytes would not be the ones read
            held = "holds" if version == 1 else "does not hold"
            raise BadRecord(f"format version {version}, but it {held} an output inline")
        if key is not None and record.key != key:
            raise BadRecord(f"it says key {record.key}, but is filed under {key}")
        return record

    def check(self) -> None:
        """Raise BadRecord unless every field is well formed (see the class docstring)."""
        if not is_digest(self.key):
            raise BadRecord(f"key {show(self.key)} is not 32 hex digits")
        if not isinstance(self.step, str) or not 0 < len(self.step) <= 1024:
            raise BadRecord(f"step {show(self.step)} is not a step name")
        if not isinstance(self.permanences, dict) or not all(
            isinstance(k, str) for k in self.permanences
        ):
            raise BadRecord(f"permanences {show(self.permanences)} is not a map of names")
        if not isinstance(self.outputs, dict):
            raise BadRecord(f"outputs {show(self.outputs)} is not a map")
        for output, entry in self.outputs.items():
            _check_output(output, entry)

    @property
    def version(self) -> int:
        """2 when an output is held inline, else 1 (what a tipi before version 2 reads)."""
        return 2 if any("data" in entry for entry in self.outputs.values()) else 1

    def inline_bytes(self) -> int:
        """How many bytes of output the record holds itself."""
        return sum(len(entry.get("data", b"")) for entry in self.outputs.values())

    @property
    def name(self) -> str:
        """The record's file name: the hash of its bytes."""
        return hash_bytes(self.to_bytes()) + ".msgpack"

    def describe(self) -> str:
        """How messages name the run: where it lies in a store, and its step."""
        return f"run {self.key}/{self.name} of '{self.step}'"

    def objects(self) -> Iterator[str]:
        """Every object hash the record needs (none for an output it holds inline)."""
        for entry in self.outputs.values():
            tree = entry.get("tree")
            if "data" in entry:
                continue
            if tree is None:
                yield entry["hash"]
            else:
                yield from tree.values()

    def matches(self, configs: Mapping[str, Any]) -> bool:
        """Whether every permanence it used still has the same config."""
        return all(configs.get(name) == config for name, config in self.permanences.items())


def _seconds(raw: dict, field: str) -> float:
    value = raw.get(field)
    # `not 0 <= value` also rejects NaN; the bound keeps time.localtime from overflowing.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _LATEST:
        raise BadRecord(f"'{field}' is {show(value)}, not a number of seconds")
    return value  # as it was: to_bytes() then gives back the very bytes that were read


_FORMS = (set(), {"tree"}, {"data"})


def _check_output(output: object, entry: object) -> None:
    if not isinstance(output, str) or not 0 < len(output) <= 256:
        raise BadRecord(f"output name {show(output)} is not a name")
    if not isinstance(entry, dict) or "hash" not in entry or set(entry) - {"hash"} not in _FORMS:
        raise BadRecord(f"output '{output}' is {show(entry)}, not {{hash[, tree | data]}}")
    digest = entry["hash"]
    if "tree" not in entry:
        if not is_digest(digest):
            raise BadRecord(f"output '{output}' has hash {show(digest)}, not 32 hex digits")
        data = entry.get("data", b"")
        if not isinstance(data, bytes) or len(data) > INLINE_MAX:
            raise BadRecord(f"output '{output}' holds {show(data)}, not up to {INLINE_MAX} bytes")
        if "data" in entry and hash_bytes(data) != digest:
            raise BadRecord(f"the bytes output '{output}' holds do not hash to {digest}")
        return
    if not (isinstance(digest, str) and digest[:1] == "d" and is_digest(digest[1:])):
        raise BadRecord(f"folder output '{output}' has hash {show(digest)}, not d + 32 hex")
    tree = entry["tree"]
    if not isinstance(tree, dict):
        raise BadRecord(f"folder output '{output}' has tree {show(tree)}, not a map")
    folders: set[str] = set()
    for relative, file_digest in tree.items():
        if not safe_relative(relative):
            raise BadRecord(f"folder output '{output}' names {show(relative)}, not a path below it")
        if not is_digest(file_digest):
            raise BadRecord(f"{relative} of output '{output}' has hash {show(file_digest)}")
        parts = relative.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clash = folders & tree.keys()
    if clash:
        raise BadRecord(f"{show(min(clash))} of output '{output}' is both a file and a folder")
