"""`--help` of the main commands ends with examples; the commands that only ask (status, graph,
report) speak of what would run, never of building or running."""

from __future__ import annotations

import re

import pytest

from tipi.cli.examples import EXAMPLES


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_help_ends_with_examples(cli, command: str) -> None:
    shown = cli(command, "--help").stdout
    assert "Examples" in shown
    flat = " ".join(shown.replace("│", " ").split())
    for line, what in EXAMPLES[command]:
        assert line in flat and what in flat, line


@pytest.mark.parametrize("command", ["status", "graph", "report"])
def test_asking_commands_do_not_speak_of_building(cli, command: str) -> None:
    shown = " ".join(cli(command, "--help").stdout.replace("│", " ").split())
    assert not re.search(r"to build|Run this step|Run every needed|push to it", shown), shown
    assert "Count this step as one that would run" in shown
