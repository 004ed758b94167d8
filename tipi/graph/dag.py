"""Builds the networkx DAG of steps from declared paths and `after` edges, and validates it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

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
    """A validated DAG: an edge u → v means v needs u first. `order` is a stable topo order."""

    graph: nx.DiGraph
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
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    for node in nodes.values():
        for path in node.inputs.values():
            producer = producers.get(path)
            if producer is not None and producer != node.name:
                graph.add_edge(producer, node.name, path=path)
        for before in node.after:
            graph.add_edge(before, node.name)
    _check_acyclic(graph, nodes)
    rank = {name: i for i, name in enumerate(nodes)}
    order = tuple(nx.lexicographical_topological_sort(graph, key=rank.__getitem__))
    return StepGraph(graph, order, producers)


def _check_acyclic(graph: nx.DiGraph, nodes: Mapping[str, StepNode]) -> None:
    for name in nodes:
        if graph.has_edge(name, name):
            raise DefinitionError(f"step '{name}' depends on itself", location=nodes[name].location)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    steps = [u for u, _ in cycle] + [cycle[0][0]]
    raise DefinitionError(
        "the steps form a cycle: " + " → ".join(steps),
        hint="break it: a step cannot need, directly or not, its own outputs",
        location=nodes[steps[0]].location,
    )
