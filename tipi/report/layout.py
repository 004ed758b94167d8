"""Where the report draws each box and edge of a DAG, left to right.

Graphviz's `dot` lays the graph out when it is installed (`dot -Tplain`: positions and edge
splines). Otherwise a layered (Sugiyama-style) layout of its own: layers by longest path, a
dummy node wherever an edge skips a layer, orders by barycenters, then positions. Every box
of a layer shares its column, dummies take a slot of their own in it, and an edge crosses the
gaps between columns only, so no edge passes through a box it does not start or end at.
"""

from __future__ import annotations

import itertools
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]
MARGIN = 20.0
GAP_X = 70.0  # between columns: where edges run
GAP_Y = 24.0  # between boxes of a column
DUMMY_H = 10.0  # the slot of an edge passing through a column
ARROW = 10.0  # Graphviz stops an edge this short of its head, for the arrow


@dataclass(frozen=True)
class Box:
    """A node's rectangle: top-left corner, width and height."""

    x: float
    y: float
    w: float
    h: float

    @property
    def center(self) -> Point:
        return self.x + self.w / 2, self.y + self.h / 2


@dataclass(frozen=True)
class Edge:
    """An edge's drawing: `points` (the route, through its bends) and `path` (SVG path
    data: straight in a column, a curve within a gap between columns)."""

    tail: str
    head: str
    points: tuple[Point, ...]
    path: str


@dataclass(frozen=True)
class GraphLayout:
    engine: str  # "graphviz" or "layered"
    width: float
    height: float
    boxes: dict[str, Box]
    edges: tuple[Edge, ...]


def layout(
    sizes: dict[str, tuple[float, float]], edges: Sequence[tuple[str, str]], engine: str = "auto"
) -> GraphLayout:
    """Boxes of `sizes` (name → width, height; in order) joined by `edges` (tail, head).

    `engine`: "graphviz" (`dot`; the layered layout when it is missing or fails),
    "layered", or "auto" (Graphviz when installed)."""
    if engine in ("auto", "graphviz"):
        found = graphviz(sizes, edges)
        if found is not None:
            return found
    return layered(sizes, edges)


# Graphviz


