"""The live display: the board's tree of rows, the make's overall bar (running steps named, an
ETA by time), bars kept with `leave`, a resumed step, workers' bars forwarded to the driver."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from rich.console import Console

from tipi.report import channel, live
from tipi.report.board import Board
from tipi.report.events import StepResult
from tipi.report.live import LiveProgress
from tipi.report.rich_reporter import AtLeast, RichReporter, WarningsReporter


@pytest.fixture
def screen(monkeypatch):
    """Every live display draws into this fake terminal; progress_bar and ProgressManager
    believe they run in one."""
    import tipi.permanences.progress as progress_module
    import tipi.report.rich_reporter as reporter_module

    out = io.StringIO()
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TIPI_NO_LIVE", raising=False)
    for module in (progress_module, reporter_module):
        monkeypatch.setattr(module, "interactive", lambda console=None, file=None: True)
    terminal = Console(file=out, force_terminal=True, width=140)
    monkeypatch.setattr(live, "new_progress", lambda console=None: Board(console or terminal))
    yield out
    while LiveProgress.current() is not None:
        LiveProgress.release()


def board() -> Board:
    return Board(Console(file=io.StringIO(), force_terminal=True))


def shape(b: Board) -> list[tuple[str, int, bool]]:
    return [(t.description, t.fields["depth"], t.fields["kept"]) for t in b.ordered()]


def test_rows_nest_and_siblings_follow_their_slots():
    b = board()
    step = b.open_step("train")
    epochs = b.add_row("epochs", total=3, parent=step, slot=0)
    b.add_row("second", total=3, parent=step, slot=1)
    b.add_row("batches", total=10, parent=epochs, slot=1)
    b.add_row("first", total=3, parent=step, slot=0)  # same slot as epochs, which is open
    assert shape(b) == [
        ("train", 0, False),
        ("epochs", 1, False),
        ("batches", 2, False),
        ("first", 1, False),
        ("second", 1, False),
    ]


def test_a_kept_row_stays_until_a_bar_takes_its_slot():
    b = board()
    outer = b.add_row("outer", total=2, slot=0)
    inner = b.add_row("inner 1", total=5, parent=outer, slot=1)
    b.set_row(inner, completed=5)
    b.close_row(inner, keep=True)
    assert shape(b) == [("outer", 0, False), ("inner 1", 1, True)]
    b.add_row("inner 2", total=5, parent=outer, slot=1)
    assert shape(b) == [("outer", 0, False), ("inner 2", 1, False)]


def test_dropping_a_row_keeps_its_open_children_and_returns_its_kept_ones():
    b = board()
    step = b.open_step("s")
    done = b.add_row("done", total=1, parent=step, slot=0)
    b.close_row(done, keep=True)
    b.add_row("still open", total=1, parent=step, slot=1)
    kept = b.close_step("s")
    assert [t.description for t in kept] == ["done"]
    assert shape(b) == [("still open", 0, False)]


def test_the_display_is_never_refreshed_while_its_rows_are_locked(monkeypatch):
    """Rich's refresh thread holds the Live's lock and then takes the rows'; refreshing while
    holding the rows' lock (add_task refreshes) would deadlock the make."""
    b = board()
    held = []
    monkeypatch.setattr(b, "refresh", lambda: held.append(b._lock._is_owned()))
    step = b.open_step("s")
    kept = b.add_row("a", total=1, parent=step, slot=0)
    b.close_row(kept, keep=True)
    b.add_row("b", total=1, parent=step, slot=0)  # replaces the kept row first
    b.set_row(step, status="x")
    b.close_step("s")
    assert held and not any(held)


def test_the_overall_bar_names_the_running_steps_and_estimates_by_time(screen, monkeypatch):
    now = [100.0]
    monkeypatch.setattr("tipi.report.rich_reporter.time.monotonic", lambda: now[0])
    reporter = RichReporter(Console(file=io.StringIO(), force_terminal=True))
    reporter.recorded = lambda steps: {"evaluate": 30.0, "export": 15.0}  # their last runs
    reporter.run_started("p", ["prepare", "train", "evaluate", "export"])
    view = reporter._view
    b = LiveProgress.current()
    overall = b._tasks[view.row]
    eta = view.eta()  # prepare and train never ran: at least evaluate and export's times
    assert eta == pytest.approx(45) and isinstance(eta, AtLeast)
    reporter.step_started("prepare")
    assert overall.fields["status"] == "▶ prepare"
    now[0] += 10
    reporter.step_finished(StepResult("prepare", "ran", seconds=10.0))
    reporter.step_started("train")
    assert overall.fields["status"] == "▶ train"  # the step running, not the one finished
    epochs = b.add_row("epochs", total=4, parent=b.step_row("train"), slot=0)
    b.set_row(epochs, completed=1)
    now[0] += 20  # a quarter of train in 20 s: 60 s left; then evaluate and export's last times
    assert view.eta() == pytest.approx(60 + 30 + 15)
    assert not isinstance(view.eta(), AtLeast)  # every step still to come is known
    reporter.step_finished(StepResult("train", "ran", seconds=20.0))
    reporter.run_finished(_summary())
    assert LiveProgress.current() is None


