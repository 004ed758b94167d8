"""progress_bar beyond tqdm's own tests (test_progress_tqdm.py): the import forms, what each
argument changes in a pipe, tqdm.contrib's helpers with tqdm_class=progress_bar, and bars
inside a pipeline step."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from tipi.helpers import progress_bar, tqdm, trange
from tipi.report import meter


@pytest.fixture(autouse=True)
def pipe(monkeypatch):
    monkeypatch.setenv("CI", "true")  # no live display: plain lines, as in CI or a pipe


def lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("[progress]")]


def test_the_one_word_switch_from_tqdm():
    import tipi.helpers

    assert tqdm is progress_bar
    assert {"tqdm", "trange", "progress_bar"} <= set(tipi.helpers.__all__)
    assert list(trange(2, 5)) == [2, 3, 4]
    assert [x for x in tqdm("ab", disable=True)] == ["a", "b"]


def test_a_pipe_gets_tqdms_line_when_a_bar_opens_and_when_it_ends(capsys):
    for _ in progress_bar(range(3), desc="train"):
        pass
    first, last = lines(capsys.readouterr().err)
    assert first == "[progress] train:   0%|          | 0/3 [00:00<?, ?it/s]"
    assert last.startswith("[progress] train: 100%|██████████| 3/3 [00:00<00:00, ")
    assert "\r" not in first + last and "\x1b" not in first + last  # no ANSI, no redraws


def test_units_initial_total_and_description_set_later_are_shown(capsys):
    with progress_bar(total=2048, unit="B", unit_scale=True, unit_divisor=1024) as bar:
        bar.update(2048)
    assert "2.00k/2.00k" in capsys.readouterr().err
    for _ in progress_bar(range(9), initial=10, total=19):
        pass
    assert "| 19/19 [" in capsys.readouterr().err  # not 9/19
    with progress_bar(total=2, desc="first") as bar:
        bar.update(2)
        bar.total, bar.desc = 4, "renamed"
        bar.update(1)
    assert lines(capsys.readouterr().err)[-1].startswith("[progress] renamed:  75%|")


def test_description_and_postfix_are_separate(capsys):
    with progress_bar(total=3, postfix={"lr": 0.01}) as bar:
        bar.set_description("epoch 1")
        assert bar.desc == "epoch 1: "
        bar.set_postfix([("loss", 0.123456)], acc=0.5)
        assert bar.postfix == "loss=0.123, acc=0.5"
        bar.set_description_str("epoch 2")
        bar.update(3)
    last = lines(capsys.readouterr().err)[-1]
    assert last.startswith("[progress] epoch 2: 100%|") and last.endswith(", loss=0.123, acc=0.5]")


def test_file_is_the_stream_and_disable_none_follows_it(capsys):
    out = io.StringIO()
    for _ in progress_bar(range(2), desc="to file", file=out):
        pass
    assert "to file: 100%" in out.getvalue() and capsys.readouterr().err == ""
    for _ in progress_bar(range(2), desc="stdout", file=sys.stdout):
        pass
    captured = capsys.readouterr()
    assert "stdout: 100%" in captured.out and captured.err == ""
    with progress_bar(total=3, disable=None) as bar:  # stderr is no terminal here
        bar.update(3)
        assert bar.disable
    assert capsys.readouterr().err == ""


def test_leave_false_and_nested_bars(capsys):
    for _ in progress_bar(range(2), desc="outer"):
        for _ in progress_bar(range(2), desc="inner", leave=False):
            pass
    err = lines(capsys.readouterr().err)
    # nested: no opening line; its last line stays in the log, as tqdm's lines do there
    assert [line.split("|")[0] for line in err if "inner" in line] == [
        "[progress]   inner: 100%"
    ] * 2
    assert err[-1].startswith("[progress] outer: 100%")


def test_explicit_mininterval_and_miniters_pace_the_lines(capsys):
    for _ in progress_bar(range(6), desc="every", mininterval=0, miniters=2):
        pass
    counts = [re.search(r"\| (\d+)/", line)[1] for line in lines(capsys.readouterr().err)]
    assert counts == ["0", "2", "4", "6"]  # and no second 6/6 line when it closes
    for _ in progress_bar(range(1000), desc="paced"):  # default: log_interval (5 s) apart
        pass
    assert len(lines(capsys.readouterr().err)) == 2


def test_len_bool_in_and_reversed_as_tqdm():
    assert len(progress_bar(range(7), disable=True)) == 7
    assert not progress_bar(total=0, disable=True)
    bar = progress_bar(iter([1]), disable=True)
    assert bar  # an iterator without total is true
    with pytest.raises(TypeError):
        bool(progress_bar(disable=True))
    assert 3 in progress_bar([1, 2, 3], disable=True)
    assert list(reversed(progress_bar([1, 2, 3], disable=True))) == [3, 2, 1]
    with pytest.raises(TypeError, match="unknown argument"):
        progress_bar(range(2), bogus=1)


def test_the_text_is_tqdms():
    from tqdm import tqdm as real

    cases = [
        {"n": 231, "total": 1000, "elapsed": 392},
        {"n": 100000, "total": 1000, "elapsed": 13, "unit_scale": True, "unit": "iB"},
        {"n": 20, "total": 100, "elapsed": 12, "ncols": 14, "rate": 8.1,
         "bar_format": "{l_bar}{bar}|{n_fmt}/{total_fmt}"},
        {"n": 231, "total": 1000, "elapsed": 392, "ncols": 56, "ascii": True},
        {"n": 3, "total": None, "elapsed": 2, "prefix": "x", "postfix": "loss=1"},
    ]  # fmt: skip
    for case in cases:
        assert meter.format_meter(**case) == real.format_meter(**case)
    assert str(progress_bar(total=10, ascii=True, disable=True)) == str(
        real(total=10, ascii=True, disable=True)
    )


@pytest.mark.slow
def test_tqdm_contrib_helpers_take_progress_bar(capsys):
    from tqdm.contrib import tenumerate, tmap, tzip
    from tqdm.contrib.concurrent import process_map, thread_map

    assert list(tenumerate("ab", tqdm_class=progress_bar)) == [(0, "a"), (1, "b")]
    assert list(tzip([1, 2], "ab", tqdm_class=progress_bar)) == [(1, "a"), (2, "b")]
    assert list(tmap(abs, [-1, -2], tqdm_class=progress_bar)) == [1, 2]
    assert thread_map(abs, [-1, -2, -3], tqdm_class=progress_bar, max_workers=2) == [1, 2, 3]
    assert process_map(abs, [-1, -2], tqdm_class=progress_bar, max_workers=2) == [1, 2]
    err = capsys.readouterr().err
    assert "| 3/3 [" in err and "| 2/2 [" in err
    assert not progress_bar._instances


def test_write_prints_a_line_of_its_own(capsys):
    with progress_bar(total=2, desc="w", mininterval=0) as bar:
        bar.update()
        tqdm.write("hello")
        bar.write("there", file=sys.stderr)
        bar.update()
    captured = capsys.readouterr()
    assert captured.out == "hello\n" and "there\n" in captured.err


PIPELINE = """
[permanences.progress]
type = "ProgressManager"
params = { log_interval = 3600 }

