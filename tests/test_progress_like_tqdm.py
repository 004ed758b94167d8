"""progress_bar side by side with the installed tqdm (issue 31, item 9): a user's `file=` gets
tqdm's lines as they are (no `[progress]`, within `ncols`), `{rate}` is None where tqdm's is,
a nested bar in a pipe leaves its end in the log each epoch as tqdm's lines do, and a bar with
an explicit `position` nests (indented) under the bar it runs in, in a real terminal."""

from __future__ import annotations

import io
import re
import sys
import time
from typing import Any

import pytest
import tqdm as real

from tipi.helpers import progress_bar


@pytest.fixture(autouse=True)
def pipe(monkeypatch):
    monkeypatch.setenv("CI", "true")  # no live display: plain lines, as in CI or a pipe


def written(cls: Any, **kwargs: Any) -> list[str]:
    """The lines a bar over three items writes to a file of the user's, in order."""
    out = io.StringIO()
    for _ in cls(range(3), file=out, mininterval=0, **kwargs):
        pass
    # tqdm redraws with \r in a file; a line each is what a reader of the file sees.
    return [line.rstrip() for line in re.split(r"[\r\n]", out.getvalue()) if line.strip()]


def test_a_users_file_gets_tqdms_lines_within_ncols():
    ours, theirs = written(progress_bar, desc="x", ncols=50), written(real.tqdm, desc="x", ncols=50)
    assert not any("[progress]" in line for line in ours)
    assert ours[0] == theirs[0] == "x:   0%|                    | 0/3 [00:00<?, ?it/s]"
    assert all(len(line) <= 50 for line in ours), ours
    assert ours[-1].startswith("x: 100%|") and theirs[-1].startswith("x: 100%|")


def test_rate_is_none_on_the_first_line_as_tqdms():
    fmt = "{n} {rate} {rate_fmt} {rate_noinv}"
    ours, theirs = written(progress_bar, bar_format=fmt), written(real.tqdm, bar_format=fmt)
    assert ours[0] == theirs[0] == "0 None ?it/s None"
    assert re.fullmatch(r"3 [\d.]+ [\d.]+it/s [\d.]+", ours[-1])


def nested(cls: Any, stream: Any) -> None:
    for _ in cls(range(3), desc="epochs", file=stream):
        for _ in cls(range(4), desc="batches", position=1, leave=False, file=stream):
            time.sleep(0.04)  # past tqdm's mininterval: it writes more than its 0% line


def test_in_a_pipe_a_nested_bar_leaves_its_end_each_epoch_as_tqdm(capsys):
    nested(real.tqdm, sys.stderr)
    theirs = capsys.readouterr().err.replace("\r", "\n")
    nested(progress_bar, sys.stderr)
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[progress]")]
    # tqdm's log holds each epoch's inner bar past 0%; ours its end, one line each, nested.
    assert len(re.findall(r"batches:\s+[1-9]\d*%", theirs)) >= 3, theirs
    ends = [line for line in ours if "batches" in line]
    assert len(ends) == 3 and all(
        line.startswith("[progress]   batches: 100%|██████████| 4/4") for line in ends
    ), ours
    assert not any("batches:   0%" in line for line in ours)
    assert ours[-1].startswith("[progress] epochs: 100%")


@pytest.mark.slow
def test_in_a_terminal_a_bar_with_position_is_indented_under_its_outer_bar(tmp_path):
    from tests.test_progress_terminal import TMUX, Terminal

    if TMUX is None:
        pytest.skip("tmux is not installed")
    script = tmp_path / "nested.py"
    script.write_text(
        "import time\nfrom tipi.helpers import tqdm\n"
        "for _ in tqdm(range(2), desc='epochs'):\n"
        "    for _ in tqdm(range(30), desc='batches', position=1, leave=False):\n"
        "        time.sleep(0.05)\n"
    )
    term = Terminal(tmp_path)
    try:
        term.run(f"{sys.executable} {script}", tmp_path)
        mid = term.wait(lambda s: re.search(r"batches\s+━*\s*\d+/30", s) is not None)
        outer = re.search(r"^( *)epochs\s", mid, re.M)
        inner = re.search(r"^( *)batches\s", mid, re.M)
        assert outer and inner, mid
        assert len(inner[1]) > len(outer[1]), mid  # nested: indented under epochs
        term.finished()
    finally:
        term.close()
