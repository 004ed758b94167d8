"""Step matrices in the views: the instances of one step (`train[seed=0,lr=0.001]`, ...)
folded into one row or box, `train ×6`, with how many are in each state.

Every view (`tipi status`, `tipi graph`, the report, `tipi runs`/`show`) folds by the same
rule: a step with two or more instances is one group, in the place of its first instance;
a group is unfolded (its instances listed under it) when asked for by name or with `--expand`.
Only names are read here: an instance's name is its step's name and its values in brackets
(tipi.config.instances).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tipi.config.instances import split_instance
from tipi.report.views import STATES, PipelineView, StepView

# The reasons that name another step (tipi.uptodate.reasons): one per upstream instance.
_UPSTREAM = re.compile(r"^upstream '(?P<name>.+)' (?P<what>will run first|failed)$")
# The state a group is drawn in when its instances differ: the one that needs a look first.
URGENCY = ("failed", "will-run", "never-run", "up-to-date")
MIXED_MARK = "◐"


def base_name(name: str) -> str:
    """The step an instance belongs to (`train[seed=0]` → `train`); a plain step's own name
    (and anything that is no instance name, such as an output path, as it is)."""
    try:
        return split_instance(name)[0]
    except ValueError:
        return name


def values_part(name: str) -> str:
    """An instance's values as written in its name (`train[seed=0]` → `[seed=0]`)."""
    return name[len(base_name(name)) :]


@dataclass(frozen=True)
class StepGroup:
    """The instances of one step, in plan order."""

    name: str
    instances: tuple[StepView, ...]

    @property
    def label(self) -> str:
        return f"{self.name} ×{len(self.instances)}"

    @property
    def type(self) -> str:
        return self.instances[0].type

    @property
    def counts(self) -> dict[str, int]:
        """How many instances are in each state, in STATES order (only those with some)."""
        found = [s.state for s in self.instances]
        return {state: found.count(state) for state in STATES if state in found}

    @property
    def mixed(self) -> bool:
        return len(self.counts) > 1

    @property
    def state(self) -> str:
        """Its instances' state when they agree, else the most urgent of theirs (its colour)."""
        return next(state for state in URGENCY if state in self.counts)

    @property
    def summary(self) -> str:
        """`4 up-to-date, 2 will-run`; `all 6 up-to-date` when they agree."""
        counts = self.counts
        if len(counts) == 1:
            return f"all {len(self.instances)} {self.state}"
        return ", ".join(f"{n} {state}" for state, n in counts.items())

    @property
    def first_reason(self) -> str:
        """Which instance needs a look first (a failed one first, with its error) and why,
        with how many others would run too."""
        waiting = [s for s in self.instances if s.first_reason]
        if not waiting:
            return ""
        first = min(waiting, key=lambda s: URGENCY.index(s.state))  # the first of the most urgent
        why = f"last error: {first.error}" if first.error else first.first_reason
        more = f" (+{len(waiting) - 1} more)" if len(waiting) > 1 else ""
        return f"{first.name}: {why}{more}"

    @property
    def reasons(self) -> tuple[str, ...]:
        """Each instance that would run with its first reason."""
        return tuple(f"{s.name}: {s.first_reason}" for s in self.instances if s.first_reason)

    @property
    def last_run(self) -> float | None:
        return max((s.last_run for s in self.instances if s.last_run), default=None)

    @property
    def duration(self) -> float | None:
        """The instances' time together (what the group cost to run)."""
        times = [s.duration for s in self.instances if s.duration is not None]
        return sum(times) if times else None

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for s in self.instances for p in s.inputs))

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for s in self.instances for p in s.outputs))


Row = StepView | StepGroup


def groups_of(steps: Iterable[StepView]) -> dict[str, list[StepView]]:
    """Base name → its steps, in order; a plain step is a group of one."""
    found: dict[str, list[StepView]] = {}
    for step in steps:
        found.setdefault(base_name(step.name), []).append(step)
    return found


def rows(view: PipelineView, expand: bool | Collection[str] = ()) -> list[tuple[Row, bool]]:
    """The view's steps, each group of two or more instances folded into a StepGroup in the
    place of its first instance: (row, unfolded). An unfolded group (every one with `expand`
    True, those named in it otherwise) is followed by its instances."""
    out: list[tuple[Row, bool]] = []
    for base, steps in groups_of(view.steps).items():
        if len(steps) == 1:  # a plain step, or a matrix of one: its name says it all
            out.append((steps[0], False))
            continue
        unfold = expand is True or (expand is not False and base in expand)
        out.append((StepGroup(base, tuple(steps)), unfold))
    return out


def folded(view: PipelineView, expand: bool | Collection[str] = ()) -> PipelineView:
    """The view with each folded group as one step (named by its label, `train ×6`): what a
    graph draws. Its edges join the groups; an unfolded group's instances stay steps."""
    steps: list[StepView] = []
    where: dict[str, str] = {}
    for row, unfold in rows(view, expand):
        if isinstance(row, StepView):
            steps.append(row)
            where[row.name] = row.name
        elif unfold:
            steps += row.instances
            where.update({s.name: s.name for s in row.instances})
        else:
            steps.append(as_step(row))
            where.update({s.name: row.label for s in row.instances})
    edges = dict.fromkeys((where[a], where[b]) for a, b in view.edges if where[a] != where[b])
    return PipelineView(view.pipeline, tuple(steps), tuple(edges), view.metrics)


