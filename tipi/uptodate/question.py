"""Is this selection up to date? The one answer both doors ask, and what a make says when it is.

A make has nothing to do when the clean record (clean.py) proves every selected step up to date
and it may be trusted to: nothing is forced (-f/-F), nothing is rehashed (--rehash), the plan was
read from its file (the record vouches for that file, not for a plan made now) and no selected
step is volatile or forced in its definition (those run every time). Then a make prints
`report_up_to_date`'s events and nothing else.

Both doors call `is_up_to_date` and `report_up_to_date`: the full make (build.Build, behind
Engine.make) with what its plan says of the selected steps, and the `tipi` executable's fast
path (tipi/_fastpath.py) with the same read off the plan file's summary (planfile.peek_plan),
before Typer, Rich or the engine are imported; planfile.py's `step_paths` and `always_run` work
it out for both. So this module is light: no dataclass, no Rich, no planner on its import path
(tests/test_fast_path.py lists what a fast no-op must not import).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tipi.uptodate.clean import is_clean, required_paths

if TYPE_CHECKING:
    from pathlib import Path

    from tipi.state.layout import Layout

# What a step proven up to date says (rebuilder.UP_TO_DATE.explain(), spelled here so that the
# fast path need not import the rebuilder's dataclasses; tests/test_fast_path.py compares them).
UP_TO_DATE_SAID = ("up to date",)


def is_up_to_date(
    layout: Layout,
    order: Sequence[str],
    paths: Mapping[str, Sequence[str]],
    always: Collection[str],
    warn: Callable[[str], None],
    *,
    forced: bool = False,
    rehash: bool = False,
    from_cache: bool = True,
) -> bool:
    """Whether the make of the steps `order` has nothing to do, proven by the clean record.

    Args:
        layout: where the pipeline's state lives (its clean record, plan file, trace log).
        order: the selected steps.
        paths: step → its inputs, then its outputs, as the plan spells them
            (planfile.step_paths), for at least the selected steps.
        always: the steps that run at every make, volatile or forced by their definition
            (planfile.always_run).
        warn: told about a clean record that is unusable (the answer is then no).
        forced: -f or -F forces a step of this make.
        rehash: --rehash trusts no saved signature.
        from_cache: the make's plan was read from the plan file.
    """
    if forced or rehash or not from_cache or runs_every_time(always, order):
        return False
    required = record_paths(layout, paths, order) | {str(g) for g in guards(layout)}
    return is_clean(layout.clean_file, order, warn, required)


def runs_every_time(always: Collection[str], order: Iterable[str]) -> bool:
    """Whether one of the steps `order` is in `always`: no clean record proves or is written
    for such a selection."""
    return any(name in always for name in order)


def record_paths(
    layout: Layout, paths: Mapping[str, Sequence[str]], order: Iterable[str]
) -> set[str]:
    """Every input and output of the steps `order`, absolute: what a clean record of them
    names besides its guards."""
    return required_paths((paths[name] for name in order), layout.root)


def guards(layout: Layout) -> tuple[Path, Path]:
    """The files whose change invalidates a clean record: the plan file and the trace log."""
    return layout.plan_file, layout.traces_file


def report_up_to_date(
    reporter: Any,
    summary: Any,
    order: Sequence[str],
    started: float,
    result: Callable[..., Any],
    finish: Callable[[Any], Any] | None = None,
) -> None:
    """Tell `reporter` what a make with nothing to do tells it: the make of `order` starts,
    each step is skipped as up to date, and the make ends with `summary` (timed from
    `started`, a time.perf_counter()).

    Args:
        reporter: a report.events.Reporter, or what has its run_started, step_finished and
            run_finished (the fast path's plain lines).
        summary: the make's report.events.RunSummary (or a look-alike): its results are added.
        result: makes a step's result as report.events.StepResult does
            (`result(name, outcome, reasons=...)`).
        finish: hands each result on (default: reporter.step_finished).
    """
    reporter.run_started(summary.pipeline, list(order))
    finish = finish or reporter.step_finished
    for name in order:
        step = result(name, "skipped", reasons=UP_TO_DATE_SAID)
        finish(step)
        summary.results.append(step)
    summary.seconds = time.perf_counter() - started
    reporter.run_finished(summary)
