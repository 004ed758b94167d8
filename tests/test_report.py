"""`tipi report`: one self-contained HTML file, opened in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.browser import dump_dom, screenshot
from tipi.engine import Engine

REPO = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def digits_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    shutil.copytree(REPO / "pipelines/digits", root / "pipelines/digits")
    text = (
        (root / "pipelines/digits/pipeline.toml").read_text().replace("epochs = 12", "epochs = 3")
    )
    (root / "pipelines/digits/pipeline.toml").write_text(text.replace("T_max = 12", "T_max = 3"))
    Engine("digits", root=root).make(["evaluate"])
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
    assert 'data-metric="val_accuracy"' in page and 'data-metric="train_loss"' in page


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
