"""A plan file is a cache (attack report, item 3): one written by a tipi of another plan format
(the same version number, an earlier commit: a field missing) is replanned silently, and only
a truly damaged one is warned about, once, even by `tipi status`, which plans twice."""

from __future__ import annotations

import os

from tipi import __version__
from tipi.state.layout import Layout
from tipi.state.store import read_document, write_document
from tipi.uptodate.planfile import PLAN_FIELDS, PLAN_FORMAT, STEP_FIELDS, plan_key

STEPS = """
from tipi import PipelineProcess


class Write(PipelineProcess):
    def execute(self):
        self.outputs["out"].write_text("x")
"""

PIPELINE = """
[processes.a]
type = "Write"
outputs = { out = "out/a.txt" }
"""


def _made(project, cli):
    """The pipeline made, its files aged past the racy window so that the plan is saved."""
    folder = project.pipeline("demo", PIPELINE, steps=STEPS)
    for path in folder.iterdir():
        os.utime(path, ns=(path.stat().st_mtime_ns - 10**10,) * 2)
    assert cli("make", "-q").exit_code == 0
    file = Layout(project.root, "demo").plan_file
    assert read_document(file, "plan", print) is not None
    return file


def test_a_plan_of_an_earlier_format_is_replanned_silently(project, cli):
    file = _made(project, cli)
    data = read_document(file, "plan", print)
    data["key"][2] = __version__  # as the tipi before the format was in the key spelled it
    del data["plan"]["globs"]  # a field it did not write
    write_document(file, "plan", data)
    status = cli("status")
    assert status.exit_code == 0 and "warning" not in status.stderr
    assert "up-to-date" in status.stdout
    make = cli("make")
    assert make.exit_code == 0 and "warning" not in make.stderr
    assert read_document(file, "plan", print)["key"][2].endswith(f"/plan-{PLAN_FORMAT}")


def test_a_damaged_plan_file_is_warned_about_once_by_status(project, cli):
    _made(project, cli).write_bytes(b"garbage\n")
    status = cli("status")
    assert status.exit_code == 0
    assert status.stderr.count("warning:") == 1, status.stderr
    assert "plan.msgpack" in status.stderr


def test_a_malformed_plan_of_this_format_is_warned_about_once(project, cli):
    file = _made(project, cli)
    data = read_document(file, "plan", print)
    assert data["key"] == plan_key(
        project.root / "pipelines/demo/pipeline.toml", [], project.root, None
    )
    del data["plan"]["globs"]
    write_document(file, "plan", data)
    status = cli("status")
    assert status.stderr.count("is malformed; rebuilding the plan") == 1, status.stderr


PLAN_WORDS = (
    "pipeline steps order predecessors producers permanences source deps environments "
    "rerun_on_env code_files globs"
)
STEP_WORDS = (
    "name type code params inputs outputs after volatile force file line resources nproc "
    "launcher announces_resume env metrics inert base values"
)


def test_the_plan_format_names_the_fields_it_was_counted_for():
    """Change a field of Plan or PlannedStep, then bump PLAN_FORMAT (planfile.py) and this."""
    assert PLAN_FORMAT == 2
    assert sorted(PLAN_FIELDS) == sorted(PLAN_WORDS.split())
    assert sorted(STEP_FIELDS) == sorted(STEP_WORDS.split())
