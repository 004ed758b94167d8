"""A state or output folder tipi may not use is a one-line error naming it (exit 2), never an
internal error: real `tipi make` processes run as a user the file permissions apply to (as root,
without the capabilities that let root ignore them)."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tipi.engine import Engine
from tipi.errors import AccessError
from tipi.state.store import write_document
from tipi.uptodate.clean import KIND

STEPS = """
from pathlib import Path

from tipi import PipelineProcess


class WriteNumbers(PipelineProcess):
    def execute(self) -> None:
        self.outputs["numbers"].write_text("1 2 3")


class SumNumbers(PipelineProcess):
    def __init__(self, controller, force: bool = False, offset: int = 0) -> None:
        super().__init__(controller, force)
        self.offset = offset

    def execute(self) -> None:
        with open("ran.log", "a") as log:  # the project root stays writable
            log.write("total\\n")
        total = self.offset + sum(int(x) for x in self.inputs["numbers"].read_text().split())
        self.outputs["total"].write_text(str(total))
"""

PIPELINE = """
[processes.numbers]
type = "WriteNumbers"
outputs = { numbers = "out/numbers.txt" }

[processes.total]
type = "SumNumbers"
inputs = { numbers = "out/numbers.txt" }
outputs = { total = "out/total.txt" }
"""

RERUN = ("make", "-p", "p", "-q", "--set", "total.offset=1")
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _as_a_user() -> None:
    """preexec_fn: as root, give up what lets root ignore file permissions (for this process
    and what it executes); a normal user has nothing to give up."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def tipi(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tipi", *args],
        cwd=root,
        capture_output=True,
        text=True,
        preexec_fn=_as_a_user,
        env={**os.environ, "TIPI_NO_LIVE": "1", "NO_COLOR": "1", "COLUMNS": "200"},
        timeout=120,
    )


@pytest.fixture(scope="module")
def permissions_apply(tmp_path_factory) -> None:
    """Skip where this user cannot be made to meet a permission it lacks."""
    if sys.platform == "win32":
        pytest.skip("POSIX permissions")
    closed = tmp_path_factory.mktemp("closed")
    closed.chmod(0)
    try:
        probe = subprocess.run(
            [sys.executable, "-c", f"import os; os.listdir({str(closed)!r})"],
            preexec_fn=_as_a_user,
            capture_output=True,
        )
    except subprocess.SubprocessError:  # prctl refused: no CAP_SETPCAP here
        probe = None
    finally:
        closed.chmod(0o700)
    if probe is None or probe.returncode == 0:
        pytest.skip("cannot run tipi as a user that file permissions apply to")


@pytest.fixture
def made(project, permissions_apply) -> Path:
    """A project made; `RERUN` then makes it with a param that `total` never ran with."""
    project.pipeline("p", PIPELINE, steps=STEPS)
    Engine("p").make()
    (project.root / "ran.log").unlink()
    yield project.root
    for folder, dirs, files in os.walk(project.root):  # let pytest remove it
        for name in dirs + files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | stat.S_IRWXU)


REFUSED = [
    (".tipi_cache/store", 0o000, ".tipi_cache/store cannot be entered"),
    (".tipi_cache/store/packs", 0o500, ".tipi_cache/store/packs cannot be written"),
    (".tipi_cache/pipelines/p", 0o000, ".tipi_cache/pipelines/p cannot be entered"),
    (".tipi_cache/pipelines/p", 0o500, ".tipi_cache/pipelines/p cannot be written"),
    (".tipi_cache", 0o000, ".tipi_cache cannot be entered"),
    (".tipi_cache", 0o500, ".tipi_cache cannot be written"),
    ("out", 0o500, "out cannot be written"),
    ("out", 0o000, "out cannot be entered"),
    ("out/numbers.txt", 0o000, "out/numbers.txt cannot be read"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("target", "mode", "named"), REFUSED)
def test_a_folder_tipi_may_not_use_is_a_one_line_error(made, target, mode, named):
    os.chmod(made / target, mode)
    result = tipi(made, *RERUN)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert named in errors[0] and "permission denied" in errors[0]
    assert f"mode {mode:03o}" in errors[0]
    hint = result.stderr.split("hint: ", 1)[1]
    assert "chmod" in hint and target in hint
    # found before the step ran, not after it (its outputs then had nowhere to go)
    assert not (made / "ran.log").exists()


@pytest.mark.slow
def test_what_tipi_can_do_without_is_a_warning(made):
    """The runs folder (history for `tipi runs`), a locked-away clean record and a lock file
    of the user's with no permissions: the make goes on, and says so."""
    clean = made / ".tipi_cache/pipelines/p/clean.msgpack"
    write_document(clean, KIND, {"steps": ["numbers", "total"], "files": {}})
    os.chmod(clean, 0)
    os.chmod(made / ".tipi_cache/runs", 0)
    os.chmod(made / ".tipi_cache/lock", 0)
    result = tipi(made, *RERUN)
    assert result.returncode == 0, result.stderr
    assert "cannot be recorded" in result.stderr
    assert not clean.exists()  # forgotten, as before any make that changes outputs
    assert (made / "out/total.txt").read_text() == "7"
    assert (made / "ran.log").read_text() == "total\n"


@pytest.mark.slow
def test_the_debug_flag_shows_where_the_refusal_happened(made):
    os.chmod(made / ".tipi_cache/pipelines/p", 0o500)
    result = tipi(made, "--debug", *RERUN)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "PermissionError" in result.stderr
    assert "error: permission denied: .tipi_cache/pipelines/p cannot be written" in result.stderr


def test_other_os_errors_stay_what_they_were(tmp_path):
    assert AccessError.from_os_error(OSError(errno.ENOSPC, "No space left", "x")) is None
    assert AccessError.from_os_error(PermissionError(errno.EACCES, "denied")) is None  # no path
    assert AccessError.from_os_error(ValueError("x")) is None
    refused = AccessError.from_os_error(
        PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "f"))
    )
    assert refused is not None and refused.exit_code == 2


@pytest.mark.slow
def test_clean_names_the_folder_it_may_not_empty(made):
    """rmtree names an entry alone (`plan.msgpack`) in its errors: the error still names the
    folder to fix, not a file of that name in the working directory."""
    os.chmod(made / ".tipi_cache/pipelines/p", 0o500)
    result = tipi(made, "clean", "-p", "p")
    assert result.returncode == 2, result.stderr
    error = ".tipi_cache/pipelines/p cannot be written (mode 500"
    assert f"error: permission denied: {error}" in result.stderr
    assert "chmod -R u+rwX .tipi_cache/pipelines/p`" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("target", [".tipi_cache/runs", ".tipi_cache/runs/p"])
def test_runs_that_cannot_be_listed_are_a_warning_not_no_runs(made, target):
    os.chmod(made / target, 0)
    result = tipi(made, "runs")
    assert result.returncode == 0, result.stderr
    assert f"warning: {target} cannot be read: Permission denied" in result.stderr
    assert "Traceback" not in result.stderr
