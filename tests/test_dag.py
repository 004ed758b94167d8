"""The step graph without networkx (graph/dag.py) gives the order and the cycle networkx gave:
checked against networkx itself on random graphs of paths and `after` edges."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tipi.errors import DefinitionError
from tipi.graph.dag import StepNode, build_graph


def _networkx(nodes: dict[str, StepNode]) -> tuple[tuple[str, ...], dict] | str:
    """What dag.py computed with networkx before (its order and predecessors, or the error)."""
    producers = {p: n.name for n in nodes.values() for p in n.outputs.values()}
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    for node in nodes.values():
        for path in node.inputs.values():
            producer = producers.get(path)
            if producer is not None and producer != node.name:
                graph.add_edge(producer, node.name)
        for before in node.after:
            graph.add_edge(before, node.name)
    for name in nodes:
        if graph.has_edge(name, name):
            return f"step '{name}' depends on itself"
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        rank = {name: i for i, name in enumerate(nodes)}
        order = tuple(nx.lexicographical_topological_sort(graph, key=rank.__getitem__))
        return order, {n: sorted(graph.predecessors(n)) for n in order}
    return "the steps form a cycle: " + " → ".join([u for u, _ in cycle] + [cycle[0][0]])


@st.composite
def graphs(draw: st.DrawFn) -> dict[str, StepNode]:
    count = draw(st.integers(1, 9))
    names = draw(st.permutations([f"s{i}" for i in range(count)]))
    nodes = {}
    for name in names:
        reads = draw(st.lists(st.sampled_from(names), max_size=3))
        after = draw(st.lists(st.sampled_from(names), max_size=2))
        nodes[name] = StepNode(
            name,
            {f"i{k}": Path(f"/p/{other}") for k, other in enumerate(reads)},
            {"out": Path(f"/p/{name}")},
            tuple(after),
        )
    return nodes


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_order_predecessors_and_cycles_are_networkx_s(nodes):
    expected = _networkx(nodes)
    if isinstance(expected, str):
        with pytest.raises(DefinitionError) as error:
            build_graph(nodes)
        assert error.value.args[0] == expected
    else:
        graph = build_graph(nodes)
        assert (graph.order, dict(graph.predecessors)) == expected


def test_two_producers_of_one_path_are_refused():
    nodes = {n: StepNode(n, {}, {"out": Path("/p/x")}) for n in ("a", "b")}
    with pytest.raises(DefinitionError, match="two steps produce /p/x: 'a' and 'b'"):
        build_graph(nodes)
