"""Which run made which outputs, for `tipi report`: a step restored from the run cache was
not made by the run that restored it, and the outputs in place now may be an older run's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tipi.cli.logged import Logged, from_logs
from tipi.runs.record import RunRecord, plain


@dataclass
class Runs:
    """Every run known of the pipeline, newest first: recorded, or only logged (then its
    record is made up from its logger folder), and which run made which outputs.

    A run's step that ran was made by that run. One it restored from the run cache was made
    by the newest older run that ran the step with the same params from inputs made by the
    same runs (its predecessors' makers agree). The outputs in place now were made by the
    newest run that ran the step with the params of its trace from the inputs in place.

    Attributes:
        traces: step → the params of the outputs in place (its trace's).
        preds: step → the steps whose outputs it reads.
    """

    records: dict[str, RunRecord]
    logged: dict[str, Logged]
    traces: dict[str, Any] = field(default_factory=dict)
    preds: dict[str, list[str]] = field(default_factory=dict)
    _made: dict[tuple[str, str], str | None] = field(default_factory=dict, repr=False)
    _now: dict[str, str | None] = field(default_factory=dict, repr=False)

    @property
    def ids(self) -> list[str]:
        return sorted({*self.records, *self.logged}, reverse=True)

    def record(self, run: str) -> RunRecord:
        found = self.records.get(run)
        if found is None:
            found = self.records[run] = from_logs(self.logged[run])
        return found

    def older(self, run: str) -> list[str]:
        ids = self.ids
        return ids[ids.index(run) + 1 :]

    def source(self, run: str, step: str) -> str | None:
        """The run whose curves show `step` of `run`: itself, unless it restored the step."""
        found = self.record(run).steps.get(step)
        if found is None or found.outcome != "restored":
            return run

        def upstream(pred: str) -> str | None:
            return self.made(run, pred)

        return self.ran(step, found.params, self.older(run), upstream, strict=True)

    def made(self, run: str, step: str) -> str | None:
        """The run that made the outputs of `step` that `run` read or left in place."""
        if (run, step) not in self._made:
            self._made[run, step] = None
            for candidate in [run, *self.older(run)]:
                found = self.record(candidate).steps.get(step)
                outcome = found.outcome if found is not None else None
                if outcome in ("ran", "restored"):
                    self._made[run, step] = self.source(candidate, step)
                    break
        return self._made[run, step]

    def in_place(self, step: str) -> str | None:
        """The run that made the outputs of `step` in place now; None when unknown."""
        if step not in self._now:
            self._now[step] = None
            if step in self.traces:
                self._now[step] = self.ran(step, self.traces[step], self.ids, self.in_place)
        return self._now[step]

    def ran(
        self,
        step: str,
        params: Any,
        candidates: Sequence[str],
        upstream: Callable[[str], str | None],
        strict: bool = False,
    ) -> str | None:
        """The first of `candidates` that ran `step` with `params` from the outputs
        `upstream` says made its inputs (unless `strict`, the first that ran it at all when
        no run says its params)."""
        fallback = None
        for run in candidates:
            found = self.record(run).steps.get(step)
            if found is None or found.outcome != "ran" or not self._inputs(run, step, upstream):
                continue
            same = same_params(params, found.params)
            if same:
                return run
            if same is None and fallback is None and not strict:
                fallback = run
        return fallback

    def _inputs(self, run: str, step: str, upstream: Callable[[str], str | None]) -> bool:
        """Whether `step`'s inputs in `run` were made by the runs `upstream` says (where
        both are known)."""
        for pred in self.preds.get(step, ()):
            want, had = upstream(pred), self.made(run, pred)
            if want is not None and had is not None and want != had:
                return False
        return True


def same_params(a: Any, b: Any) -> bool | None:
    """Whether two steps' params agree on the params both name; None when one is unknown."""
    a, b = plain(dict(a or {})), plain(dict(b or {}))
    shared = [k for k in a if k in b]
    if not shared:
        return None
    return all(json.dumps(a[k], sort_keys=True) == json.dumps(b[k], sort_keys=True) for k in shared)
