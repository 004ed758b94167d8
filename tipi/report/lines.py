"""The lines a make prints, defined once for both ways of printing them: the full CLI's
RichReporter (rich_reporter.py) writes them as Rich markup, every styled span escaped; the no-op
fast path (tipi/_fastpath.py) writes them as plain text, which is what Rich prints to a pipe
or a file. This module imports nothing, so that the fast path can use it without Rich.

Each function takes `span(text, style)`, which returns `text` as it is to be printed in `style`
(a Rich style name): `plain` ignores the style; the reporter's wraps the escaped text in markup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

Span = Callable[[str, str], str]

# Each outcome's style and mark, and the order the summary line counts them in.
STYLE = {
    "ran": "green",
    "restored": "green",
    "skipped": "dim",
    "failed": "bold red",
    "not run": "yellow",
    "would run": "cyan",
}
MARK = {
    "ran": "✔",
    "restored": "⤓",
    "skipped": "·",
    "failed": "✘",
    "not run": "-",
    "would run": "→",
}
ORDER = ("ran", "restored", "would run", "skipped", "failed", "not run")
# Outcomes that took time worth showing.
TIMED = ("ran", "restored", "failed")
# The summary line's verdicts and their styles.
VERDICT = {
    "done": "green",
    "failed": "red",
    "interrupted": "yellow",
    "dry run": "cyan",
    "up to date": "green",
}


def plain(text: str, style: str) -> str:
    """A span as plain text: the style is dropped."""
    return text


def seconds(value: float) -> str:
    """A duration as the reporter writes it: `8ms` under a second, `1.25s` from one on."""
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def run_header(pipeline: str, steps: int, span: Span = plain) -> str:
    """`tipi NAME: 12 step(s)`, the first line of a make."""
    return f"{span('tipi', 'bold')} {span(pipeline, 'cyan')}: {steps} step(s)"


def step_line(
    name: str,
    outcome: str,
    took: float = 0.0,
    reasons: Sequence[str] = (),
    span: Span = plain,
) -> str:
    """`✔ NAME ran in 8ms: REASON (+2 more)`: a step's outcome, its time when it took some,
    and the first of `reasons` (pass none to leave them out)."""
    detail = outcome
    if outcome in TIMED:
        detail += f" in {seconds(took)}"
    if reasons:
        detail += f": {reasons[0]}" + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else "")
    return f"{span(f'{MARK[outcome]} {name}', STYLE[outcome])} {span(detail, 'dim')}"


def reason_line(reason: str, span: Span = plain) -> str:
    """`    - REASON`: one of a step's reasons, each on its own line (`--explain`)."""
    return f"    {span(f'- {reason}', 'dim')}"


def summary_line(verdict: str, counts: Mapping[str, int], took: float, span: Span = plain) -> str:
    """`up to date: 12 skipped in 8ms`, the last line of a make: its verdict (one of
    VERDICT), how many steps had each outcome, and how long it took."""
    listed = ", ".join(f"{counts[k]} {k}" for k in ORDER if counts.get(k))
    return f"{span(verdict, VERDICT[verdict])}: {listed or 'nothing to do'} in {seconds(took)}"
