"""Reads the records of an offline W&B run file (`run-*.wandb`) back, for tests.

The file is in LevelDB's log format (a 7-byte `:W&B` header, 32 KiB blocks, records split into
FULL/FIRST/MIDDLE/LAST chunks of [crc32 u32, length u16, type u8, data]); each record is a
`wandb.proto.wandb_internal_pb2.Record`. wandb itself no longer ships a Python reader.
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """The file's records, once it is whole: wandb's service may still be writing the last
    ones for a moment after `run.finish()` returns (seen on a loaded CI machine), so wait up
    to 15 s for the run's `exit` record."""
    found = _read(path)
    deadline = time.monotonic() + 15
    while not any(r.WhichOneof("record_type") == "exit" for r in found):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
        found = _read(path)
    yield from found


def _read(path: Path) -> list[Any]:
    from google.protobuf.message import DecodeError

    found: list[Any] = []
    with contextlib.suppress(DecodeError, struct.error):  # a record still being written
        found.extend(_records(path))  # keeps the records read before it
    return found


def _records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, _magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B", f"not a W&B run file: {ident!r}"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        pending += chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def history(path: Path) -> list[dict[str, str]]:
    """Every logged row (metric → JSON value), in order."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): item.value_json
                    for item in record.history.item
                }
            )
    return rows


def config(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "config":
            found.update(
                {u.key or "/".join(u.nested_key): u.value_json for u in record.config.update}
            )
    return found


def run(path: Path) -> dict[str, Any]:
    """What the run record says: name, group, job_type, tags, notes, entity and config (key →
    decoded JSON), as the W&B UI would show them once synced."""
    import json

    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            r = record.run
            return {
                "name": r.display_name,
                "group": r.run_group,
                "job_type": r.job_type,
                "tags": list(r.tags),
                "notes": r.notes,
                "entity": r.entity,
                "project": r.project,
                "config": {
                    u.key or "/".join(u.nested_key): json.loads(u.value_json)
                    for u in r.config.update
                },
            }
    raise AssertionError(f"no run record in {path}")
