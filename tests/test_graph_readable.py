"""What a person reads in `tipi graph` and the report (issue 31, item 7): the text tree draws
each step once in the order they run, a long reason does not widen a step's box (Graphviz's
drawing in headless Chromium), the report's x axis is the data's range, and a confusion
matrix names every class up to 20."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.browser import dot, dump_dom
from tests.make_helpers import PIPELINE, STEPS
from tipi.report.plots import Series, heat_map, line_chart

LONG = "a long value " * 12  # one param whose change is a 170-character reason


@pytest.fixture
def proj(project):
    project.pipeline("m", PIPELINE, steps=STEPS)
    return project


def test_the_tree_draws_each_step_once_under_the_input_it_waits_for_last(proj, cli):
    result = cli("graph", "-p", "m")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    names = [re.search(r"[○✔→✘] (\w+) \[", line)[1] for line in lines]
    assert sorted(names) == ["a", "b", "cat", "conf", "up"]  # once each, no "..." rows
    assert "╾" not in result.stdout and "..." not in result.stdout
    assert lines[0].startswith("○ a [never-run]")
    assert re.fullmatch(r"└─ ○ up \[never-run\].*", lines[1])
    cat = next(line for line in lines if " cat [" in line)
    # cat waits for b last (b runs after up): drawn under b, saying it needs up too
    assert lines[lines.index(cat) - 1].startswith("○ b [never-run]")
    assert cat.startswith("└─ ○ cat [never-run]") and cat.endswith("(also needs up)")
    assert names.index("up") < names.index("cat") and names.index("b") < names.index("cat")


def node_widths(svg: str, tmp_path) -> dict[str, float]:
    """Each step's box width as Chromium lays out Graphviz's SVG."""
    page = tmp_path / "graph.html"
    page.write_text(
        f"<html><body>{svg}<pre id='out'></pre><script>"
        "const w = {}; document.querySelectorAll('g.node').forEach(g => {"
        " w[g.querySelector('title').textContent] = g.querySelector('path,polygon')"
        ".getBBox().width; });"
        "document.getElementById('out').textContent = JSON.stringify(w);"
        "</script></body></html>"
    )
    import json

    dom = dump_dom(page)
    return json.loads(re.search(r"<pre id=\"out\">(.*?)</pre>", dom)[1].replace("&quot;", '"'))


@pytest.mark.slow
def test_a_long_reason_does_not_widen_its_box(proj, cli, tmp_path):
    from tipi.engine import Engine

    Engine("m").make(["b"])
    out = cli("graph", "-p", "m", "--format", "dot", "--set", f"b.text={LONG}").stdout
    b_line = next(line for line in out.splitlines() if line.startswith('  "b" ['))
    tooltip = re.search(r'tooltip="([^"]*)"', b_line)[1]
    assert tooltip.startswith("params changed: text 'b' → '" + LONG[:50])  # whole there
    svg = subprocess.run([dot(), "-Tsvg"], input=out, capture_output=True, text=True).stdout
    widths = node_widths(svg[svg.index("<svg") :], tmp_path)
    assert set(widths) >= {"a", "b", "up", "cat", "conf"}
    assert widths["b"] < 300, widths  # about 34 characters, not 170
    assert widths["b"] <= 1.3 * max(widths[n] for n in ("a", "up", "cat", "conf")), widths
    mermaid = cli("graph", "-p", "m", "--format", "mermaid", "--set", f"b.text={LONG}").stdout
    box = next(line for line in mermaid.splitlines() if '["b<br/>' in line)
    assert max(len(part) for part in box.split("<br/>")) < 60 and "…" in box


@pytest.mark.slow
def test_the_x_axis_is_the_datas_range(tmp_path):
    svg = line_chart(
        "loss", [Series("loss", tuple((e, 1 / e) for e in range(1, 13)))], "epoch", "loss"
    )
    page = tmp_path / "chart.html"
    page.write_text(f"<html><body>{svg}</body></html>")
    dom = dump_dom(page)
    ticks = [int(t) for t in re.findall(r'class="tick x-tick"[^>]*>([^<]+)<', dom)]
    assert ticks == [2, 4, 6, 8, 10, 12]  # not 0, 5, 10, 15 for 12 epochs
    first, last = (float(x) for x in re.findall(r'<circle cx="([\d.]+)"', dom)[::11])
    frame = re.search(r'<rect x="(\d+)" y="\d+" width="(\d+)"', dom)
    assert first == float(frame[1]) and last == float(frame[1]) + float(frame[2])  # ends at 12


def test_the_reports_heat_map_names_every_class_up_to_20():
    svg = heat_map([[float(i == j) for j in range(10)] for i in range(10)])
    labels = re.findall(r'text-anchor="middle">(\d+)</text>', svg)
    assert sorted({int(x) for x in labels}) == list(range(10))


@pytest.mark.slow  # torch and matplotlib
def test_the_evaluate_steps_confusion_figure_names_every_class():
    import torch

    from tipi.processes.evaluation import _confusion_figure

    figure = _confusion_figure(torch.eye(10, dtype=torch.int64))
    figure.canvas.draw()
    axes = figure.axes[0]
    shown = [t.get_text() for t in axes.get_xticklabels() if t.get_visible()]
    assert shown == [str(k) for k in range(10)]  # matplotlib alone labels 0, 2, 4, 6, 8
    assert [t.get_text() for t in axes.get_yticklabels()] == [str(k) for k in range(10)]
