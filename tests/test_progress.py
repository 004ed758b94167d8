"""ProgressManager: exact names, nesting, tqdm-like tracking, plain lines without a terminal
(paced, one per epoch, no duplicate last line), bars on the live display in a terminal."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from tipi.permanences.progress import NullProgressManager, ProgressManager
from tipi.report import channel, live
from tipi.report.board import Board
from tipi.report.live import LiveProgress


@pytest.fixture
def manager(monkeypatch):
    monkeypatch.setenv("CI", "true")  # no terminal: plain log lines
    pm = ProgressManager(log_interval=0)
    pm.initialize()
    yield pm
    pm.cleanup()


@pytest.fixture
def terminal(monkeypatch):
    """A live display drawn into a fake terminal (the StringIO it returns)."""
    import tipi.permanences.progress as progress_module

    screen = io.StringIO()
    monkeypatch.setattr(progress_module, "interactive", lambda console=None, file=None: True)
    monkeypatch.setattr(
        live,
        "new_progress",
        lambda console=None: Board(Console(file=screen, force_terminal=True, width=120)),
    )
    yield screen
    while LiveProgress.current() is not None:
        LiveProgress.release()


def plain(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("[progress]")]


def test_track_counts_items_and_writes_tqdms_line(manager, capsys):
    assert list(manager.track(range(3), "epochs")) == [0, 1, 2]
    lines = plain(capsys.readouterr().err)
    assert lines[0].startswith("[progress] epochs:  33%|")
    assert "| 1/3 [" in lines[0]
    assert lines[-1].startswith("[progress] epochs: 100%|██████████| 3/3 [")
    assert len(lines) == 3  # the last step's line is not written twice when the task ends
    assert manager.names == []


def test_names_are_exact_and_errors_list_the_open_tasks(manager):
    manager.add("train/batches", total=10)
    with pytest.raises(
        KeyError, match=r"no progress task named 'train/batch' \(open: train/batches\)"
    ):
        manager.advance("train/batch")
    with pytest.raises(ValueError, match="already open"):
        manager.add("train/batches")


def test_nested_tasks_are_indented_and_the_outer_one_has_a_line_per_step(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    pm = ProgressManager(log_interval=3600)  # batch lines paced out entirely
    pm.initialize()
    with pm.task("epochs", total=3):
        for epoch in range(3):
            for _ in pm.track(range(50), "batches", parent="epochs"):
                pass
            pm.update("epochs", completed=epoch + 1, status=f"loss {0.5 / (epoch + 1):.2f}")
    pm.cleanup()
    lines = plain(capsys.readouterr().err)
    assert [line.split("|")[0] for line in lines] == [
        "[progress] epochs:  33%",
        "[progress] epochs:  67%",
        "[progress] epochs: 100%",
    ]  # one line per epoch with its number and metrics; nested batches leave no last line
    assert lines[-1].endswith(", loss 0.17]")


def test_batch_lines_come_at_most_every_log_interval(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    clock = iter(range(0, 10_000, 3))  # each look at the clock: 3 s later
    monkeypatch.setattr("tipi.permanences.progress.time.monotonic", lambda: next(clock))
    pm = ProgressManager(log_interval=10)
    pm.initialize()
    pm.add("batches", total=20)
    for _ in range(20):
        pm.advance("batches")
    pm.remove("batches")
    pm.cleanup()
    counts = [int(line.split("| ")[1].split("/")[0]) for line in plain(capsys.readouterr().err)]
    # Opening reads the clock twice; then a line each 4 advances (12 s > 10 s), and the last.
    assert counts == [3, 7, 11, 15, 19, 20]


def test_generators_without_len_take_a_total(manager, capsys):
    def numbers():
        yield from range(4)

    assert sum(manager.track(numbers(), "gen", total=4)) == 6
    assert "gen: 100%|██████████| 4/4 [" in capsys.readouterr().err


def test_progress_task_decorator(manager, capsys):
    @manager.progress_task("work", total=2)
    def work() -> str:
        manager.advance("work")
        manager.advance("work")
        return "done"

    assert work() == "done"
    assert "work: 100%|██████████| 2/2 [" in capsys.readouterr().err


def test_leave_false_writes_no_last_line(manager, capsys):
    manager.add("temporary", total=2, leave=False)
    manager.remove("temporary")
    assert capsys.readouterr().err == ""


def test_null_manager_and_a_silenced_make_draw_nothing(monkeypatch, capsys):
    pm = NullProgressManager()
    pm.initialize()
    assert list(pm.track(range(3), "x")) == [0, 1, 2]
    pm.cleanup()
    monkeypatch.setenv("CI", "true")
    live.silence(True)  # `tipi make -q`
    try:
        quiet = ProgressManager(log_interval=0)
        quiet.initialize()
        assert list(quiet.track(range(3), "y")) == [0, 1, 2]
        quiet.cleanup()
    finally:
        live.silence(False)
    assert capsys.readouterr().err == ""


def test_live_display_is_shared_and_released():
    first = LiveProgress.acquire(Console(file=io.StringIO()))
    second = LiveProgress.acquire()
    assert first is second
    LiveProgress.release()
    assert LiveProgress.current() is first
    LiveProgress.release()
    assert LiveProgress.current() is None


def test_in_a_terminal_bars_join_the_live_display_and_kept_ones_stay(terminal):
    pm = ProgressManager()
    pm.initialize()
    board = LiveProgress.current()
    assert isinstance(board, Board)
    with pm.task("epochs", total=2) as epochs:
        pm.add("batches", total=4, parent="epochs")
        rows = board.ordered()
        assert [(t.description, t.fields["depth"]) for t in rows] == [("epochs", 0), ("batches", 1)]
        pm.advance("batches", 4)
        assert rows[1].completed == 4
        pm.remove("batches")  # nested: gone
        epochs.advance(2)
    (kept,) = board.ordered()  # top-level: kept, frozen with its final count
    assert (kept.description, kept.completed, kept.fields["kept"]) == ("epochs", 2, True)
    pm.cleanup()
    assert LiveProgress.current() is None
    assert "epochs" in terminal.getvalue()


def test_a_worker_describes_its_bars_in_the_side_file(tmp_path, monkeypatch):
    log = tmp_path / "train.log"
    for key, value in channel.worker_env(str(log), "run-1").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CI", "true")
    pm = ProgressManager(log_interval=3600)
    pm.initialize()
    pm.add("epochs", total=3)
    pm.add("batches", total=10, parent="epochs")
    pm.advance("batches", 4)
    pm.update("epochs", completed=1, status="loss 0.3")
    pm.refresh("epochs")
    document = json.loads(channel.path_for(str(log)).read_text())
    assert document["run"] == "run-1"
    epochs, batches = document["rows"]
    assert (epochs["label"], epochs["n"], epochs["total"], epochs["status"]) == (
        "epochs", 1, 3, "loss 0.3"
    )  # fmt: skip
    assert batches["parent"] == epochs["key"] and batches["n"] == 4
    pm.cleanup()
    (left,) = json.loads(channel.path_for(str(log)).read_text())["rows"]
    assert left["label"] == "epochs" and left["done"]  # kept (leave); batches gone
