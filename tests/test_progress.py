"""ProgressManager: exact names, nesting, tqdm-like tracking, plain lines without a terminal."""

from __future__ import annotations

import pytest

from tipi.permanences.progress import NullProgressManager, ProgressManager
from tipi.report.live import LiveProgress


@pytest.fixture
def manager(monkeypatch):
    monkeypatch.setenv("CI", "true")  # no terminal: plain log lines
    pm = ProgressManager(log_interval=0)
    pm.initialize()
    yield pm
    pm.cleanup()


def test_track_counts_items_and_logs_plain_lines(manager, capsys):
    assert list(manager.track(range(3), "epochs")) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "[progress] epochs: 1/3 (33%)" in err
    assert "[progress] epochs: 3/3 (100%)" in err
    assert manager.names == []


def test_names_are_exact_and_errors_list_the_open_tasks(manager):
    manager.add("train/batches", total=10)
    with pytest.raises(
        KeyError, match=r"no progress task named 'train/batch' \(open: train/batches\)"
    ):
        manager.advance("train/batch")
    with pytest.raises(ValueError, match="already open"):
        manager.add("train/batches")


def test_nested_tasks_and_status(manager, capsys):
    with manager.task("epochs", total=2):
        for epoch in range(2):
            for _ in manager.track(range(2), "batches", parent="epochs"):
                pass
            manager.update("epochs", completed=epoch + 1, status=f"loss {0.5 / (epoch + 1):.2f}")
    err = capsys.readouterr().err
    assert "[progress]   batches: 2/2 (100%)" in err  # indented under its parent
    assert "epochs: 2/2 (100%) loss 0.25" in err


def test_generators_without_len_take_a_total(manager, capsys):
    def numbers():
        yield from range(4)

    assert sum(manager.track(numbers(), "gen", total=4)) == 6
    assert "gen: 4/4 (100%)" in capsys.readouterr().err


def test_progress_task_decorator(manager, capsys):
    @manager.progress_task("work", total=2)
    def work() -> str:
        manager.advance("work")
        manager.advance("work")
        return "done"

    assert work() == "done"
    assert "work: 2/2 (100%)" in capsys.readouterr().err


def test_log_interval_throttles_plain_lines(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    pm = ProgressManager(log_interval=3600)
    pm.initialize()
    list(pm.track(range(100), "quiet"))
    pm.cleanup()
    lines = [line for line in capsys.readouterr().err.splitlines() if "quiet" in line]
    assert lines == ["[progress] quiet: 100/100 (100%)"]


def test_null_manager_draws_nothing(capsys):
    pm = NullProgressManager()
    pm.initialize()
    assert list(pm.track(range(3), "x")) == [0, 1, 2]
    pm.cleanup()
    assert capsys.readouterr().err == ""


def test_live_display_is_shared_and_released():
    first = LiveProgress.acquire()
    second = LiveProgress.acquire()
    assert first is second
    LiveProgress.release()
    assert LiveProgress.current() is first
    LiveProgress.release()
    assert LiveProgress.current() is None


def test_in_a_terminal_bars_join_the_live_display(monkeypatch):
    import io

    from rich.console import Console

    import tipi.permanences.progress as progress_module
    from tipi.report import live

    monkeypatch.setattr(progress_module, "interactive", lambda console=None: True)
    buffer = io.StringIO()
    monkeypatch.setattr(
        live,
        "new_progress",
        lambda console=None: __import__("rich.progress").progress.Progress(
            console=Console(file=buffer, force_terminal=True, width=80)
        ),
    )
    pm = ProgressManager()
    pm.initialize()
    shared = LiveProgress.current()
    assert shared is not None
    with pm.task("epochs", total=2) as epochs:
        assert [t.description for t in shared.tasks] == ["epochs"]
        pm.add("batches", total=4, parent="epochs")
        assert [t.description for t in shared.tasks] == ["epochs", "  batches"]
        pm.advance("batches", 4)
        assert shared.tasks[1].completed == 4
        pm.remove("batches")
        epochs.advance()
    pm.cleanup()
    assert LiveProgress.current() is None
