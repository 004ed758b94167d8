"""Builds the DAG of steps from declared paths and `after` edges, and validates it.

Plain dicts of successors, not networkx: its import alone was ~0.1-0.25 s of every plan
(issue 28). The order and the cycle reported are those networkx gave
(`lexicographical_topological_sort` by declaration order, `find_cycle`'s first cycle of a
depth-first search in declaration order): tests/test_dag.py checks both against networkx.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tipi.errors import DefinitionError, Location


@dataclass(frozen=True)
class StepNode:
    """What the graph needs to know of a step: its paths and explicit ordering edges."""

    name: str
    inputs: Mapping[str, Path]
    outputs: Mapping[str, Path]
    after: tuple[str, ...] = ()
    location: Location | None = None


@dataclass(frozen=True)
class StepGraph:
    """A validated DAG: an edge u → v means v needs u first. `order` is a stable topo order.

    Attributes:
        successors: step → the steps that need it, in the order their edges were declared.
        predecessors: step → the steps it needs, sorted by name.
    """

    successors: Mapping[str, Mapping[str, None]]
    predecessors: Mapping[str, Sequence[str]]
    order: tuple[str, ...]
    producers: Mapping[Path, str]


def build_graph(nodes: Mapping[str, StepNode]) -> StepGraph:
    """Link every consumer to the producer of each of its input paths, plus `after` edges.

    Raises:
        DefinitionError: two steps produce one path, or the edges form a cycle.
    """
    producers: dict[Path, str] = {}
    for node in nodes.values():
        for path in node.outputs.values():
            other = producers.get(path)
            if other is not None and other != node.name:
                raise DefinitionError(
                    f"two steps produce {path}: '{other}' and '{node.name}'",
                    hint="each output path must have exactly one producing step",
                    location=node.location,
                )
            producers[path] = node.name
    # dicts as ordered sets: a successor's place is where its first edge was declared
    successors: dict[str, dict[str, None]] = {name: {} for name in nodes}
    preds: dict[str, set[str]] = {name: set() for name in nodes}
    for node in nodes.values():
        for path in node.inputs.values():
            producer = producers.get(path)
            if producer is not None and producer != node.name:
                successors[producer][node.name] = None
                preds[node.name].add(producer)
        for before in node.after:
            successors[before][node.name] = None
            preds[node.name].add(before)
    order = _order(nodes, successors, preds)
    if len(order) < len(nodes):
        _raise_cycle(nodes, successors)
    predecessors = {name: sorted(preds[name]) for name in order}
    return StepGraph(successors, predecessors, tuple(order), producers)


def _order(
    nodes: Mapping[str, StepNode],
    successors: Mapping[str, Mapping[str, None]],
    preds: Mapping[str, set[str]],
) -> list[str]:
    """Kahn's algorithm, always taking the ready step declared first; shorter than `nodes`
    when there is a cycle."""
    rank = {name: i for i, name in enumerate(nodes)}
    waiting = {name: len(p) for name, p in preds.items()}
    ready = [rank[name] for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    names = list(nodes)
    order = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for successor in successors[name]:
            waiting[successor] -= 1
            if waiting[successor] == 0:
                heapq.heappush(ready, rank[successor])
    return order


def _raise_cycle(
    nodes: Mapping[str, StepNode], successors: Mapping[str, Mapping[str, None]]
) -> None:
    for name in nodes:
        if name in successors[name]:
            raise DefinitionError(f"step '{name}' depends on itself", location=nodes[name].location)
    steps = _first_cycle(nodes, successors)
    raise DefinitionError(
        "the steps form a cycle: " + " → ".join(steps),
        hint="break it: a step cannot need, directly or not, its own outputs",
        location=nodes[steps[0]].location,
    )


def _first_cycle(nodes: Iterable[str], successors: Mapping[str, Mapping[str, None]]) -> list[str]:
    """The first cycle a depth-first search meets, starting from each step in declaration
    order and following edges in declaration order: its steps, the first one again last."""
    done: set[str] = set()
    for start in nodes:
        if start in done:
            continue
        path = [start]
        on_path = {start}
        pending = [iter(successors[start])]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                finished = path.pop()
                on_path.remove(finished)
                done.add(finished)
                continue
            if step in on_path:
                return [*path[path.index(step) :], step]
            if step in done:
                continue
            path.append(step)
            on_path.add(step)
            pending.append(iter(successors[step]))
    raise AssertionError("no cycle found")  # pragma: no cover - called only with a cycle
