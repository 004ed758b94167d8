"""The run cache: outputs of successful runs kept by content, found again by fingerprint.

Layout (the same locally, in `.tipi_cache/store/`, and on a remote, so push and pull copy
files and never merge them):

    objects/<2 hex>/<hash>            a file's bytes, named by their xxh3-128 hash
    runs/<key>/<record hash>.msgpack  one successful run of a step whose type, code, params
                                      and input contents hash to <key>

A run record says which permanence configs the run used and what each output was (a file's
hash, or a directory's files and their hashes). Every name is a hash of what it holds, so a
file is never rewritten, concurrent writers of the same name write the same bytes, and a
record is written after its objects: a reader never finds a record whose files are missing.
Nothing here depends on where the project is checked out.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import msgpack

from tipi.cache.hashing import hash_bytes

STORE = "store"


@dataclass(frozen=True)
class RunRecord:
    """One successful run, restorable from the objects it names.

    Attributes:
        step: the step's name when it ran (for `gc --keep-last`, and for people).
        permanences: name → config of the result-relevant permanences it used.
        outputs: output name → {"hash": h} for a file, {"hash": h, "tree": {rel: h}} for a
            directory.
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
                "v": 1,
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
    def from_bytes(cls, data: bytes) -> RunRecord:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=False)
        if not isinstance(raw, dict) or raw.get("v") != 1:
            raise ValueError("not a tipi run record")
        return cls(
            raw["key"],
            raw["step"],
            raw["permanences"],
            raw["outputs"],
            raw["finished"],
            raw["seconds"],
        )

    @property
    def name(self) -> str:
        """The record's file name: the hash of its bytes."""
        return hash_bytes(self.to_bytes()) + ".msgpack"

    def objects(self) -> Iterator[str]:
        """Every object hash the record needs."""
        for entry in self.outputs.values():
            tree = entry.get("tree")
            if tree is None:
                yield entry["hash"]
            else:
                yield from tree.values()

    def matches(self, configs: Mapping[str, Any]) -> bool:
        """Whether every permanence it used still has the same config."""
        return all(configs.get(name) == config for name, config in self.permanences.items())


class ContentStore:
    """The local run cache under `.tipi_cache/store/`."""

    def __init__(self, cache_dir: Path, warn: Callable[[str], None] = lambda _: None) -> None:
        self.root = cache_dir / STORE
        self.warn = warn

    def object_path(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2] / digest

    def record_path(self, key: str, name: str) -> Path:
        return self.root / "runs" / key / name

    def records(self, key: str) -> list[RunRecord]:
        """The runs recorded under `key`, newest first (unreadable ones are skipped)."""
        folder = self.root / "runs" / key
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if not name.endswith(".msgpack"):
                continue
            try:
                found.append(RunRecord.from_bytes((folder / name).read_bytes()))
            except (OSError, ValueError, KeyError, TypeError, msgpack.UnpackException) as exc:
                self.warn(f"skipping unreadable run record {folder / name}: {exc}")
        return sorted(found, key=lambda r: -r.finished)

    def lookup(
        self, key: str, configs: Mapping[str, Any], names: Iterable[str] | None = None
    ) -> RunRecord | None:
        """The newest run under `key` whose permanences match, whose outputs are `names`
        (when given) and whose objects are here."""
        wanted = None if names is None else set(names)
        for record in self.records(key):
            if wanted is not None and set(record.outputs) != wanted:
                continue
            if record.matches(configs) and all(
                self.object_path(h).exists() for h in record.objects()
            ):
                return record
        return None

    def save(
        self,
        key: str,
        step: str,
        permanences: Mapping[str, Any],
        outputs: Mapping[str, Path],
        hash_file: Callable[[str], str | None],
        seconds: float,
    ) -> RunRecord:
        """Keep `outputs` (name → final path) of a run that just succeeded."""
        entries: dict[str, dict[str, Any]] = {}
        for name, path in outputs.items():
            if path.is_dir():
                tree = {}
                for folder, dirs, files in os.walk(path):
                    dirs.sort()
                    for file in sorted(files):
                        full = os.path.join(folder, file)
                        digest = hash_file(full) or ""
                        self._keep(Path(full), digest)
                        tree[os.path.relpath(full, path)] = digest
                entries[name] = {"hash": hash_file(str(path)), "tree": tree}
            else:
                digest = hash_file(str(path)) or ""
                self._keep(path, digest)
                entries[name] = {"hash": digest}
        record = RunRecord(key, step, dict(permanences), entries, time.time(), seconds)
        write_atomic(self.record_path(key, record.name), record.to_bytes())
        return record

    def restore(self, record: RunRecord, staged: Mapping[str, Path]) -> None:
        """Copy the record's outputs to `staged` (name → staging path)."""
        for name, path in staged.items():
            entry = record.outputs[name]
            tree = entry.get("tree")
            if tree is None:
                shutil.copyfile(self.object_path(entry["hash"]), path)
                continue
            path.mkdir(parents=True, exist_ok=True)
            for relative, digest in tree.items():
                target = path / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.object_path(digest), target)

    def add_record(self, record: RunRecord) -> None:
        write_atomic(self.record_path(record.key, record.name), record.to_bytes())

    def all_records(self) -> Iterator[tuple[Path, RunRecord]]:
        runs = self.root / "runs"
        if not runs.is_dir():
            return
        for key in sorted(os.listdir(runs)):
            for record in self.records(key):
                yield self.record_path(key, record.name), record

    def all_objects(self) -> Iterator[tuple[str, Path]]:
        objects = self.root / "objects"
        if not objects.is_dir():
            return
        for prefix in os.listdir(objects):
            for name in os.listdir(objects / prefix):
                if not name.startswith("."):
                    yield name, objects / prefix / name

    def _keep(self, source: Path, digest: str) -> None:
        target = self.object_path(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{digest}.{uuid.uuid4().hex[:8]}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def run_key(
    type_name: str,
    code: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, Any],
    outputs: Mapping[str, str] | None = None,
) -> str:
    """What a run cache entry is filed under: the fingerprint without the permanences (which
    a step's record lists, since which ones it uses is known only after it ran), plus each
    output's name and suffix: two steps of one class writing `table.json` and `table.csv`
    make different bytes from the same fingerprint."""
    from tipi.cache.fingerprint import step_fingerprint

    shapes = {name: "".join(PurePosixPath(path).suffixes) for name, path in (outputs or {}).items()}
    return step_fingerprint(type_name, code, params, {"inputs": inputs, "outputs": shapes}, {})
