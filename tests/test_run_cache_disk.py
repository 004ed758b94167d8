"""The run cache on a full disk and under SIGKILL: every write into a store is whole or
absent, a temporary file never outlives the next make or push, and the next make ends with
the right bytes."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tipi.runcache.content
import tipi.runcache.remote
from tipi.runcache.content import ContentStore, copy_hashing
from tipi.runcache.remote import RemoteStore

# every test here starts processes (or takes seconds): not in the fast tier
pytestmark = pytest.mark.slow

BLOB_STEPS = """
import os
import random
from tipi import PipelineProcess


class Blob(PipelineProcess):
    def __init__(self, controller, force: bool = False, size: int = 1024, seed: int = 0) -> None:
        super().__init__(controller, force)
        self.size, self.seed = size, seed

    def execute(self) -> None:
        with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
            f.write(self.name + "\\n")
        folder = self.outputs["blob"]
        folder.mkdir()
        rng = random.Random(self.seed)
        for i in range(4):
            (folder / f"part{i}.bin").write_bytes(rng.randbytes(self.size // 4))
"""


def blob_pipeline(size: int) -> str:
    return f"""
[processes.blob]
type = "Blob"
params = {{ size = {size}, seed = 0 }}
outputs = {{ blob = "out/blob" }}
"""


def expected_blob(size: int, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"part{i}.bin": rng.randbytes(size // 4) for i in range(4)}


def assert_blob(root: Path, size: int, seed: int) -> None:
    folder = root / "out" / "blob"
    assert sorted(p.name for p in folder.iterdir()) == [f"part{i}.bin" for i in range(4)]
    for name, data in expected_blob(size, seed).items():
        assert (folder / name).read_bytes() == data, name


def temporaries(folder: Path) -> list[Path]:
    """Temporary files below `folder`: in `tmp/`, or an older tipi's `.<name>.tmp`."""
    if not folder.exists():
        return []
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.parent.name == "tmp"]


def assert_sound(store: ContentStore) -> int:
    """Every record's objects are here with the bytes their names say; returns how many runs."""
    count = 0
    for _, record in store.all_records():
        assert store.verify(record) == [], record.describe()
        assert all(store.has_object(d) for d in record.objects()), record.describe()
        count += 1
    return count


# A full disk: a size-limited tmpfs mounted over the folder where tipi can (root, Linux);
# otherwise every copy into that folder fails with ENOSPC halfway through.


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], str]]:
    mounted: list[Path] = []
    simulated: list[str] = []

    def fill(folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        if os.environ.get("TIPI_TEST_SIMULATE_FULL_DISK") != "1" and _mount_tmpfs(folder):
            mounted.append(folder)
            return "tmpfs"
        simulated.append(str(folder))

        def copy_until_full(source, target):  # type: ignore[no-untyped-def]
            name = str(getattr(target, "name", "") or getattr(target, "path", ""))
            if not any(name.startswith(f) for f in simulated):
                return copy_hashing(source, target)
            target.write(source.read(32 * 1024))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(tipi.runcache.content, "copy_hashing", copy_until_full)
        monkeypatch.setattr(tipi.runcache.remote, "copy_hashing", copy_until_full)
        return "simulated"

    yield fill
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def _mount_tmpfs(folder: Path) -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount"):
        return False
    command = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)]
    return subprocess.run(command, check=False, capture_output=True).returncode == 0


SIZE = 1 << 20  # 1 MiB: far more than the 64 KiB disk


def test_a_full_local_store_keeps_nothing_and_leaves_nothing(project, cli, full_disk):
    project.pipeline("blob", blob_pipeline(SIZE), steps=BLOB_STEPS)
    store = project.root / ".tipi_cache" / "store"
    full_disk(store)
    result = cli("make")
    assert result.exit_code == 0, result.stderr
    assert "could not keep the outputs of 'blob' in the run cache" in result.stderr
    assert "No space left on device" in result.stderr
    assert_blob(project.root, SIZE, 0)
    assert temporaries(store) == [] and not list(store.glob("runs/*/*"))
    assert cli("make").exit_code == 0


