"""The overall ETA of the live display counts each pending step at the time it took when it
last ran (from the run records), so a make of one long step between short ones is not
estimated by their mean; a step that never ran makes the ETA a lower bound (`≥`)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Project
from tipi.report import rich_reporter
from tipi.report.rich_reporter import AtLeast, MakeView

STEPS = """
import time
from tipi import PipelineProcess


class Wait(PipelineProcess):
    def __init__(self, controller, force: bool = False, seconds: float = 0.0) -> None:
        super().__init__(controller, force)
        self.seconds = seconds

    def execute(self) -> None:
        time.sleep(self.seconds)  # the step's work: a known duration
        text = "".join(p.read_text() for p in self.inputs.values())
        self.outputs["out"].write_text(text + "x")
"""


def step(name: str, seconds: float, after: str | None) -> str:
    inputs = f'inputs = {{ src = "out/{after}.txt" }}\n' if after else ""
    return (
        f'[processes.{name}]\ntype = "Wait"\nparams = {{ seconds = {seconds} }}\n{inputs}'
        f'outputs = {{ out = "out/{name}.txt" }}\n\n'
    )


SHORT_LONG_SHORT = step("a", 0.1, None) + step("b", 1.0, "a") + step("c", 0.1, "b")


@pytest.fixture
def estimates(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, float | None]]:
    """(step, when, ETA) as each step starts, then ("end", when, None) as the make ends: the
    live display is shown (as on a terminal) and asked at those events."""
    seen: list[tuple[str, float, float | None]] = []
    started, close = MakeView.started, MakeView.close

    def on_start(self: MakeView, name: str) -> None:
        started(self, name)
        seen.append((name, time.monotonic(), self.eta()))

    def on_close(self: MakeView) -> None:
        seen.append(("end", time.monotonic(), None))
        close(self)

    monkeypatch.setattr(MakeView, "started", on_start)
    monkeypatch.setattr(MakeView, "close", on_close)
    monkeypatch.setattr(rich_reporter, "interactive", lambda *args, **kwargs: True)
    return seen


def test_eta_counts_each_step_at_its_last_time(project: Project, cli, estimates) -> None:
    folder = project.pipeline("eta", SHORT_LONG_SHORT, steps=STEPS)
    assert cli("make").exit_code == 0
    assert [eta for name, _, eta in estimates if name != "end"] == [None, None, None]
    estimates.clear()  # first make: nothing known, no ETA (`--:--`), never a guess

    (folder / "pipeline.toml").write_text(SHORT_LONG_SHORT + step("d", 0.05, "c"))
    assert cli("make", "-F").exit_code == 0
    end = next(when for name, when, _ in estimates if name == "end")
    for name, when, eta in estimates:
        if name in ("a", "b"):  # c and d take less than the make's own bookkeeping
            real = end - when
            assert isinstance(eta, AtLeast), eta  # d never ran: a lower bound
            assert real / 1.5 <= eta <= real * 1.5, (name, eta, real)


def test_a_lower_bound_is_shown_as_such(project: Project) -> None:
    from rich.console import Console

    from tipi.report.board import Board

    board = Board(Console(width=120, record=True))
    view = MakeView(board, "p", ["a", "b"], expected={"a": 90.0})
    view.started("a")
    assert isinstance(view.eta(), AtLeast)
    board.console.print(board.make_tasks_table(board.ordered()))
    assert "eta ≥01:29" in board.console.export_text() or "eta ≥01:30" in (
        board.console.export_text()
    )
