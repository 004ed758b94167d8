"""Runs one step under torch.distributed: `torch.distributed.run` starts `nproc` ranks of
`python -m tipi.execution.rank`; rank 0 writes the step's outputs, the others write theirs
to a folder that is thrown away."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tipi.atomic import atomic_write
from tipi.errors import WorkerFailure
from tipi.execution.gpus import agree_with_nvml
from tipi.execution.orphans import die_with_parent
from tipi.execution.types import Result, Task
from tipi.state.layout import ranks_beside


def command(task: Task, spec: Path) -> list[str]:
    """The torchrun command line (one node; `--standalone` picks a free local port)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        f"--nproc-per-node={task.nproc}",
        "-m",
        "tipi.execution.rank",
        str(spec),
    ]


def ranks_folder(task: Task) -> Path:
    """Where the ranks' task file, reports and throw-away outputs go: beside the step's
    scratch folder, not in it (that folder holds only what the step keeps to resume)."""
    return ranks_beside(Path(task.scratch))


def launch(task: Task, sink: Callable[[str], object]) -> Result:
    """Run `task` on `task.nproc` ranks; every line they print goes to `sink`.

    Every rank resumes from the step's one scratch folder (rank 0 alone writes there), and
    torchrun gets SIGTERM when this process dies, even by SIGKILL, so no rank outlives it.
    """
    folder = ranks_folder(task)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        return _launch(task, folder, sink)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _launch(task: Task, folder: Path, sink: Callable[[str], object]) -> Result:
    spec = folder / "task.json"
    spec.write_text(json.dumps(task.to_data()))
    env = {**os.environ, "TIPI_NO_LIVE": "1", "PYTHONUNBUFFERED": "1"}
    agree_with_nvml(env)  # the ranks number devices as NVML and nvidia-smi do
    # torchrun would set 1 and print a banner about it; share the cores between the ranks.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // task.nproc)))
    started = time.perf_counter()
    process = subprocess.Popen(
        command(task, spec),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=task.root,
        preexec_fn=_die_with_parent,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            sink(line)
        code = process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGTERM)  # torchrun passes it on to every rank
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        raise
    seconds = time.perf_counter() - started
    return _collect(task, folder, code, seconds)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (torchrun passes it on to
    every rank)."""
    die_with_parent(signal.SIGTERM)


def _collect(task: Task, folder: Path, code: int, seconds: float) -> Result:
    reports = {}
    for path in sorted(folder.glob("rank*.json")):
        reports[int(path.stem[4:])] = json.loads(path.read_text())
    # The first rank to fail is the cause; the others usually fail because it went away.
    failed = sorted((r for r in reports.values() if r["outcome"] == "failed"), key=_when)
    if failed:
        f = failed[0]["failure"]
        failure = WorkerFailure(
            task.step,
            f["message"],
            details=f["details"],
            hint=f["hint"],
            exit_code=f["exit_code"],
        )
        return Result(task.step, "failed", seconds, error=failure)
    first = reports.get(0)
    # Every rank reported its step done (the report is a rank's last word but for the
    # barrier and teardown): a nonzero exit after that is the process group's teardown
    # (gloo's store may close under a rank still leaving, on a loaded machine), not the
    # step's work, which is whole.
    everyone = len(reports) == task.nproc
    if first is None or (code != 0 and not everyone):
        failure = WorkerFailure(
            task.step,
            f"step '{task.step}' failed: torch.distributed.run exited with code {code} "
            f"({len(reports)} of {task.nproc} rank(s) reported)",
            hint="see the step's output above for the ranks' errors",
        )
        return Result(task.step, "failed", seconds, error=failure)
    return Result(task.step, first["outcome"], seconds, tuple(first["used"]))


def _when(report: dict[str, object]) -> float:
    return float(report.get("finished", 0.0))  # type: ignore[arg-type]


def report(folder: Path, rank: int, result: Result) -> None:
    """Write one rank's result where the launcher reads it."""
    failure = result.error
    data = {
        "outcome": result.outcome,
        "finished": time.time(),
        "seconds": result.seconds,
        "used": list(result.used),
        "failure": None
        if failure is None
        else {
            "message": failure.message,
            "details": failure.details,
            "hint": failure.hint,
            "exit_code": failure.exit_code,
        },
    }
    # Read by the launcher as soon as the ranks exit, never after a power cut: no fsync.
    atomic_write(folder / f"rank{rank}.json", json.dumps(data), durable=False)