def test_a_full_remote_gets_nothing_half_written(project, cli, full_disk, tmp_path):
    project.pipeline("blob", blob_pipeline(SIZE), steps=BLOB_STEPS)
    remote = tmp_path.parent / f"{tmp_path.name}-remote"
    full_disk(remote)
    result = cli("make", "--remote", str(remote))
    assert result.exit_code == 0, result.stderr
    assert "could not push to the remote cache" in result.stderr
    assert "No space left on device" in result.stderr
    assert temporaries(remote) == [] and not list(remote.glob("runs/*/*"))
    result = cli("cache", "push", "--remote", str(remote))
    assert result.exit_code == 1 and "could not push to" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert temporaries(remote) == [] and not list(remote.glob("runs/*/*"))
    assert assert_sound(ContentStore(project.root / ".tipi_cache")) == 1


def test_pulling_into_a_full_store_runs_the_step_and_leaves_nothing(
    project, cli, full_disk, tmp_path, monkeypatch
):
    project.pipeline("blob", blob_pipeline(SIZE), steps=BLOB_STEPS)
    remote = tmp_path / "remote"
    assert cli("make", "--remote", str(remote)).exit_code == 0
    victim = tmp_path / "victim"
    shutil.copytree(project.root / "pipelines", victim / "pipelines")
    store = victim / ".tipi_cache" / "store"
    full_disk(store)
    monkeypatch.chdir(victim)
    result = cli("make", "--remote", str(remote))
    assert result.exit_code == 0, result.stderr
    assert f"remote cache {remote}: [Errno {errno.ENOSPC}]" in result.stderr
    assert (victim / "runs.log").read_text().split() == ["blob"]  # it ran instead
    assert_blob(victim, SIZE, 0)
    assert temporaries(store) == []
    result = cli("cache", "pull", "--remote", str(remote))
    assert result.exit_code == 1 and "could not pull from" in result.stderr
    assert temporaries(store) == [] and not list(store.glob("runs/*/*"))


# SIGKILL at random points while a make restores from, or pushes to, a directory remote.

KILL_SIZE = 32 << 20  # four 8 MiB files: restoring or pushing them takes a while


def _make(root: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "tipi", "make", *args]
    return subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


Ready = Callable[[subprocess.Popen], bool]


def _kill_when(process: subprocess.Popen, ready: Ready, delay: float) -> bool:
    """SIGKILL `process` `delay` s after `ready(process)` holds; False if it finished first."""
    deadline = time.monotonic() + 20
    while process.poll() is None and not ready(process) and time.monotonic() < deadline:
        time.sleep(0.0005)
    time.sleep(delay)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()  # reaped: its pid no longer counts as a live writer
    return True


def _started(process: subprocess.Popen) -> bool:
    return True


def _writes_temporary(folder: Path) -> Ready:
    """True once the process has a temporary file in `folder` (named after its pid)."""
    return lambda process: any(folder.glob(f".*.{process.pid}.*.tmp"))