def graphviz(
    sizes: dict[str, tuple[float, float]], edges: Sequence[tuple[str, str]]
) -> GraphLayout | None:
    """`dot`'s layout; None when dot is not installed or fails."""
    dot = shutil.which("dot")
    if dot is None or not sizes:
        return None
    lines = ["digraph g {", "rankdir=LR; nodesep=0.35; ranksep=0.9;"]
    lines.append('node [shape=box, fixedsize=true, label=""];')
    for i, (w, h) in enumerate(sizes.values()):
        lines.append(f"n{i} [width={w / 72:.4f}, height={h / 72:.4f}];")
    ids = {name: f"n{i}" for i, name in enumerate(sizes)}
    lines += [f"{ids[a]} -> {ids[b]};" for a, b in edges]
    lines.append("}")
    try:
        done = subprocess.run(
            [dot, "-Tplain"], input="\n".join(lines), capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    try:
        return _parse_plain(done.stdout, {v: k for k, v in ids.items()})
    except (ValueError, IndexError, KeyError):
        return None


def _parse_plain(text: str, names: dict[str, str]) -> GraphLayout:
    height = 0.0
    boxes: dict[str, Box] = {}
    splines: list[tuple[str, str, list[Point]]] = []

    def at(x: str, y: str) -> Point:  # inches, y up → points, y down, with a margin
        return MARGIN + float(x) * 72, MARGIN + (height - float(y)) * 72

    width = 0.0
    for line in text.splitlines():
        part = shlex.split(line)
        if not part:
            continue
        if part[0] == "graph":
            width, height = float(part[2]), float(part[3])
        elif part[0] == "node":
            (cx, cy), w, h = at(part[2], part[3]), float(part[4]) * 72, float(part[5]) * 72
            boxes[names[part[1]]] = Box(cx - w / 2, cy - h / 2, w, h)
        elif part[0] == "edge":
            n = int(part[3])
            points = [at(part[4 + 2 * i], part[5 + 2 * i]) for i in range(n)]
            splines.append((names[part[1]], names[part[2]], points))
    drawn = []
    for tail, head, points in splines:
        (x0, y0), (x1, y1) = points[-2], points[-1]
        length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 or 1.0
        tip = (x1 + (x1 - x0) / length * ARROW, y1 + (y1 - y0) / length * ARROW)
        path = f"M{_p(points[0])}"
        for i in range(1, len(points) - 2, 3):
            path += f" C{_p(points[i])} {_p(points[i + 1])} {_p(points[i + 2])}"
        drawn.append(Edge(tail, head, (*points, tip), f"{path} L{_p(tip)}"))
    return GraphLayout(
        "graphviz", width * 72 + 2 * MARGIN, height * 72 + 2 * MARGIN, boxes, tuple(drawn)
    )


# The layered layout


def layered(sizes: dict[str, tuple[float, float]], edges: Sequence[tuple[str, str]]) -> GraphLayout:
    """The layered layout (no Graphviz needed). `edges` must not make a cycle."""
    names = list(sizes)
    preds: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        preds[b].append(a)
    level: dict[str, int] = {}
    for name in _topological(names, edges):
        level[name] = 1 + max((level[p] for p in preds[name]), default=-1)
    layers: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name in names:
        layers[level[name]].append(name)
    # Each edge as a chain of links between adjacent layers, through one dummy per layer skipped.
    chains: dict[tuple[str, str], list[str]] = {}
    for a, b in edges:
        chain = [a]
        for lvl in range(level[a] + 1, level[b]):
            dummy = f"\0{a}\0{b}\0{lvl}"
            layers[lvl].append(dummy)
            chain.append(dummy)
        chains[a, b] = [*chain, b]
    up: dict[str, list[str]] = {n: [] for layer in layers for n in layer}
    down: dict[str, list[str]] = {n: [] for layer in layers for n in layer}
    for chain in chains.values():
        for x, y in itertools.pairwise(chain):
            down[x].append(y)
            up[y].append(x)
    layers = _order(layers, up, down)
    height = {n: (sizes[n][1] if n in sizes else DUMMY_H) for layer in layers for n in layer}
    ys = _place(layers, up, down, height)
    widths = [max((sizes[n][0] for n in layer if n in sizes), default=0.0) for layer in layers]
    xs, x = [], MARGIN
    for w in widths:
        xs.append(x)
        x += w + GAP_X
    boxes = {n: Box(xs[level[n]], ys[n], widths[level[n]], sizes[n][1]) for n in names}
    ports = _ports(chains, boxes, ys, height)
    drawn = []
    for (a, b), chain in chains.items():
        points = [(xs[level[a]] + widths[level[a]], ports[a, b][0])]
        for dummy in chain[1:-1]:
            lvl, y = level[a] + chain.index(dummy), ys[dummy] + DUMMY_H / 2
            points += [(xs[lvl], y), (xs[lvl] + widths[lvl], y)]
        points.append((xs[level[b]], ports[a, b][1]))
        drawn.append(Edge(a, b, tuple(points), _route(points)))
    bottom = max((ys[n] + height[n] for n in ys), default=0.0)
    return GraphLayout(
        "layered", max(x - GAP_X + MARGIN, 2 * MARGIN), bottom + MARGIN, boxes, tuple(drawn)
    )


def _topological(names: list[str], edges: Sequence[tuple[str, str]]) -> list[str]:
    """`names` with each after its predecessors, otherwise in their order."""
    incoming = {n: 0 for n in names}
    following: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        incoming[b] += 1
        following[a].append(b)
    ready = [n for n in names if incoming[n] == 0]
    done: list[str] = []
    while ready:
        name = ready.pop(0)
        done.append(name)
        for b in following[name]:
            incoming[b] -= 1
            if incoming[b] == 0:
                ready.append(b)
    if len(done) != len(names):
        raise ValueError("the graph has a cycle")
    return done


def _order(
    layers: list[list[str]], up: dict[str, list[str]], down: dict[str, list[str]]
) -> list[list[str]]:
    """Orders within layers with few crossings: barycenter sweeps down and up, the best kept."""
    best, fewest = [list(layer) for layer in layers], _crossings(layers, down)
    current = [list(layer) for layer in layers]
    for sweep in range(8):
        indices = range(1, len(current)) if sweep % 2 == 0 else range(len(current) - 2, -1, -1)
        for i in indices:
            near = current[i - 1] if sweep % 2 == 0 else current[i + 1]
            links = up if sweep % 2 == 0 else down
            where = {n: k for k, n in enumerate(near)}
            old = {n: k for k, n in enumerate(current[i])}

            def barycenter(n: str, where: dict = where, links: dict = links, old: dict = old):
                found = [where[m] for m in links[n] if m in where]
                return (sum(found) / len(found) if found else old[n], old[n])

            current[i].sort(key=barycenter)
        count = _crossings(current, down)
        if count < fewest:
            best, fewest = [list(layer) for layer in current], count
    return best


def _crossings(layers: list[list[str]], down: dict[str, list[str]]) -> int:
    count = 0
    for upper, lower in itertools.pairwise(layers):
        where = {n: k for k, n in enumerate(lower)}
        links = [(i, where[m]) for i, n in enumerate(upper) for m in down[n]]
        count += sum(1 for a, b in links for c, d in links if a < c and b > d)
    return count


def _place(
    layers: list[list[str]],
    up: dict[str, list[str]],
    down: dict[str, list[str]],
    height: dict[str, float],
) -> dict[str, float]:
    """Top of each node: stacked in layer order, then moved toward the centres of its
    neighbours, never closer than GAP_Y to the node above it."""
    top: dict[str, float] = {}
    for layer in layers:
        y = MARGIN
        for n in layer:
            top[n] = y
            y += height[n] + GAP_Y
    for sweep in range(6):
        order = range(len(layers)) if sweep % 2 == 0 else range(len(layers) - 1, -1, -1)
        for i in order:
            links = up if sweep % 2 == 0 else down
            wanted = []
            for n in layers[i]:
                near = [top[m] + height[m] / 2 for m in links[n]]
                wanted.append(sum(near) / len(near) - height[n] / 2 if near else top[n])
            _pack(layers[i], wanted, top, height)
    shift = MARGIN - min(top.values(), default=MARGIN)
    return {n: y + shift for n, y in top.items()}


def _pack(layer: list[str], wanted: list[float], top: dict[str, float], height: dict) -> None:
    """Tops as close to `wanted` as the order and GAP_Y allow (pushed down, then the block
    shifted up by the mean push so that it stays centred)."""
    placed: list[float] = []
    for want in wanted:
        floor = placed[-1] + height[layer[len(placed) - 1]] + GAP_Y if placed else -1e9
        placed.append(max(want, floor))
    pushed = sum(p - w for p, w in zip(placed, wanted, strict=True)) / max(len(placed), 1)
    for n, y in zip(layer, placed, strict=True):
        top[n] = y - pushed


def _ports(
    chains: dict[tuple[str, str], list[str]],
    boxes: dict[str, Box],
    top: dict[str, float],
    height: dict[str, float],
) -> dict[tuple[str, str], tuple[float, float]]:
    """Where each edge leaves its tail and enters its head: spread along the box's side in
    the order of the other ends, so that edges of one box do not start on one point."""

    def centre(n: str) -> float:
        return top[n] + height[n] / 2

    leaving: dict[str, list[tuple[float, tuple[str, str]]]] = {}
    entering: dict[str, list[tuple[float, tuple[str, str]]]] = {}
    for key, chain in chains.items():
        leaving.setdefault(key[0], []).append((centre(chain[1]), key))
        entering.setdefault(key[1], []).append((centre(chain[-2]), key))
    ends: dict[tuple[str, str], list[float]] = {key: [0.0, 0.0] for key in chains}
    for side, groups in ((0, leaving), (1, entering)):
        for node, group in groups.items():
            box = boxes[node]
            group.sort()
            for k, (_, key) in enumerate(group):
                ends[key][side] = box.y + box.h * (k + 1) / (len(group) + 1)
    return {key: (a, b) for key, (a, b) in ends.items()}


def _route(points: list[Point]) -> str:
    """Straight within a column (the two points of a dummy share their y), a curve across a
    gap whose control points stay inside the gap."""
    path = f"M{_p(points[0])}"
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if y0 == y1:
            path += f" L{_p((x1, y1))}"
        else:
            mid = (x0 + x1) / 2
            path += f" C{_p((mid, y0))} {_p((mid, y1))} {_p((x1, y1))}"
    return path


def _p(point: Point) -> str:
    return f"{point[0]:.1f},{point[1]:.1f}"