def test_a_resumed_step_says_so_on_its_row(screen):
    reporter = RichReporter(Console(file=io.StringIO(), force_terminal=True))
    reporter.run_started("p", ["train"])
    reporter.notice("resuming train from its checkpoint of 10:42")  # from the driver
    reporter.step_started("train")
    b = LiveProgress.current()
    row = b._tasks[b.step_row("train")]
    assert row.fields["status"].startswith("↻ resumed")
    reporter.step_progress("train", "epoch 3")
    assert row.fields["status"] == "↻ resumed  epoch 3"
    reporter.step_finished(StepResult("train", "ran", seconds=1.0))
    reporter.run_finished(_summary())


def test_a_step_resuming_in_a_worker_says_so_on_its_row(screen, tmp_path):
    from tipi.dispatch import _resume_note

    log = tmp_path / "train.log"
    log.write_text("note: resuming train at epoch 3, batch 7 (checkpoint of 10:42)\nepoch 3\n")
    note = _resume_note(log, "train")
    assert note.startswith("note: resuming train at epoch 3")
    assert _resume_note(log, "tra") == ""  # another step's name, not a prefix of one
    reporter = RichReporter(Console(file=io.StringIO(), force_terminal=True))
    reporter.run_started("p", ["train"])
    reporter.step_started("train")
    reporter.step_progress("train", note)  # as Workers._show_status passes it on
    b = LiveProgress.current()
    assert b._tasks[b.step_row("train")].fields["status"].startswith("↻ resumed")
    reporter.step_finished(StepResult("train", "ran", seconds=1.0))
    reporter.run_finished(_summary())


def test_kept_bars_are_printed_under_the_steps_line(screen):
    from tipi.permanences.progress import ProgressManager

    out = io.StringIO()
    reporter = RichReporter(Console(file=out, force_terminal=True, width=140))
    reporter.run_started("p", ["train"])
    reporter.step_started("train")
    pm = ProgressManager()
    pm.initialize()
    b = LiveProgress.current()
    pm.add("epochs", total=3)
    b.set_row(pm._tasks["epochs"].row, parent=b.step_row("train"))  # as inside the step
    pm.advance("epochs", 3)
    pm.remove("epochs")
    pm.cleanup()
    reporter.step_finished(StepResult("train", "ran", seconds=1.0))
    reporter.run_finished(_summary())
    after = out.getvalue().split("✔ train")[1]
    assert "epochs" in after and "3/3" in after


def test_a_workers_bars_are_forwarded_under_its_step(screen, tmp_path):
    log = str(tmp_path / "train.log")
    writer = channel.Writer(str(channel.path_for(log)), "run-7")
    writer.put("a:epochs", _row("epochs", 1, 3, None), force=True)
    writer.put("a:batches", _row("batches", 4, 10, "a:epochs"), force=True)
    reporter = RichReporter(Console(file=io.StringIO(), force_terminal=True))
    reporter.run_started("p", ["train"])
    reporter.step_started("train")
    channel.show("train", log, "run-7")
    b = LiveProgress.current()
    assert [(t.description, t.fields["depth"]) for t in b.ordered()][1:] == [
        ("train", 0),
        ("epochs", 1),
        ("batches", 2),
    ]
    assert channel.forwarded("train")
    writer.drop("a:batches")
    time.sleep(0.01)  # a new modification time
    writer.put("a:epochs", {**_row("epochs", 3, 3, None), "done": True}, force=True)
    reporter.step_output("train", "[progress]   epochs: 100%\nreal output\n")
    reporter.step_finished(StepResult("train", "ran", seconds=1.0))  # reads the last state
    reporter.run_finished(_summary())
    text = reporter.console.file.getvalue()
    assert "real output" in text and "epochs: 100%" not in text  # shown as a bar instead
    assert "3/3" in text  # the kept bar, printed under the step's line


def test_a_stale_side_file_of_another_run_is_ignored(screen, tmp_path):
    log = str(tmp_path / "old.log")
    channel.path_for(log).write_text(json.dumps({"version": 1, "run": "old", "rows": []}))
    reporter = RichReporter(Console(file=io.StringIO(), force_terminal=True))
    reporter.run_started("p", ["old"])
    reporter.step_started("old")
    channel.show("old", log, "new")
    assert not channel.forwarded("old")
    reporter.step_finished(StepResult("old", "ran", seconds=1.0))
    reporter.run_finished(_summary())


def test_quiet_makes_silence_bars_while_they_run():
    quiet = WarningsReporter(Console(file=io.StringIO()))
    quiet.run_started("p", ["a"])
    assert live.silenced()
    quiet.run_finished(_summary())
    assert not live.silenced()


def test_script_bars_in_a_terminal_nest_and_the_finished_ones_stay(screen):
    from tipi.helpers import tqdm

    outer = tqdm(range(2), desc="epochs")
    b = LiveProgress.current()
    for _ in outer:
        for _ in tqdm(range(3), desc="batches", colour="green"):
            pass
        rows = [(t.description, t.fields["depth"]) for t in b.ordered()]
        assert rows == [("epochs", 0), ("batches", 1)]  # the last epoch's batches replaced
    assert LiveProgress.current() is None  # released with the last bar
    final = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue().rsplit("\x1b[2K", 1)[-1])
    assert re.search(r"epochs .* 2/2", final) and re.search(r"  batches .* 3/3", final)


def _row(label: str, n: int, total: int, parent: str | None) -> dict:
    return {
        "parent": parent, "label": label, "n": n, "total": total, "status": "", "unit": "it",
        "unit_scale": False, "unit_divisor": 1000, "slot": label, "colour": None, "done": False,
    }  # fmt: skip


def _summary():
    from tipi.report.events import RunSummary

    return RunSummary("p")
