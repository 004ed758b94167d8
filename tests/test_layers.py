"""The shape of the code: no import cycle anywhere in tipi (TYPE_CHECKING imports included),
and no module past 400 lines. The layer contracts themselves are import-linter's, in CI."""

from __future__ import annotations

from pathlib import Path

import grimp
import networkx as nx

import tipi

PACKAGE = Path(tipi.__file__).parent


def test_no_import_cycle_anywhere():
    graph = grimp.build_graph("tipi", exclude_type_checking_imports=False)
    edges = nx.DiGraph(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
    )
    assert list(nx.simple_cycles(edges)) == []


def test_no_module_is_over_400_lines():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert long == {}
