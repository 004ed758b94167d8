"""The run cache keeps runs on a writer thread beside the make (tipi/step_cache.py): a kill
at each point of a keep loses only run cache entries, never a committed output or trace.

Fault injection: a driver process runs `tipi make` with the store's writes patched to stop
(or to kill the process) at one point, and a step that kills the make; the next make must
rerun exactly the steps whose outputs were not committed, and the run cache must hold only
whole runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tipi.runcache.content import ContentStore

pytestmark = pytest.mark.slow  # starts processes

STEPS = """
import os
import signal
from tipi import PipelineProcess


class Touch(PipelineProcess):
    def __init__(self, controller, force: bool = False, i: int = 0) -> None:
        super().__init__(controller, force)
        self.i = i

    def execute(self) -> None:
        with open("runs.log", "a") as f:
            f.write(f"{self.i}\\n")
        if os.environ.get("KILL_AT") == str(self.i):
            os.kill(os.getpid(), signal.SIGKILL)  # the make dies while this step runs
        size = sum(len(p.read_bytes()) for p in self.inputs.values())
        self.outputs["out"].write_text(f"{self.i} {size}\\n")
"""

# Patched into the make's process: where the keeper thread stops or dies.
DRIVER = """
import os, signal, sys, threading
import tipi.runcache.content as content

point = os.environ.get("KEEP_POINT")
if point == "queued":  # a keep never gets written: it stays queued until the kill
    content.ContentStore.save = lambda *a, **k: threading.Event().wait()
elif point == "record":  # objects written, then killed while writing the record
    def add_record(self, record):
        with open(self._temporary(), "xb") as out:
            out.write(record.to_bytes()[:5])
        os.kill(os.getpid(), signal.SIGKILL)
    content.ContentStore.add_record = add_record
os.environ["TIPI_NO_FAST"] = "1"
sys.argv = ["tipi", "make", "-q"]
from tipi.cli.app import main
main()
"""

N = 4


def _project(root: Path) -> None:
    folder = root / "pipelines" / "chain"
    folder.mkdir(parents=True)
    (folder / "steps.py").write_text(STEPS)
    lines = []
    for i in range(N):
        ins = f'i = "out/{i - 1}.txt"' if i else ""
        lines += [
            f"[processes.s{i}]",
            'type = "Touch"',
            f"params = {{ i = {i} }}",
            f"inputs = {{ {ins} }}",
            f'outputs = {{ out = "out/{i}.txt" }}',
            "",
        ]
    (folder / "pipeline.toml").write_text("\n".join(lines))


def _make(root: Path, **env: str) -> int:
    full = {k: v for k, v in os.environ.items() if k not in ("KILL_AT", "KEEP_POINT")}
    full.update(env)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER], cwd=root, env=full, capture_output=True, timeout=120
    )
    return done.returncode


def _runs(root: Path) -> list[int]:
    log = root / "runs.log"
    runs = [int(line) for line in log.read_text().split()] if log.exists() else []
    log.unlink(missing_ok=True)
    return runs


def _records(root: Path) -> int:
    store = ContentStore(root / ".tipi_cache", lambda message: None)
    count = 0
    for _, record in store.all_records():
        assert store.verify(record) == [], record.describe()
        assert all(store.has_object(d) for d in record.objects())
        count += 1
    return count


def _expected(root: Path) -> None:
    size = 0
    for i in range(N):
        text = (root / "out" / f"{i}.txt").read_text()
        assert text == f"{i} {size}\n"
        size = len(text)


@pytest.mark.parametrize("point", ["queued", "record"])
def test_a_kill_with_keeps_unwritten_loses_only_run_cache_entries(tmp_path: Path, point: str):
    _project(tmp_path)
    kill_at = "2" if point == "queued" else ""
    assert _make(tmp_path, KILL_AT=kill_at, KEEP_POINT=point) == -9
    # "queued": s0 and s1 were committed (outputs moved, traces appended), their keeps never
    # written, and s2 killed the make; "record": the keeper died writing s0's record, with
    # the make's thread somewhere in s1..s3 (s0 was committed before its keep was queued).
    ran = _runs(tmp_path)
    assert ran == [0, 1, 2] if point == "queued" else ran[0] == 0
    assert _records(tmp_path) == 0  # nothing half-kept is visible as a run
    assert _make(tmp_path) == 0
    rerun = _runs(tmp_path)
    if point == "queued":
        assert rerun == [2, 3]  # exactly the steps not committed
    else:  # a suffix: s0 at least was committed and is not rerun
        assert rerun == list(range(N - len(rerun), N)) and 0 not in rerun
    _expected(tmp_path)
    assert _records(tmp_path) == len(rerun)  # the runs this make kept, all whole
    assert _make(tmp_path) == 0
    assert _runs(tmp_path) == []


def test_a_make_ends_with_every_run_kept(tmp_path: Path):
    """The make waits for its queued keeps: every run is in the store when it returns."""
    _project(tmp_path)
    assert _make(tmp_path) == 0
    assert _runs(tmp_path) == list(range(N))
    assert _records(tmp_path) == N
