"""The examples at the end of each main command's `--help` (Typer's epilog). They are run by
tests/test_docs_commands.py, on the shipped pipelines, so they stay true."""

from __future__ import annotations

# command → (command line, what it does); `-p digits` where the project has several pipelines.
EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "make": [
        ("tipi make -p digits", "make every step that is out of date"),
        ("tipi make train -p digits --set train.lr=0.01", "train (and what it needs), lr 0.01"),
        ("tipi make -n --explain -p digits", "say what would run and every reason; run nothing"),
        ("tipi make -p digits -f train", "rerun train even if up to date (-F: every step)"),
        ("tipi make -p digits -j 4 -k", "4 steps at once; after a failure, go on with the rest"),
    ],
    "run": [
        ("tipi run digits", "every step of digits (what is up to date is skipped)"),
        ("tipi run digits --set train.epochs=3 -q", "3 epochs; print only warnings and errors"),
    ],
    "status": [
        ("tipi status -p digits", "each step's state, last run and why it would run"),
        ("tipi status -p digits --set train.lr=0.01", "what that change would rerun"),
        ("tipi status -p digits --check", "exit 1 when a step would run (a CI gate)"),
        ("tipi status -p digits --json", "the same for scripts"),
    ],
    "graph": [
        ("tipi graph -p digits", "the step graph in the terminal, each step's state"),
        ("tipi graph -p digits --format mermaid", "for a Markdown page (also dot, svg, html)"),
    ],
    "report": [
        ("tipi report -p digits", "report.html: the graph, the steps, the runs' curves"),
        ("tipi report -p digits -o digits.html", "the same report, written to digits.html"),
    ],
    "sweep": [
        ("tipi sweep -p digits --grid train.lr=0.001,0.01", "a make per lr, then a table"),
        ("tipi sweep -p digits", "the variants of pipelines/digits/sweep.toml"),
    ],
    "runs": [
        ("tipi runs -p digits", "the makes that ran something, newest first"),
        ("tipi diff", "what differs between the two newest runs"),
    ],
}


def epilog(command: str) -> str:
    """The `--help` epilog of `command`: its examples as a shell script would hold them, each
    under a comment that says what it does (narrow enough for an 80-column terminal)."""
    shown = [f"[dim]# {what}[/dim]\n{line}" for line, what in EXAMPLES[command]]
    return "[bold]Examples[/bold]\n\n" + "\n\n".join(shown)