def _stages(root: Path) -> Ready:
    """True once the process copies outputs into its staging folder (newer than it)."""
    started = time.time()

    def staging(process: subprocess.Popen) -> bool:
        for path in root.glob(".tipi_cache/staging/*/*/*/*"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime >= started:
                    return True
        return False

    return staging


def test_killing_a_make_that_restores_from_a_remote_loses_nothing(project, cli, tmp_path):
    project.pipeline("blob", blob_pipeline(KILL_SIZE), steps=BLOB_STEPS)
    remote = tmp_path / "remote"
    assert cli("make", "--remote", str(remote)).exit_code == 0
    victim = tmp_path / "victim"
    shutil.copytree(project.root / "pipelines", victim / "pipelines")
    seed = int(os.environ.get("TIPI_TEST_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    downloading = _writes_temporary(victim / ".tipi_cache" / "store" / "tmp")
    moments = [
        (_started, rng.uniform(0.1, 0.5)),  # anywhere, startup included
        (downloading, rng.uniform(0, 0.02)),
        (downloading, rng.uniform(0, 0.02)),
        (None, rng.uniform(0, 0.01)),  # copying into staging
        (None, rng.uniform(0, 0.01)),
        (_started, rng.uniform(0.1, 0.5)),
    ]
    killed = 0
    for ready, delay in moments:
        if (victim / "out" / "blob").exists():  # the last one finished: start again
            shutil.rmtree(victim / "out")
            shutil.rmtree(victim / ".tipi_cache")
        process = _make(victim, "--remote", str(remote))
        killed += _kill_when(process, ready or _stages(victim), delay)
    assert killed >= 3, f"seed {seed}: the makes finished before they could be killed"

    final = _make(victim, "--remote", str(remote))
    _, errors = final.communicate(timeout=60)
    assert final.returncode == 0, (seed, errors.decode())
    assert_blob(victim, KILL_SIZE, 0)
    assert not (victim / "runs.log").exists()  # restored every time, never ran
    store = victim / ".tipi_cache" / "store"
    assert temporaries(store) == [] and temporaries(remote) == [], seed
    assert assert_sound(ContentStore(victim / ".tipi_cache")) == 1


def test_killing_a_make_that_pushes_to_a_remote_loses_nothing(project, cli, tmp_path):
    project.pipeline("blob", blob_pipeline(KILL_SIZE), steps=BLOB_STEPS)
    remote = tmp_path / "remote"
    seed = int(os.environ.get("TIPI_TEST_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    keeping = _writes_temporary(project.root / ".tipi_cache" / "store" / "tmp")
    uploading = _writes_temporary(remote / "tmp")
    moments = [
        (_started, rng.uniform(0.1, 0.6)),  # anywhere, startup included
        (keeping, rng.uniform(0, 0.02)),
        (uploading, rng.uniform(0, 0.02)),
        (uploading, rng.uniform(0, 0.02)),
        (uploading, rng.uniform(0, 0.04)),
        (_started, rng.uniform(0.1, 0.6)),
    ]
    killed = 0
    for variant, (ready, delay) in enumerate(moments, start=1):
        process = _make(project.root, "--remote", str(remote), "--set", f"blob.seed={variant}")
        killed += _kill_when(process, ready, delay)
    assert killed >= 3, f"seed {seed}: the makes finished before they could be killed"

    final = _make(project.root, "--remote", str(remote), "--set", "blob.seed=99")
    _, errors = final.communicate(timeout=60)
    assert final.returncode == 0, (seed, errors.decode())
    assert_blob(project.root, KILL_SIZE, 99)
    # Runs a killed make kept but never pushed go up with the next push. What the killed
    # pushes left in the remote's tmp/ stays until idle for an hour (a pid says nothing about
    # another machine's live push), then a push removes it.
    result = cli("cache", "push", "--remote", str(remote))
    assert result.exit_code == 0, (seed, result.stderr)
    for left in temporaries(remote):
        os.utime(left, (time.time() - 7200, time.time() - 7200))
    assert cli("cache", "push", "--remote", str(remote)).exit_code == 0
    store = ContentStore(project.root / ".tipi_cache")
    assert temporaries(store.root) == [] and temporaries(remote) == [], seed
    kept = assert_sound(store)
    warnings: list[str] = []
    fresh = ContentStore(tmp_path / "fresh", warnings.append)
    assert RemoteStore(str(remote), warnings.append).pull(fresh).records == kept
    assert warnings == []  # every object came down whole: pull checks each one


def test_temporary_files_of_live_writers_survive_a_sweep(tmp_path):
    store = ContentStore(tmp_path)
    folder = store.root / "tmp"
    folder.mkdir(parents=True)
    mine = folder / tipi.runcache.content.temporary_name()
    mine.write_bytes(b"being written")
    with subprocess.Popen([sys.executable, "-c", "pass"]) as gone:
        gone.wait()
    dead = folder / mine.name.replace(f".{os.getpid()}.", f".{gone.pid}.")
    dead.write_bytes(b"left by a killed make")
    elsewhere = folder / ".otherhost.1.abcdef12.tmp"
    elsewhere.write_bytes(b"another machine's, recent")
    old = folder / ".otherhost.2.abcdef12.tmp"
    old.write_bytes(b"another machine's, idle for two hours")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert store.sweep() == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted([mine.name, elsewhere.name])
