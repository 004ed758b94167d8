"""RunRecorder: the record of a make's run (`tipi runs`). The make session (build.py) opens
and closes it; the step lifecycle (step.py) tells it each step's start and end, from the
same place as it tells the reporter.

A make is a run once it runs or restores a step: nothing is written for a no-op make or a dry
run. The record is written when the first step starts (status "running"), again as each step
ends (so a make that crashes leaves what it did, shown as unfinished), and when the make ends
(ok, failed or interrupted). Recording never fails a make: a record that cannot be written is
one warning.

    recorder = RunRecorder(root, pipeline, run_id=run_id, warn=reporter.warning)
    recorder.consider(plan.steps, order)         # the steps this make considers
    with recorder:                               # ends the run: ok / failed / interrupted
        recorder.step_started("train")           # first call: the record is written
        recorder.logged("train", {"loss": 0.1})  # last value of each logged scalar
        recorder.step_ended("train", "ran", seconds=12.5, permanences=trace.permanences)
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from tipi.errors import PipelineInterrupted
from tipi.redact import conceal, hide_secrets, redact_command, secret_values
from tipi.runid import new_run_id
from tipi.runs.git import git_state
from tipi.runs.metrics import read_metrics
from tipi.runs.record import RunRecord, StepRun, is_number, plain
from tipi.runs.store import RunStore

Warn = Callable[[str], None]
ENDED = ("ran", "restored", "failed", "interrupted", "skipped", "not run")
WRITE_EVERY = 1.0  # seconds: step ends between writes are written with the next one


class PlannedLike(Protocol):
    """What the recorder reads of a planned step (tipi.planning.PlannedStep)."""

    @property
    def type(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...


class RunRecorder:
    """The record of one make of `pipeline` in the project at `root`.

    Args:
        run_id: the make's run id (default: a new one, tipi.runid).
        variant: `sweep/variant` when the make is a sweep variant's.
        command: the command line (default: sys.argv).
        warn: hears about a record that cannot be written and a metrics file that cannot
            be read.
        git: probe the project's git commit when the run starts (False: leave it None).
    """

    def __init__(
        self,
        root: Path,
        pipeline: str,
        *,
        run_id: str | None = None,
        variant: str | None = None,
        command: Sequence[str] | None = None,
        warn: Warn | None = None,
        git: bool = True,
    ) -> None:
        started = time.time()
        self.root = root
        self.warn: Warn = warn or (lambda text: None)
        self.store = RunStore(root, self.warn)
        self.record = RunRecord(
            id=run_id or new_run_id(started),
            pipeline=pipeline,
            started=started,
            command=redact_command(sys.argv if command is None else command),
            variant=variant,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        self.metrics_files: dict[str, dict[str, Path]] = {}
        self.written = False  # the run has started: its file exists
        self.closed = False
        self._git = git
        self._write_failed = False
        self._last_write = 0.0
        # Read once per make, as step_facts.py does: reading them per step cost more than
        # the rest of a step's record
        self._secrets = secret_values()

    @property
    def id(self) -> str:
        return self.record.id

    def consider(
        self, steps: Mapping[str, PlannedLike], order: Iterable[str] | None = None
    ) -> None:
        """The steps this make considers (`order`, default: all of `steps`): their types,
        resolved params and metrics files (a step's `metrics`, name → path relative to the
        project root, when it has one). Writes nothing."""
        for name in steps if order is None else order:
            step = steps[name]
            params = conceal(plain(dict(step.params)), self._secrets)
            self.record.steps[name] = StepRun(type=step.type, params=params)
            files = getattr(step, "metrics", None) or {}
            self.metrics_files[name] = {key: self.root / path for key, path in files.items()}

    def step_started(self, name: str) -> None:
        """`name` is about to run or be restored: the first call starts the run (the record
        is written, status running)."""
        self._step(name).outcome = "running"
        if not self.written:
            if self._git:
                self.record.commit, self.record.dirty = git_state(self.root)
            self._write()

    def step_ended(
        self,
        name: str,
        outcome: str,
        *,
        seconds: float | None = None,
        permanences: Mapping[str, Any] | None = None,
        error: str = "",
    ) -> None:
        """`name` ran, was restored, failed or was interrupted (`outcome`); for ran and
        restored, call it once its outputs are in place: its metrics files are read now.

        Args:
            permanences: name → config of the permanences the step used (its trace's).
            error: the failure; its first line is kept, its secrets hidden.
        """
        if outcome not in ENDED:
            raise ValueError(f"outcome {outcome!r} is not one of {', '.join(ENDED)}")
        if not self.written:
            self.step_started(name)
        step = self._step(name)
        step.outcome = outcome
        step.seconds = seconds
        error = hide_secrets(error).strip() if error else ""  # hidden whole, then cut
        step.error = error.splitlines()[0] if error else ""
        if permanences is not None:
            step.permanences = conceal(plain(dict(permanences)), self._secrets)
        if outcome in ("ran", "restored") and self.metrics_files.get(name):
            step.metrics = read_metrics(name, self.metrics_files[name], self.warn)
        # Rewriting the whole record after each of a thousand quick steps would cost more
        # than the steps: a crash loses at most the last second of step ends.
        if outcome == "failed" or time.monotonic() - self._last_write >= WRITE_EVERY:
            self._write(durable=False)

    def started(self, name: str) -> bool:
        """True while `name` has started in this run and not ended."""
        step = self.record.steps.get(name)
        return step is not None and step.outcome == "running"

    def logged(self, name: str, scalars: Mapping[str, Any]) -> None:
        """The last value of each scalar `name` logged (numbers only; later calls win).
        Written with the step's end (or the run's)."""
        self._step(name).logged.update({str(k): v for k, v in scalars.items() if is_number(v)})

    def close(self, status: str | None = None) -> RunRecord | None:
        """End the run: `status` "ok", "failed" or "interrupted" (default: failed when a
        step failed, else ok). Steps still running are marked interrupted. Nothing happens
        when no step started (a no-op make is no run) or the run is closed already.

        Returns:
            the record, when the run was written.
        """
        if self.closed or not self.written:
            self.closed = True
            return self.record if self.written else None
        self.closed = True
        if status is None:
            status = "failed" if self.record.with_outcome("failed") else "ok"
        for step in self.record.steps.values():
            if step.outcome == "running":
                step.outcome = "interrupted"
        self.record.status = status
        self.record.ended = time.time()
        self._write()
        return self.record

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        elif issubclass(kind, KeyboardInterrupt | PipelineInterrupted):
            self.close("interrupted")
        else:
            self.close("failed")

    def _step(self, name: str) -> StepRun:
        return self.record.steps.setdefault(name, StepRun())

    def _write(self, durable: bool = True) -> None:
        self._last_write = time.monotonic()
        try:
            self.store.write(self.record, durable=durable)
        except OSError as exc:
            if not self._write_failed:
                self.warn(
                    f"run {self.id} cannot be recorded ({exc.strerror or exc}); "
                    "`tipi runs` will not show it whole"
                )
            self._write_failed = True
            return
        self.written = True
