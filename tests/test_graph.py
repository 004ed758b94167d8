"""`tipi graph` and `tipi status`: every format's content, states and reasons."""

from __future__ import annotations

import html
import json
import subprocess

import pytest

from tests.browser import MERMAID, dot, dump_dom
from tests.make_helpers import PIPELINE, STEPS
from tipi.engine import Engine


@pytest.fixture
def proj(project):
    """The make_helpers pipeline in every state: a up to date, b will run, up failed last
    time, cat and conf never run."""
    project.pipeline(
        "m", PIPELINE.replace("[processes.up]", "[processes.up]\nparams = {}"), steps=STEPS
    )
    Engine("m").make(["a", "b"])
    (project.root / "pipelines/m/pipeline.toml").write_text(
        PIPELINE.replace('text = "b"', 'text = "B"').replace('type = "Upper"', 'type = "Boom"')
    )
    (project.root / "pipelines/m/steps.py").write_text(
        STEPS
        + "\n\nclass Boom(PipelineProcess):\n    def execute(self):\n        raise RuntimeError('kaput')\n"
    )
    with pytest.raises(Exception, match="kaput"):
        Engine("m").make(["up"])
    return project


def graph(cli, *args: str) -> str:
    result = cli("graph", "-p", "m", *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_tree_marks_each_state_with_its_first_reason(proj, cli):
    out = graph(cli)
    assert "✔ a [up-to-date]" in out
    assert "→ b [will-run]: params changed: text 'b' → 'B'" in out
    assert "✘ up [failed]" in out
    assert "○ cat [never-run]" in out
    assert out.index("a [up-to-date]") < out.index("up [failed]")  # drawn top-down


@pytest.mark.slow
def test_dot_is_valid_for_graphviz_and_colours_states(proj, cli):
    out = graph(cli, "--format", "dot")
    assert out.startswith('digraph "m" {')
    assert '"a" -> "up";' in out and '"up" -> "cat";' in out
    assert 'fillcolor="#fbd9dc"' in out  # failed
    checked = subprocess.run([dot(), "-Tsvg"], input=out, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "<svg" in checked.stdout


def test_files_adds_artifact_nodes(proj, cli):
    out = graph(cli, "--format", "dot", "--files")
    assert '"file:out/a.txt" [label="out/a.txt", shape=note' in out
    assert '"a" -> "file:out/a.txt";' in out and '"file:out/a.txt" -> "up";' in out
    data = json.loads(graph(cli, "--format", "json", "--files"))
    assert {"id": "file:out/b.txt", "kind": "file", "path": "out/b.txt"} in data["nodes"]


def test_json_holds_states_reasons_and_the_last_error(proj, cli):
    data = json.loads(graph(cli, "--format", "json"))
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes["a"]["state"] == "up-to-date" and nodes["a"]["last_run"] is not None
    assert nodes["b"]["reasons"] == ["params changed: text 'b' → 'B'"]
    assert nodes["up"]["state"] == "failed" and "kaput" in nodes["up"]["error"]
    assert nodes["conf"]["state"] == "never-run"
    assert {"from": "up", "to": "cat"} in data["edges"]


@pytest.mark.slow
def test_mermaid_renders_in_a_browser(proj, cli, tmp_path):
    out = graph(cli, "--format", "mermaid")
    assert out.startswith("flowchart LR")
    assert ":::failed" in out and "classDef up_to_date" in out
    if not MERMAID.exists():
        pytest.skip("mermaid.js was not fetched (scripts/test-deps.sh fetches it)")
    page = tmp_path / "mermaid.html"
    page.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><script src="{MERMAID.as_uri()}"></script></head>'
        f'<body><pre class="mermaid">{html.escape(out)}</pre><script>'
        "mermaid.initialize({startOnLoad: false});"
        "mermaid.run().then(() => document.body.setAttribute('data-rendered', 'yes'))"
        ".catch(e => document.body.setAttribute('data-error', String(e)));"
        "</script></body></html>"
    )
    dom = dump_dom(page)
    assert 'data-rendered="yes"' in dom, dom[-2000:]
    assert "node default failed" in dom and "node default up_to_date" in dom


@pytest.mark.slow
def test_svg_and_png_use_graphviz(proj, cli, tmp_path):
    dot()
    graph(cli, "--format", "svg", "-o", str(tmp_path / "g.svg"))
    assert "<svg" in (tmp_path / "g.svg").read_text()
    graph(cli, "--format", "png", "-o", str(tmp_path / "g.png"))
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_graphviz_svg_says_what_to_install(proj, cli, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = cli("graph", "-p", "m", "--format", "svg")
    assert result.exit_code == 2
    assert "needs Graphviz's `dot`" in result.stderr
    assert "apt-get install graphviz" in result.stderr


def test_unknown_format_lists_the_formats(proj, cli):
    result = cli("graph", "-p", "m", "--format", "gif")
    assert result.exit_code == 2
    # a Typer enum: click lists the allowed values
    assert "Invalid value for '--format'" in result.stderr
    assert "'gif' is not one of" in result.stderr


def test_status_table_shows_state_last_run_duration_and_reasons(proj, cli):
    result = cli("status", "-p", "m")
    out = result.stdout
    for text in ("✔ up-to-date", "→ will-run", "✘ failed", "○ never-run", "last error:", "kaput"):
        assert text in out, text
    assert "never" in out  # last run of a step that never ran


def test_explain_prints_every_reason(proj, cli):
    result = cli("make", "-p", "m", "-n", "--explain", "b")
    assert "- params changed: text 'b' → 'B'" in result.stderr


@pytest.mark.slow
def test_html_format_is_a_page_with_the_dag(proj, cli, tmp_path):
    graph(cli, "--format", "html", "-o", str(tmp_path / "g.html"))
    page = (tmp_path / "g.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert '<g class="step failed" data-step="up">' in page
    assert '<g class="step will-run" data-step="b">' in page
