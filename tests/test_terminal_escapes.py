"""Text a step wrote (metric names, its output, its exception) never drives the terminal:
`tipi runs`, `show`, `diff`, `status`, `graph`, the make's re-printed output, its live display
and error, and the HTML report show ESC and C1 controls as escapes (tipi/redact.py
`printable`), in-process and in a real terminal (tmux)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from tests.test_progress_terminal import TIPI, TMUX, Terminal
from tipi import redact
from tipi.cli.errors import render_error
from tipi.engine import Engine
from tipi.errors import ProcessFailure
from tipi.report.board import Board
from tipi.report.events import StepResult
from tipi.report.rich_reporter import RichReporter

CLIPBOARD = "\x1b]52;c;SGVsbG8=\x07"  # OSC 52: writes "Hello" to the clipboard
TITLE = "\x1b]0;pwned\x07"  # OSC 0: retitles the window
COLOUR = "\x1b[5;35m"  # blinking magenta: no style tipi itself uses
CSI_C1 = "\x9b2J"  # C1 CSI: clears the screen on terminals that read C1
RTL = "\u202e"  # right-to-left override: shows text reversed
EVIL = f"acc{CLIPBOARD}{TITLE}{COLOUR}red{CSI_C1}{RTL}"
RAW = (CLIPBOARD, TITLE, COLOUR, "\x9b", RTL)

# A step's own print in the make's process goes straight to the terminal, tipi does not see
# it: the steps print only in a worker (TIPI_NO_LIVE), whose output tipi re-prints.
STEPS = f"""
import json
import os
from tipi import PipelineProcess

EVIL = {EVIL!r}


def say(text):
    if os.environ.get("TIPI_NO_LIVE"):
        print(text + EVIL, flush=True)


class Score(PipelineProcess):
    def __init__(self, controller, force: bool = False, lr: float = 0.1) -> None:
        super().__init__(controller, force)
        self.lr = lr

    def execute(self) -> None:
        say("said ")
        self.outputs["metrics"].write_text(json.dumps({{EVIL: self.lr, "ok": 1.0}}))


class Boom(PipelineProcess):
    def execute(self) -> None:
        say("about to fail ")
        raise RuntimeError("failed " + EVIL)
"""

PIPELINE = """
[processes.score]
type = "Score"
params = { lr = 0.1 }
outputs = { metrics = "out/metrics.json" }
metrics = { m = "out/metrics.json" }

[processes.boom]
type = "Boom"
outputs = { out = "out/boom.txt" }
"""


def raw_in(text: str) -> list[str]:
    return [repr(seq) for seq in RAW if seq in text]


def strings(data: object) -> list[str]:
    """Every key and string in JSON data."""
    if isinstance(data, dict):
        return [*data, *(s for v in data.values() for s in strings(v))]
    if isinstance(data, list):
        return [s for v in data for s in strings(v)]
    return [data] if isinstance(data, str) else []


@pytest.fixture
def scored(project):
    """Two runs of `m` whose metrics file names a metric with escape sequences."""
    project.pipeline("m", PIPELINE, steps=STEPS)
    for lr in (0.1, 0.2):
        with pytest.raises(ProcessFailure):
            Engine("m", overrides=[f"score.lr={lr}"]).make(keep_going=True)
    return project


@pytest.mark.parametrize(
    "args",
    [["runs"], ["runs", "--json"], ["show"], ["show", "--json"], ["diff"], ["diff", "--json"]],
)
def test_runs_show_and_diff_escape_metric_names(scored, cli, args, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # room for runs' metric column (xdist sets 80)
    shown = cli(*args)
    assert shown.exit_code == 0, shown.stderr
    assert raw_in(shown.stdout + shown.stderr) == []
    if "--json" in args:
        data = json.loads(shown.stdout)  # still JSON, with the same names
        assert any(EVIL in text for text in strings(data))
    else:
        assert "\\x1b]52;c;" in shown.stdout.replace("\n", "")


@pytest.mark.parametrize("args", [["status"], ["graph", "--format", "json"]])
def test_status_and_graph_escape_the_last_error(scored, cli, args):
    shown = cli(*args, "-p", "m")
    assert "failed" in shown.stdout
    assert raw_in(shown.stdout + shown.stderr) == []


@pytest.mark.slow
def test_the_report_escapes_metric_names_and_errors(scored, cli):
    assert cli("report", "-p", "m").exit_code == 0
    html = (scored.root / "report.html").read_text()
    assert "\\x1b]52;c;SGVsbG8=\\x07" in html
    assert raw_in(html) == [] and "\x1b" not in html


def plain(text: str) -> str:
    """What a terminal shows of `text`, less Rich's own colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def terminal_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=300, color_system="truecolor"), out


