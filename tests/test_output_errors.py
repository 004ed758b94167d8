"""A step that writes outputs wrongly gets a clear error (issue 31, item 8): one that writes its
final path instead of `self.outputs[name]` is told to write there, and one that never writes a
declared output gets a message naming the step, the output, its path and what to do, without a
traceback header that has no frames under it."""

from __future__ import annotations

import pytest

STEPS = """
from pathlib import Path
from tipi import PipelineProcess


class Direct(PipelineProcess):
    outputs = {"report": "out/sub/report.txt"}

    def execute(self):
        Path("out/sub/report.txt").write_text("x")


class Nothing(PipelineProcess):
    outputs = {"model": "out/model.txt"}

    def execute(self):
        pass
"""

PIPELINE = """
[processes.direct]
type = "Direct"

[processes.nothing]
type = "Nothing"
"""


@pytest.fixture
def wrong(project):
    project.pipeline("wrong", PIPELINE, steps=STEPS)
    return project


def test_writing_the_final_path_says_to_write_self_outputs(wrong, cli):
    result = cli("make", "direct")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    error = next(line for line in lines if line.startswith("error:"))
    hint = next(line for line in lines if line.startswith("hint:"))
    assert "writes to its final output path out/sub/report.txt" in error
    assert "self.outputs['report']" in error
    assert hint.startswith("hint: write it to self.outputs['report'] (a staging path")
    assert 'steps.py", line 9, in execute' in result.stderr  # the user's line still shown
    assert "pathlib.py" not in result.stderr  # the standard library's frames under it are not
    assert "1 standard library frame(s)" in result.stderr or "2 standard library" in result.stderr


def test_writing_the_final_path_whose_folder_exists_is_named(wrong, cli):
    (wrong.root / "out/sub").mkdir(parents=True)
    result = cli("make", "direct")
    assert result.exit_code == 1
    assert (
        "error: step 'direct' wrote its output 'report' to its final path out/sub/report.txt "
        "itself; tipi keeps only what a step writes to self.outputs['report']"
    ) in result.stderr
    assert "Traceback" not in result.stderr


def test_an_output_never_written_is_a_clean_message(wrong, cli):
    result = cli("make", "nothing")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr  # nothing was raised: no header without frames
    lines = [line for line in result.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    assert lines == [
        "error: step 'nothing' did not write its declared output 'model' (out/model.txt)",
        "hint: write it to self.outputs['model'] (a staging path tipi gives the step; it moves "
        "what is there to out/model.txt when the step succeeds)",
    ]
