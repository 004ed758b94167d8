"""`tipi report`: one self-contained HTML file, opened in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.browser import dump_dom, screenshot
from tipi.engine import Engine

# every test here starts processes (or takes seconds): not in the fast tier
pytestmark = pytest.mark.slow

REPO = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def digits_report(tmp_path_factory):
    """The digits pipeline (3 epochs) made three times: lr 0.003 (run A), lr 0.01 (run B),
    then lr 0.003 again, which restores train and evaluate from the run cache (A's)."""
    root = tmp_path_factory.mktemp("report")
    shutil.copytree(REPO / "pipelines/digits", root / "pipelines/digits")
    text = (
        (root / "pipelines/digits/pipeline.toml").read_text().replace("epochs = 12", "epochs = 3")
    )
    (root / "pipelines/digits/pipeline.toml").write_text(text.replace("T_max = 12", "T_max = 3"))
    Engine("digits", root=root).make(["evaluate"])
    Engine("digits", root=root, overrides=["train.lr=0.01"]).make(["evaluate"])
    again = Engine("digits", root=root).make(["evaluate"])
    assert {r.name: r.outcome for r in again.results if r.outcome != "skipped"} == {
        "train": "restored",
        "evaluate": "restored",
    }
    return root


def test_report_is_self_contained_and_complete(digits_report, cli, monkeypatch):
    monkeypatch.chdir(digits_report)
    result = cli("report", "-o", "report.html")
    assert result.exit_code == 0, result.stderr
    page = (digits_report / "report.html").read_text()
    assert not re.search(r'(src|href)="https?://', page)  # nothing to fetch to view it
    for step in ("prepare", "train", "evaluate", "predict", "export", "profile"):
        assert f'data-step="{step}"' in page
    assert 'href="out/digits/train/model.pt"' in page  # links to outputs
    assert "out/digits/export/model.onnx (missing)" in page  # not built yet
    assert 'data-metric="loss"' in page and 'data-metric="accuracy"' in page
    assert 'id="run-picker"' in page and 'id="runs"' in page


def test_report_renders_in_headless_chromium(digits_report, cli, monkeypatch, tmp_path):
    monkeypatch.chdir(digits_report)
    cli("report", "-o", "report.html")
    dom = dump_dom(digits_report / "report.html")
    assert dom.count('class="step up-to-date"') == 3  # prepare, train, evaluate in the DAG
    assert dom.count('class="step never-run"') == 3
    assert dom.count('class="step-row"') == 6
    png = screenshot(digits_report / "report.html", tmp_path / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000  # a drawn page, not a blank one


SIGNATURES = {
    "tree": "prepare [up-to-date]",
    "dot": 'digraph "digits"',
    "mermaid": "flowchart LR",
    "json": '"pipeline": "digits"',
    "svg": "<svg",
    "png": "\x89PNG",
    "html": "<!DOCTYPE html>",
}


@pytest.mark.parametrize("fmt", list(SIGNATURES))
def test_the_digits_graph_renders_in_every_format(digits_report, cli, monkeypatch, fmt):
    from tests.browser import dot

    if fmt in ("svg", "png"):
        dot()
    monkeypatch.chdir(digits_report)
    result = cli("graph", "--format", fmt, "-o", f"graph.{fmt}")
    assert result.exit_code == 0, result.stderr
    data = (digits_report / f"graph.{fmt}").read_bytes().decode("latin-1")
    assert SIGNATURES[fmt] in data
    if fmt != "png":
        for step in ("prepare", "train", "evaluate", "predict", "export", "profile"):
            assert step in data


def view_section(dom: str, view: str) -> str:
    found = re.search(
        rf'<section class="run-view" data-view="{re.escape(view)}"[^>]*>(.*?)</section>', dom, re.S
    )
    assert found, view
    return found.group(1)


def shown_views(dom: str) -> list[str]:
    return re.findall(r'<section class="run-view" data-view="([^"]+)">', dom)  # not hidden


def colour_pixels(png, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    image = pytest.importorskip("PIL.Image").open(png).convert("RGB")
    return sum(
        count
        for count, pixel in image.getcolors(1 << 24)
        if all(abs(a - b) <= tolerance for a, b in zip(pixel, rgb, strict=True))
    )


def test_the_report_shows_the_runs_in_headless_chromium(digits_report, cli, monkeypatch, tmp_path):
    monkeypatch.chdir(digits_report)
    result = cli("report", "-o", "report.html")
    assert result.exit_code == 0, result.stderr
    dom = dump_dom(digits_report / "report.html")
    # the DAG, laid out by Graphviz when it is installed
    layout = "graphviz" if shutil.which("dot") else "layered"
    assert re.search(rf'<svg [^>]*data-layout="{layout}"', dom)
    # the runs table of `tipi runs`: A, B and the make that restored A's outputs
    runs = re.findall(r'<tr data-run="([^"]+)"', dom)
    assert len(runs) == 3
    restored, _, first = runs
    assert "restored: train, evaluate" in dom and "train.lr 0.003→0.01" in dom
    # the picker: the outputs in place (run A's) first, every run, and B and A overlaid
    options = re.findall(r'<option value="([^"]+)"', dom)
    assert set(options) == {"compare", *runs}
    assert shown_views(dom) == [first]
    assert re.search(
        rf'<option value="{first}"[^>]*selected[^>]*>run {first} \(outputs in place\)', dom
    )
    body = view_section(dom, first)
    # train and val of one metric overlaid, axes labelled with values, a legend
    chart = re.search(r'<div class="chart" data-metric="loss".*?</svg></div>', body, re.S).group(0)
    assert re.findall(r'class="tick x-tick"[^>]*>([^<]+)<', chart) == ["1", "2", "3"]
    assert len(re.findall(r'class="tick y-tick"', chart)) >= 3
    assert ">epoch</text>" in chart and 'class="axis-label y-label"' in chart
    legend = re.findall(r'class="legend-label"[^>]*>([^<]+)<', chart)
    assert legend == ["train_loss", "val_loss"]
    # the confusion matrix image, the params table and the metrics table
    assert re.search(r'data-figure="confusion_matrix"><img [^>]*src="data:image/png;base64,', body)
    params = re.search(r'<table class="params">(.*?)</table>', body, re.S).group(1)
    assert re.search(r"<td>train\.lr</td><td[^>]*>0\.003</td>", params)
    metrics = re.search(r'<table class="metrics">(.*?)</table>', body, re.S).group(1)
    assert re.search(r"<td>evaluate\.accuracy</td><td[^>]*>0\.\d+</td>", metrics)
    # the run that restored shows the curves of the run that ran train
    assert f"its curves are those of run {first}" in view_section(dom, restored)
    # a screenshot where each is drawn: the DAG's boxes, both curves, the confusion matrix
    png = screenshot(digits_report / "report.html", tmp_path / "runs.png", size="1300,3000")
    assert colour_pixels(png, (0xD7, 0xF0, 0xDD)) > 2000  # up-to-date boxes of the DAG
    assert colour_pixels(png, (0x15, 0x65, 0xC0), 40) > 100  # train curves
    assert colour_pixels(png, (0xEF, 0x6C, 0x00), 40) > 100  # val curves
    assert colour_pixels(png, (0x08, 0x30, 0x6B), 30) > 200  # the matrix's darkest cells


def test_runs_overlays_the_runs_it_names(digits_report, cli, monkeypatch):
    monkeypatch.chdir(digits_report)
    cli("report", "-o", "report.html")
    runs = re.findall(r'<tr data-run="([^"]+)"', (digits_report / "report.html").read_text())
    first, fast = runs[2], runs[1]
    result = cli("report", "-o", "compare.html", "--runs", first, fast[-6:])
    assert result.exit_code == 0, result.stderr
    dom = dump_dom(digits_report / "compare.html")
    assert shown_views(dom) == ["compare"]
    body = view_section(dom, "compare")
    chart = re.search(r'<div class="chart" data-metric="loss".*?</svg></div>', body, re.S).group(0)
    assert set(re.findall(r'<g class="series" [^>]*data-run="([^"]+)"', chart)) == {first, fast}
    assert "params that differ" in body and re.search(r"<td>train\.lr</td>", body)
    assert body.count('data-figure="confusion_matrix"') == 2  # one per run
    bad = cli("report", "-o", "x.html", "--runs", "zzz")
    assert bad.exit_code != 0 and "no run 'zzz'" in bad.stderr


def test_without_graphviz_the_dag_is_laid_out_by_tipi(digits_report, cli, monkeypatch):
    from tipi.report import layout

    monkeypatch.setattr(layout.shutil, "which", lambda name: None)
    monkeypatch.chdir(digits_report)
    assert cli("report", "-o", "layered.html").exit_code == 0
    page = (digits_report / "layered.html").read_text()
    assert re.search(r'<svg [^>]*data-layout="layered"', page)
    # prepare → train, evaluate, predict, export (it measures val accuracy); train → evaluate,
    # predict, export, profile; export → profile
    assert page.count('class="edge"') == 9
