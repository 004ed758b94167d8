"""A damaged clean record is never a crash: tipi starts that part over (state/layout.py: any
state file may be lost or damaged). A record naming a path with a NUL byte (a bit flip, a
hand edit) made `os.stat` raise ValueError, and every make, fast path included, ended in an
internal error until the file was deleted by hand."""

from __future__ import annotations

import os
import time

import msgpack

from tests.conftest import PIPELINE, STEPS
from tipi._fastpath import parse, prove_noop
from tipi.engine import make


def age(root) -> None:
    past = time.time() - 60
    for path in root.rglob("*"):
        if ".tipi_cache" not in path.parts:
            os.utime(path, (past, past))


def test_a_clean_record_naming_a_path_with_a_nul_byte_proves_nothing(project):
    project.pipeline("numbers", PIPELINE, steps=STEPS)
    age(project.root)
    make("numbers")
    age(project.root)
    make("numbers")  # writes the clean record
    record = project.root / ".tipi_cache/pipelines/numbers/clean.msgpack"
    document = msgpack.unpackb(record.read_bytes(), raw=False)
    document["data"]["files"]["/tmp/x\0y"] = [1, 2, 3]
    record.write_bytes(msgpack.packb(document, use_bin_type=True))

    assert prove_noop(parse(["make"])) is None  # no proof: the full make answers
    summary = make("numbers")
    assert {r.outcome for r in summary.results} == {"skipped"}  # decided step by step
    assert prove_noop(parse(["make"])) is not None  # and the record is written anew
