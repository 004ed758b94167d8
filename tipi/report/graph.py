"""The step graph as text: a terminal tree, Graphviz DOT, Mermaid, JSON, and a small SVG."""

from __future__ import annotations

import json

from tipi.redact import printable, printable_json
from tipi.redact import printable_html as escape  # text is data: no control characters
from tipi.report.groups import GroupStep, base_name, mark, state_text
from tipi.report.views import STATE_COLORS, PipelineView, StepView

FORMATS = ("tree", "dot", "mermaid", "json", "svg", "png", "html")
NODE_HEIGHT = 60.0  # a step's box in the SVG: name, state, first reason
STACK = 8.0  # how far the cards behind a folded step matrix's box show


def label(step: StepView) -> str:
    text = f"{step.name} [{state_text(step)}]"
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
    steps = {s.name: s for s in view.steps}
    for node, text, _ in nodes:
        shown = mark(steps[node]) if node in steps else "□"
        graph.add_node(node, label=f"{shown} {printable(text)}")
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
        lines = [step.name, state_text(step)] + ([step.first_reason] if step.first_reason else [])
        tooltip = "; ".join(step.reasons)
        stack = (
            ', peripheries=2, style="rounded,filled,bold"' if isinstance(step, GroupStep) else ""
        )
        out.append(
            f'  "{_dot(node)}" [label="{_dot(chr(10).join(lines))}", fillcolor="{fill}", '
            f'color="{stroke}", tooltip="{_dot(tooltip)}"{stack}];'
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
            body = f"{step.name}<br/>{state_text(step)}" + (
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
                        "step": base_name(node),
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
    return printable_json(json.dumps(data, indent=2, ensure_ascii=False)) + "\n"


def to_svg(view: PipelineView, engine: str = "auto") -> str:
    """A self-contained SVG drawing of the steps, laid out by Graphviz when it is installed
    and by tipi's layered layout otherwise (`engine`: see tipi.report.layout.layout)."""
    from tipi.report.layout import layout

    sizes = {s.name: (_box_width(s), _box_height(s)) for s in view.steps}
    placed = layout(sizes, view.edges, engine)
    behind = STACK if any(isinstance(s, GroupStep) for s in view.steps) else 0.0
    width, height = f"{placed.width + behind:.0f}", f"{placed.height + behind:.0f}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" '
        f'font-size="12" data-layout="{placed.engine}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker></defs>',
    ]
    for edge in placed.edges:
        parts.append(
            f'<path class="edge" data-from="{escape(edge.tail)}" data-to="{escape(edge.head)}" '
            f'd="{edge.path}" fill="none" stroke="#666" marker-end="url(#arrow)"/>'
        )
    for step in view.steps:
        box = placed.boxes[step.name]
        x, y = round(box.x, 1), round(box.y, 1)
        fill, stroke = STATE_COLORS[step.state]
        room = max(int((box.w - 20) / 5.6), 8)
        reason = step.first_reason
        reason = reason if len(reason) <= room else reason[: room - 1] + "…"
        title = escape("; ".join(step.reasons))
        group = step.group if isinstance(step, GroupStep) else None
        kind = f"group {step.state}" + (" mixed" if group and group.mixed else "")
        parts.append(
            f'<g class="step {kind if group else step.state}" data-step="{escape(step.name)}">'
            f"<title>{title}</title>"
        )
        if group:  # a stack of cards: the instances behind the first
            for k in (2, 1):
                parts.append(
                    f'<rect x="{x + k * STACK / 2}" y="{y + k * STACK / 2}" '
                    f'width="{box.w:.1f}" height="{box.h:.1f}" rx="8" fill="{fill}" '
                    f'stroke="{stroke}" stroke-width="1"/>'
                )
        parts += [
            f'<rect x="{x}" y="{y}" width="{box.w:.1f}" height="{box.h:.1f}" rx="8" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>',
            f'<text x="{x + 10}" y="{y + 20}" font-weight="bold">{escape(step.name)}</text>',
            f'<text x="{x + 10}" y="{y + 36}" fill="{stroke}">{mark(step)} '
            f"{escape(state_text(step))}</text>",
            f'<text x="{x + 10}" y="{y + 52}" fill="#444" font-size="10">{escape(reason)}</text>',
        ]
        if group:
            parts += _count_bar(group.counts, x + 10, y + 58, box.w - 20)
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _count_bar(counts: dict[str, int], x: float, y: float, width: float) -> list[str]:
    """A group's instances as a bar, a segment per state as wide as its share."""
    total, out = sum(counts.values()), []
    for state, n in counts.items():
        w = width * n / total
        out.append(
            f'<rect class="count {state}" data-count="{n}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{w:.1f}" height="5" fill="{STATE_COLORS[state][1]}"/>'
        )
        x += w
    return out


def _box_height(step: StepView) -> float:
    return NODE_HEIGHT + (10 if isinstance(step, GroupStep) else 0)  # room for the count bar


def _box_width(step: StepView) -> float:
    """Wide enough for the name (bold, ~7.5 px a character), within 170-320 px."""
    return float(min(max(len(step.name) * 7.5 + 24, 170), 320))


# DOT and Mermaid are printed as they are (`tipi graph --format dot`): an output's path or a
# reason holds escape sequences only as text.
def _dot(text: str) -> str:
    return printable(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _mermaid(text: str) -> str:
    return printable(text).replace('"', "#quot;")
