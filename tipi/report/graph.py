"""The step graph as text: a terminal tree, Graphviz DOT, Mermaid, JSON, and a small SVG."""

from __future__ import annotations

import json
from html import escape

from tipi.report.views import STATE_COLORS, STATE_MARKS, PipelineView, StepView

FORMATS = ("tree", "dot", "mermaid", "json", "svg", "png", "html")


def label(step: StepView) -> str:
    text = f"{step.name} [{step.state}]"
    return f"{text}: {step.first_reason}" if step.first_reason else text


def nodes_and_edges(
    view: PipelineView, files: bool
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """(id, label, kind) nodes and (from, to) edges; with `files`, artifacts become nodes."""
    nodes = [(s.name, label(s), s.state) for s in view.steps]
    if not files:
        return nodes, list(view.edges)
    edges: list[tuple[str, str]] = []
    artifacts: dict[str, None] = {}
    for step in view.steps:
        for path in step.inputs:
            artifacts[path] = None
            edges.append((f"file:{path}", step.name))
        for path in step.outputs:
            artifacts[path] = None
            edges.append((step.name, f"file:{path}"))
    nodes += [(f"file:{path}", path, "file") for path in artifacts]
    return nodes, edges


def to_tree(view: PipelineView, files: bool = False) -> str:
    """A readable terminal drawing (networkx's `write_network_text`)."""
    import networkx as nx

    graph = nx.DiGraph()
    nodes, edges = nodes_and_edges(view, files)
    for node, text, state in nodes:
        mark = STATE_MARKS.get(state, "□")
        graph.add_node(node, label=f"{mark} {text}")
    graph.add_edges_from(edges)
    lines: list[str] = []
    nx.write_network_text(graph, path=lines.append, with_labels=True, ascii_only=False, end="")
    return "\n".join(lines) + "\n"


def to_dot(view: PipelineView, files: bool = False) -> str:
    """Graphviz DOT: steps coloured by state, the first reason under the name."""
    out = [
        f'digraph "{_dot(view.pipeline)}" {{',
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '  edge [color="#666666"];',
    ]
    nodes, edges = nodes_and_edges(view, files)
    for node, text, state in nodes:
        if state == "file":
            attributes = 'shape=note, style=filled, fillcolor="#ffffff"'
            out.append(f'  "{_dot(node)}" [label="{_dot(text)}", {attributes}];')
            continue
        fill, stroke = STATE_COLORS[state]
        step = view.step(node)
        lines = [step.name, step.state] + ([step.first_reason] if step.first_reason else [])
        tooltip = "; ".join(step.reasons)
        out.append(
            f'  "{_dot(node)}" [label="{_dot(chr(10).join(lines))}", fillcolor="{fill}", '
            f'color="{stroke}", tooltip="{_dot(tooltip)}"];'
        )
    out += [f'  "{_dot(a)}" -> "{_dot(b)}";' for a, b in edges]
    out.append("}")
    return "\n".join(out) + "\n"


def to_mermaid(view: PipelineView, files: bool = False) -> str:
    """A Mermaid flowchart with one class per state."""
    nodes, edges = nodes_and_edges(view, files)
    ids = {node: f"n{i}" for i, (node, _, _) in enumerate(nodes)}
    out = ["flowchart LR"]
    for node, text, state in nodes:
        if state == "file":
            out.append(f'  {ids[node]}[/"{_mermaid(text)}"/]:::file')
        else:
            step = view.step(node)
            body = f"{step.name}<br/>{step.state}" + (
                f"<br/>{step.first_reason}" if step.first_reason else ""
            )
            out.append(f'  {ids[node]}["{_mermaid(body)}"]:::{state.replace("-", "_")}')
    out += [f"  {ids[a]} --> {ids[b]}" for a, b in edges]
    for state, (fill, stroke) in STATE_COLORS.items():
        out.append(f"  classDef {state.replace('-', '_')} fill:{fill},stroke:{stroke},color:#222")
    out.append("  classDef file fill:#ffffff,stroke:#999999,color:#444")
    return "\n".join(out) + "\n"


def to_json(view: PipelineView, files: bool = False) -> str:
    nodes, edges = nodes_and_edges(view, files)
    steps = {s.name: s for s in view.steps}
    data = {
        "pipeline": view.pipeline,
        "nodes": [
            {
                "id": node,
                "kind": "file" if state == "file" else "step",
                **(
                    {
                        "state": state,
                        "type": steps[node].type,
                        "reasons": list(steps[node].reasons),
                        "last_run": steps[node].last_run,
                        "duration": steps[node].duration,
                        "error": steps[node].error,
                    }
                    if state != "file"
                    else {"path": text}
                ),
            }
            for node, text, state in nodes
        ],
        "edges": [{"from": a, "to": b} for a, b in edges],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def to_svg(view: PipelineView) -> str:
    """A self-contained SVG drawing (layers by longest path), needing no Graphviz."""
    layer: dict[str, int] = {}
    incoming: dict[str, list[str]] = {s.name: [] for s in view.steps}
    for a, b in view.edges:
        incoming[b].append(a)
    for step in view.steps:  # topological order: predecessors come first
        layer[step.name] = 1 + max((layer[p] for p in incoming[step.name]), default=-1)
    rows: dict[int, int] = {}
    pos = {}
    for step in view.steps:
        column = layer[step.name]
        pos[step.name] = (20 + column * 250, 20 + rows.get(column, 0) * 90)
        rows[column] = rows.get(column, 0) + 1
    width = 20 + (max(layer.values(), default=0) + 1) * 250
    height = 20 + max(rows.values(), default=1) * 90
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" '
        'font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker></defs>',
    ]
    for a, b in view.edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        sx, sy, ex, ey = x1 + 200, y1 + 30, x2, y2 + 30
        parts.append(
            f'<path class="edge" d="M{sx},{sy} C{sx + 25},{sy} {ex - 25},{ey} {ex},{ey}" '
            'fill="none" stroke="#666" marker-end="url(#arrow)"/>'
        )
    for step in view.steps:
        x, y = pos[step.name]
        fill, stroke = STATE_COLORS[step.state]
        reason = step.first_reason if len(step.first_reason) <= 34 else step.first_reason[:33] + "…"
        title = escape("; ".join(step.reasons))
        parts += [
            f'<g class="step {step.state}" data-step="{escape(step.name)}"><title>{title}</title>',
            f'<rect x="{x}" y="{y}" width="200" height="60" rx="8" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="1.5"/>',
            f'<text x="{x + 10}" y="{y + 20}" font-weight="bold">{escape(step.name)}</text>',
            f'<text x="{x + 10}" y="{y + 36}" fill="{stroke}">{STATE_MARKS[step.state]} '
            f"{step.state}</text>",
            f'<text x="{x + 10}" y="{y + 52}" fill="#444" font-size="10">{escape(reason)}</text>',
            "</g>",
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _mermaid(text: str) -> str:
    return text.replace('"', "#quot;")