@dataclass(frozen=True)
class GroupStep(StepView):
    """A folded group drawn as one step: its counts instead of one state."""

    group: StepGroup | None = None

    @property
    def first_reason(self) -> str:
        return self.group.first_reason if self.group else super().first_reason


def as_step(group: StepGroup) -> GroupStep:
    return GroupStep(
        name=group.label,
        type=group.type,
        state=group.state,
        reasons=group.reasons,
        inputs=group.inputs,
        outputs=group.outputs,
        last_run=group.last_run,
        duration=group.duration,
        group=group,
    )


def state_text(step: StepView) -> str:
    """What a view writes for a step's state: a folded group's counts, else the state."""
    return step.group.summary if isinstance(step, GroupStep) and step.group else step.state


def mark(step: StepView) -> str:
    """A folded group of mixed states gets its own mark; anything else its state's."""
    from tipi.report.views import STATE_MARKS

    if isinstance(step, GroupStep) and step.group and step.group.mixed:
        return MIXED_MARK
    return STATE_MARKS[step.state]


def fold_names(names: Sequence[str]) -> list[str]:
    """Names as a person reads them: two or more instances of one step as `train ×6`, in the
    place of the first."""
    found = groups_of(StepView(name=n, type="", state="up-to-date", reasons=()) for n in names)
    return [
        steps[0].name if len(steps) == 1 else f"{base} ×{len(steps)}"
        for base, steps in found.items()
    ]


def fold_reasons(reasons: Sequence[str]) -> tuple[str, ...]:
    """A step's reasons with those naming two or more instances of one upstream step matrix
    as one (`upstream 'evaluate ×6' will run first`), in the place of the first, and those
    alike but for their file as one (`_fold_alike`): a step that gathers 50 instances has one
    reason to say, not 50 (`tipi status --json` keeps every one)."""
    reasons = _fold_alike(reasons)
    named: dict[tuple[str, str], list[int]] = {}
    for k, reason in enumerate(reasons):
        found = _UPSTREAM.match(reason)
        if found and base_name(found["name"]) != found["name"]:
            named.setdefault((base_name(found["name"]), found["what"]), []).append(k)
    folded_at = {at[0]: key for key, at in named.items() if len(at) > 1}
    dropped = {k for at in named.values() if len(at) > 1 for k in at[1:]}
    out = []
    for k, reason in enumerate(reasons):
        if k in folded_at:
            base, what = folded_at[k]
            out.append(f"upstream '{base} ×{len(named[base, what])}' {what}")
        elif k not in dropped:
            out.append(reason)
    return tuple(out)


def instance_key(key: str) -> tuple[str, str] | None:
    """(step, key) of an instance's `step[values].key` (`train[seed=0].lr` → `train`, `lr`);
    None for any other key."""
    cut = key.find("].")  # a value never holds "]": the instance's name ends there
    if cut < 0:
        return None
    base = base_name(key[: cut + 1])
    return (base, key[cut + 2 :]) if base != key[: cut + 1] else None


def fold_keyed(values: dict[str, Any]) -> dict[str, list[Any]]:
    """`step.key` values (a run's metrics) with the same key of two or more instances of one
    step matrix as one entry, `evaluate ×6.accuracy`, holding every instance's value in order;
    any other key holds its one value."""
    found: dict[tuple[str, str], list[tuple[str, Any]]] = {}
    for key, value in values.items():
        found.setdefault(instance_key(key) or (key, ""), []).append((key, value))
    out: dict[str, list[Any]] = {}
    for (base, rest), items in found.items():
        if len(items) > 1:
            out[f"{base} ×{len(items)}.{rest}"] = [v for _, v in items]
        else:
            out[items[0][0]] = [items[0][1]]
    return out


_PATH = re.compile(r"\S*/\S*")  # the file a reason is about (`new input out/a/0/x.json`)
ALIKE = 3  # from this many reasons alike (one per file of a glob matrix), one line says them


def _fold_alike(reasons: Sequence[str]) -> list[str]:
    """Reasons that differ only by their file, ALIKE or more of them, as the first with how
    many more there are: `new input out/evaluate/0/metrics.json (+49 more alike)`."""
    shapes = [_PATH.sub("{}", r, count=1) if _PATH.search(r) else None for r in reasons]
    counts = {shape: shapes.count(shape) for shape in shapes if shape is not None}
    out, said = [], set()
    for reason, shape in zip(reasons, shapes, strict=True):
        if shape is None or counts[shape] < ALIKE:
            out.append(reason)
        elif shape not in said:
            said.add(shape)
            out.append(f"{reason} (+{counts[shape] - 1} more alike)")
    return out