def test_a_failure_is_shown_escaped():
    console, out = terminal_console()
    try:
        raise RuntimeError("failed " + EVIL)
    except RuntimeError as exc:
        render_error(ProcessFailure("boom", exc, hint="see " + TITLE), console)
    assert raw_in(out.getvalue()) == []
    assert "RuntimeError: failed acc\\x1b]52;c;" in plain(out.getvalue())


def test_output_re_printed_and_live_status_are_escaped():
    console, out = terminal_console()
    reporter = RichReporter(console)
    reporter.run_started("m", ["score"])
    reporter.step_started("score")
    reporter.step_output("score", f"said {EVIL}\nnext line\n")
    reporter.step_progress("score", f"said {EVIL}")
    reporter.warning("warned " + EVIL)
    reporter.notice("noticed " + EVIL)
    reporter.step_finished(StepResult("score", "ran", 0.1))
    assert raw_in(out.getvalue()) == []
    assert "score │ said acc\\x1b]52;c;" in plain(out.getvalue())


def test_a_bar_label_and_status_are_escaped():
    console, out = terminal_console()
    board = Board(console)
    board.add_row("epochs " + EVIL, total=3, status="loss " + EVIL)
    board.print_rows(board.ordered())
    assert raw_in(out.getvalue()) == []
    assert "epochs acc\\x1b]52;c;" in plain(out.getvalue())


def test_printable_keeps_lines_only_when_asked():
    assert redact.printable("a\nb\x1b") == "a\\nb\\x1b"
    assert redact.printable("a\nb\tc\x9b", lines=True) == "a\nb\tc\\x9b"
    assert redact.printable_json(json.dumps({"k\x9b": RTL}, ensure_ascii=False)) == (
        '{"k\\u009b": "\\u202e"}'
    )
    assert redact.printable_html("<b>\x1b") == "&lt;b&gt;\\x1b"


class ClipboardTerminal(Terminal):
    """A tmux window whose applications may set the clipboard (OSC 52 makes a paste buffer)
    and its title (OSC 0): what a person's terminal obeys."""

    def run(self, command: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        conf = Path(self.socket).with_name("tmux.conf")
        conf.write_text("set -g set-clipboard on\nset -g allow-rename on\n")
        script = f"cd {cwd} && env -u CI -u TIPI_NO_LIVE {command}; echo __tipi_test_done__ 0"
        self.tmux("-f", str(conf), "new-session", "-d", "-s", "t", "-x", "200", "-y", "50",
                  script + "; sleep 600")  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_in_a_real_terminal_nothing_retitles_or_writes_the_clipboard(project, tmp_path):
    """`tipi make -j 2` re-prints the steps' output, shows their bars and the failure; then
    runs, show and diff show the metric names: the window keeps its title and the clipboard
    stays empty, and the screen shows the escapes as text."""
    project.pipeline("m", PIPELINE, steps=STEPS)
    terminal = ClipboardTerminal(tmp_path)
    try:
        title = "before"
        commands = [
            f"printf '\\033]0;{title}\\007'",
            f"{TIPI} make -p m -k -j 2",
            f"{TIPI} make -p m -k -j 2 --set score.lr=0.2",
            f"{TIPI} make -p m -k --set score.lr=0.3",  # in-process: tipi prints the error
            f"{TIPI} runs",
            f"{TIPI} show",
            f"{TIPI} diff",
            f"{TIPI} status -p m",
        ]
        terminal.run("; ".join(commands), project.root)
        screen = terminal.finished()
        assert terminal.tmux("display", "-p", "-t", "t", "#{pane_title}").strip() == title
        assert terminal.tmux("list-buffers") == ""
        assert "score │ said acc\\x1b]52;c;SGVsbG8=\\x07" in screen  # re-printed, escaped
        assert "RuntimeError: failed acc\\x1b]52;c;" in screen
        # show and diff name it step.name; runs' column titles it by its name alone
        assert screen.count("m.acc\\x1b]52;c;") + screen.count("score.acc\\x1b]52;c;") >= 2
    finally:
        terminal.close()


@pytest.mark.parametrize("fmt", ["tree", "dot", "mermaid"])
@pytest.mark.parametrize("files", [[], ["--files"]])
def test_graph_text_formats_escape_an_outputs_path(project, cli, fmt, files):
    """`tipi graph` prints DOT, Mermaid and the tree as they are: an output whose path holds
    escape sequences (in the file nodes, and in the reason it is missing) shows them as text."""
    toml = f'[processes.score]\ntype = "Score"\noutputs = {{ metrics = {json.dumps(f"out/{EVIL}")} }}\n'
    project.pipeline("g", toml, steps=STEPS)
    Engine("g").make()
    (project.root / "out" / EVIL).unlink()  # a reason now names it
    shown = cli("graph", "-p", "g", "--format", fmt, *files)
    assert shown.exit_code == 0, shown.stderr
    assert raw_in(shown.stdout + shown.stderr) == []
    if files or fmt == "dot":  # the path itself, or the reason (a tooltip) that names it
        assert "\\x1b]52;c;" in shown.stdout