[processes.fit]
type = "fit"
"""

STEPS = """
from pathlib import Path
from tipi.decorators import pipeline_process
from tipi.helpers import tqdm, trange


@pipeline_process(outputs={"report": "out/report.txt"})
def fit(epochs: int = 2, report: Path | None = None) -> None:
    for epoch in trange(epochs, desc="epochs"):
        for _ in tqdm(range(3), desc="batches", leave=False):
            pass
    report.write_text("done")
"""


def test_inside_a_step_bars_nest_under_it_on_its_progress_manager(project, capsys):
    from tipi.engine import Engine

    project.pipeline("p", PIPELINE, steps=STEPS)
    Engine("p").make()
    assert project.read("out/report.txt") == "done"
    err = lines(capsys.readouterr().err)
    assert err[0] == "[progress]   epochs:   0%|          | 0/2 [00:00<?, ?it/s]"  # under the step
    assert err[-1].startswith("[progress]   epochs: 100%|██████████| 2/2 [")
    # paced out (log_interval is an hour) but for each epoch's last line
    assert [line.split("|")[0] for line in err if "batches" in line] == [
        "[progress]     batches: 100%"
    ] * 2


@pytest.mark.slow
def test_the_overhead_benchmark_runs():
    import subprocess

    script = Path(__file__).parent.parent / "benchmarks/progress_overhead.py"
    done = subprocess.run(
        [sys.executable, str(script), "--n", "20000", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "in a step, terminal" in done.stdout and "ratio to tqdm" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_quiet_make_shows_no_bars_lines_or_table(project, jobs):
    import subprocess

    project.pipeline("p", PIPELINE.replace("3600", "0"), steps=STEPS)
    tipi = Path(sys.executable).parent / "tipi"
    done = subprocess.run(
        [str(tipi), "make", "-p", "p", "-q", "-j", jobs],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""
    assert project.read("out/report.txt") == "done"
