"""The report's DAG layout: Graphviz's when `dot` is installed, else a layered layout of its
own in which no edge passes through a box it does not start or end at (checked geometrically
on many graphs)."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from tipi.report import layout as layout_module
from tipi.report.graph import to_svg
from tipi.report.layout import Box, GraphLayout, layered, layout
from tipi.report.views import PipelineView, StepView

DIGITS = [
    ("prepare", "train"),
    ("prepare", "evaluate"),
    ("prepare", "predict"),
    ("train", "evaluate"),
    ("train", "predict"),
    ("train", "export"),
    ("train", "profile"),
    ("export", "profile"),
]


def sizes_of(names, width=170.0, height=60.0):
    return {n: (width + 10 * (len(n) % 4), height) for n in names}


def random_dag(seed: int) -> tuple[list[str], list[tuple[str, str]]]:
    rng = random.Random(seed)
    names = [f"s{i}" for i in range(rng.randint(2, 14))]
    edges = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if rng.random() < (0.35 if len(names) < 8 else 0.2)
    ]
    return names, edges


def cubic(p0, p1, p2, p3, steps=24):
    for k in range(steps + 1):
        t = k / steps
        yield tuple(
            (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t**2 * c + t**3 * d
            for a, b, c, d in zip(p0, p1, p2, p3, strict=True)
        )


def path_points(path: str) -> list[tuple[float, float]]:
    """The points of an SVG path of M, L and C commands, curves sampled finely."""
    tokens = re.findall(r"[MLC]|-?\d+(?:\.\d+)?,-?\d+(?:\.\d+)?", path)
    points: list[tuple[float, float]] = []
    command, pending = "", []
    for token in tokens:
        if token in "MLC":
            command = token
            continue
        point = tuple(float(v) for v in token.split(","))
        if command in "ML":
            points.append(point)
        else:
            pending.append(point)
            if len(pending) == 3:
                points += list(cubic(points[-1], *pending))[1:]
                pending = []
    return points


def crosses(a, b, box: Box) -> bool:
    """Whether segment a-b has a point strictly inside `box` (Liang-Barsky clipping on the
    box shrunk by a hair, so that touching its side does not count)."""
    eps = 0.5
    x0, y0, x1, y1 = box.x + eps, box.y + eps, box.x + box.w - eps, box.y + box.h - eps
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    low, high = 0.0, 1.0
    for p, q in ((-dx, ax - x0), (dx, x1 - ax), (-dy, ay - y0), (dy, y1 - ay)):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            low = max(low, t)
        else:
            high = min(high, t)
        if low > high:
            return False
    return True


def assert_no_edge_through_a_box(placed: GraphLayout) -> None:
    for edge in placed.edges:
        for route in (list(edge.points), path_points(edge.path)):
            for a, b in itertools.pairwise(route):
                for name, box in placed.boxes.items():
                    if name in (edge.tail, edge.head):
                        continue
                    assert not crosses(a, b, box), (edge.tail, edge.head, name, a, b)


def assert_boxes_apart(placed: GraphLayout) -> None:
    boxes = list(placed.boxes.items())
    for i, (n, a) in enumerate(boxes):
        for m, b in boxes[i + 1 :]:
            apart = a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
            assert apart, (n, a, m, b)


def assert_edges_join_their_boxes(placed: GraphLayout) -> None:
    for edge in placed.edges:
        tail, head = placed.boxes[edge.tail], placed.boxes[edge.head]
        (sx, sy), (ex, ey) = edge.points[0], edge.points[-1]
        assert sx == pytest.approx(tail.x + tail.w) and tail.y < sy < tail.y + tail.h
        assert ex == pytest.approx(head.x) and head.y < ey < head.y + head.h


@pytest.mark.parametrize("seed", range(60))
def test_the_layered_layout_never_draws_an_edge_through_a_box(seed):
    names, edges = random_dag(seed)
    placed = layered(sizes_of(names), edges)
    assert placed.engine == "layered"
    assert set(placed.boxes) == set(names)
    assert {(e.tail, e.head) for e in placed.edges} == set(edges)
    assert_boxes_apart(placed)
    assert_edges_join_their_boxes(placed)
    assert_no_edge_through_a_box(placed)
    for box in placed.boxes.values():
        assert box.x >= 0 and box.y >= 0
        assert box.x + box.w <= placed.width and box.y + box.h <= placed.height


def test_an_edge_that_skips_layers_goes_around_the_boxes_between():
    # a → b → c → d and a → d: the long edge must pass b and c, not cross them.
    names = ["a", "b", "c", "d"]
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")]
    placed = layered(sizes_of(names), edges)
    long = next(e for e in placed.edges if (e.tail, e.head) == ("a", "d"))
    assert len(long.points) == 6  # leaves a, crosses the columns of b and c, enters d
    assert_no_edge_through_a_box(placed)
    columns = sorted({round(b.x) for b in placed.boxes.values()})
    assert len(columns) == 4  # one layer per step of the chain


def test_the_digits_graph_is_laid_out_in_layers_without_crossing_a_box():
    names = ["prepare", "train", "evaluate", "predict", "export", "profile"]
    placed = layered(sizes_of(names), DIGITS)
    x = {n: placed.boxes[n].x for n in names}
    assert x["prepare"] < x["train"] < x["evaluate"] == x["predict"] == x["export"]
    assert x["export"] < x["profile"]
    assert_no_edge_through_a_box(placed)


def test_a_graph_with_a_cycle_is_refused():
    with pytest.raises(ValueError, match="cycle"):
        layered(sizes_of(["a", "b"]), [("a", "b"), ("b", "a")])


def test_without_graphviz_the_layered_layout_is_used(monkeypatch):
    monkeypatch.setattr(layout_module.shutil, "which", lambda name: None)
    assert layout(sizes_of(["a", "b"]), [("a", "b")]).engine == "layered"
    assert layout(sizes_of(["a", "b"]), [("a", "b")], "graphviz").engine == "layered"


@pytest.mark.slow
def test_graphviz_lays_out_every_box_and_edge():
    from tests.browser import dot

    dot()
    names = ["prepare", "train", "evaluate", "predict", "export", "profile"]
    placed = layout(sizes_of(names), DIGITS, "graphviz")
    assert placed.engine == "graphviz"
    assert set(placed.boxes) == set(names)
    assert {(e.tail, e.head) for e in placed.edges} == set(DIGITS)
    assert_boxes_apart(placed)
    for name, box in placed.boxes.items():
        assert box.w == pytest.approx(sizes_of(names)[name][0], abs=0.5)
    for edge in placed.edges:  # each edge ends on its head's side, where the arrow points
        head = placed.boxes[edge.head]
        ex, ey = edge.points[-1]
        assert head.x - 2 <= ex <= head.x + head.w + 2 and head.y - 2 <= ey <= head.y + head.h + 2


def digits_view() -> PipelineView:
    states = ["up-to-date", "will-run", "never-run", "failed", "up-to-date", "never-run"]
    names = ["prepare", "train", "evaluate", "predict", "export", "profile"]
    steps = tuple(
        StepView(n, "T", s, ("a reason that is rather long for the box it is in",))
        for n, s in zip(names, states, strict=True)
    )
    return PipelineView("digits", steps, tuple(DIGITS))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["layered", "graphviz"])
def test_the_svg_draws_each_step_and_edge_with_either_layout(engine, monkeypatch):
    if engine == "graphviz":
        from tests.browser import dot

        dot()
    svg = to_svg(digits_view(), engine=engine)
    assert f'data-layout="{engine}"' in svg
    assert svg.count('class="step ') == 6 and svg.count('class="edge"') == len(DIGITS)
    assert "rather long for the box it is in</text>" not in svg  # cut to fit the box
    assert "…</text>" in svg
    assert "rather long for the box it is in</title>" in svg  # whole in the tooltip
