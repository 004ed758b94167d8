"""`tipi make`: runs exactly what is out of date, says why, and keeps outputs consistent."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from tests.make_helpers import PIPELINE, STEPS, edit, make, runs
from tipi.engine import Engine
from tipi.errors import DefinitionError, UsageError
from tipi.report import ListReporter


@pytest.fixture(autouse=True, scope="module")
def _without_run_cache():
    """These tests pin the rebuilder's decisions (what reruns); with the run cache on, a
    step whose outputs were deleted or changed would be restored instead (test_run_cache)."""
    saved = os.environ.get("TIPI_RUN_CACHE")
    os.environ["TIPI_RUN_CACHE"] = "0"
    yield
    if saved is None:
        os.environ.pop("TIPI_RUN_CACHE", None)
    else:
        os.environ["TIPI_RUN_CACHE"] = saved


@pytest.fixture
def proj(project):
    project.pipeline("m", PIPELINE, steps=STEPS)
    return project


def outcomes(summary) -> dict[str, str]:
    return {r.name: r.outcome for r in summary.results}


def test_second_make_runs_nothing(proj, cli):
    first = cli("make")
    assert first.exit_code == 0, first.stderr
    assert sorted(runs(proj)) == ["abc", "b", "concat", "upper", "useconfig"]
    assert proj.read("out/cat.txt") == "ABC+b"
    second = cli("make")
    assert second.exit_code == 0
    assert runs(proj) == []
    assert "up to date: 5 skipped" in second.stderr


def test_changing_params_reruns_that_step_and_what_then_changes(proj):
    make()
    runs(proj)
    edit(proj, 'text = "b"', 'text = "B"')
    summary = make()
    assert runs(proj) == ["B", "concat"]
    ran = {r.name: r.reasons for r in summary.results if r.outcome == "ran"}
    assert ran == {
        "b": ("params changed: text 'b' → 'B'",),
        "cat": ("input out/b.txt changed: upstream 'b' made it again",),
    }


def test_early_cutoff_when_an_upstream_remakes_identical_bytes(proj):
    make()
    runs(proj)
    edit(proj, 'text = "abc"', 'text = "ABC"')
    make()
    # a changed, so up reran; up's output is "ABC" as before, so cat did not rerun.
    assert runs(proj) == ["ABC", "upper"]


def test_deleted_output_reruns_only_its_producer(proj):
    make()
    runs(proj)
    (proj.root / "out/up.txt").unlink()
    summary = make()
    assert runs(proj) == ["upper"]
    assert [r.reasons for r in summary.results if r.name == "up"] == [
        ("output out/up.txt missing",)
    ]


def test_modified_output_is_remade(proj):
    make()
    runs(proj)
    (proj.root / "out/cat.txt").write_text("tampered")
    summary = make()
    assert runs(proj) == ["concat"]
    assert proj.read("out/cat.txt") == "ABC+b"
    assert "was modified since it was made" in summary.results[3].reasons[0]


def test_source_input_change_reruns_its_consumer(project):
    project.pipeline(
        "m",
        '[processes.up]\ntype = "Upper"\ninputs = { src = "data/in.txt" }\noutputs = { out = "out/up.txt" }\n',
        steps=STEPS,
    )
    (project.root / "data").mkdir()
    (project.root / "data/in.txt").write_text("x")
    make()
    make()
    assert runs(project) == ["upper"]
    (project.root / "data/in.txt").write_text("y")
    summary = make()
    assert runs(project) == ["upper"]
    assert summary.results[0].reasons == ("input data/in.txt changed",)
    assert project.read("out/up.txt") == "Y"


def snapshot(root) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_dry_run_touches_nothing_and_says_why(proj, cli):
    before = snapshot(proj.root)
    result = cli("make", "-n")
    assert result.exit_code == 0
    assert snapshot(proj.root) == before
    assert not (proj.root / ".tipi_cache").exists()
    assert "→ a would run: new step: no record of an earlier run" in result.stderr
    assert "dry run: 5 would run" in result.stderr
    cli("make")
    runs(proj)
    edit(proj, "value = 1", "value = 2")
    before = snapshot(proj.root)
    result = cli("make", "-n", "--explain")
    assert snapshot(proj.root) == before
    assert "→ conf would run" in result.stderr
    assert "- permanence 'config' config changed: value 1 → 2" in result.stderr
    assert runs(proj) == []


def test_force_one_step_reruns_dependents_only_if_its_output_changes(proj, cli):
    make()
    runs(proj)
    result = cli("make", "-f", "b")
    assert result.exit_code == 0
    assert runs(proj) == ["b"]
    summary = make(force=["out/a.txt"])
    assert runs(proj) == ["abc"]
    assert outcomes(summary)["a"] == "ran"
    assert summary.results[0].reasons == ("forced",)


def test_force_all_runs_every_needed_step(proj):
    make()
    runs(proj)
    make("up", force_all=True)
    assert runs(proj) == ["abc", "upper"]


def test_targets_by_name_or_path_build_only_what_they_need(proj, monkeypatch):
    summary = make("up")
    assert [r.name for r in summary.results] == ["a", "up"]
    assert runs(proj) == ["abc", "upper"]
    (proj.root / "out").mkdir(exist_ok=True)
    monkeypatch.chdir(proj.root / "out")
    summary = Engine("m").make(["b.txt"])
    assert [r.name for r in summary.results] == ["b"]


def test_unknown_target_suggests_close_names(proj, cli):
    result = cli("make", "cta")
    assert result.exit_code == 2
    assert "unknown target 'cta'" in result.stderr
    assert "did you mean 'cat'?" in result.stderr


def test_an_input_nobody_makes_and_that_does_not_exist_is_exit_2(project, cli):
    project.pipeline(
        "m",
        '[processes.up]\ntype = "Upper"\ninputs = { src = "data/nope.txt" }\noutputs = { out = "out/up.txt" }\n',
        steps=STEPS,
    )
    result = cli("make")
    assert result.exit_code == 2
    assert (
        "pipeline.toml:1: processes.up: input 'src' of step 'up' (data/nope.txt) does not exist"
        in result.stderr
    )


def test_outputs_outside_the_project_are_rejected(project):
    project.pipeline(
        "m", '[processes.a]\ntype = "Write"\noutputs = { out = "../escape.txt" }\n', steps=STEPS
    )
    with pytest.raises(DefinitionError, match="outside the project root"):
        make()


def test_keep_going_finishes_independent_branches(proj, cli):
    edit(proj, 'text = "abc"', 'text = "abc", fail = true')
    result = cli("make", "-k")
    assert result.exit_code == 1
    assert sorted(runs(proj)) == ["abc", "b", "useconfig"]
    err = result.stderr
    assert "error: step 'a' failed: RuntimeError: asked to fail" in err
    assert "tipi make" in err and "finished steps will not run again" in err
    assert re.search(r"^up\s+not run", err, re.M) and re.search(r"^cat\s+not run", err, re.M)
    assert "- cat not run: upstream 'up' failed" in err or "upstream 'a' failed" in err
    assert not (proj.root / "out/a.txt").exists()  # the half-written output never landed


def test_without_keep_going_the_first_failure_stops_the_make(proj, cli):
    edit(proj, 'text = "abc"', 'text = "abc", fail = true')
    result = cli("make")
    assert result.exit_code == 1
    assert runs(proj) == ["abc"]
    assert "4 not run" in result.stderr


def test_a_failed_step_leaves_the_previous_output_in_place(proj):
    make()
    edit(proj, 'text = "b"', 'text = "new", fail = true')
    with pytest.raises(Exception, match="asked to fail"):
        make()
    assert proj.read("out/b.txt") == "b"
    assert Engine("m").status(["b"])[0].status == "will-run"


def test_status_json_follows_the_public_contract(proj, cli):
    make("a")
    result = cli("status", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["a", "up", "b", "cat", "conf"]
    assert rows[0] == {"name": "a", "status": "up-to-date", "reasons": ["up to date"]}
    assert rows[1]["status"] == "will-run"
    assert rows[1]["reasons"] == ["new step: no record of an earlier run"]
    table = cli("status")
    assert "never-run" in table.stdout and "up-to-date" in table.stdout


def test_only_steps_that_used_a_changed_permanence_rerun(proj):
    make()
    runs(proj)
    edit(proj, "value = 1", "value = 5")
    make()
    assert runs(proj) == ["useconfig"]
    assert proj.read("out/conf.txt") == "5"
    edit(proj, 'type = "Logger"', 'type = "Logger"\nparams = { project = "other" }')
    make()
    assert runs(proj) == []  # loggers do not affect results


def test_code_changes_rerun_but_comments_do_not(proj):
    make()
    runs(proj)
    edit(
        proj,
        '        log_run("upper")',
        '        # a comment\n        log_run("upper")  # note',
        "steps.py",
    )
    make()
    assert runs(proj) == []
    edit(proj, ".upper())", ".upper() + '!')", "steps.py")
    summary = make()
    assert runs(proj) == ["upper", "concat"]
    assert outcomes(summary)["up"] == "ran"
    assert summary.results[1].reasons == ("code changed: pipelines/m/steps.py: Upper.execute",)


def test_volatile_steps_always_run(proj):
    edit(proj, '[processes.b]\ntype = "Write"', '[processes.b]\nvolatile = true\ntype = "Write"')
    make()
    runs(proj)
    make()
    assert runs(proj) == ["b"]  # cat stays: b's bytes did not change


def test_a_step_that_does_not_write_its_output_fails(project, cli):
    project.pipeline(
        "m", '[processes.n]\ntype = "NoWrite"\noutputs = { out = "out/n.txt" }\n', steps=STEPS
    )
    result = cli("make")
    assert result.exit_code == 1
    assert "did not write its declared output 'out'" in result.stderr


def test_skip_method_and_force_on_top_of_the_cache(project):
    project.pipeline(
        "m",
        '[processes.s]\ntype = "Skipper"\noutputs = { out = "out/s.txt" }\n',
        steps=STEPS
        + """
class Skipper(PipelineProcess):
    def skip(self):
        return True

    def execute(self):
        log_run("skipper")
        self.outputs["out"].write_text("s")
""",
    )
    summary = make()
    assert summary.results[0].outcome == "skipped"
    assert summary.results[0].reasons == ("skip() said the work is done",)
    summary = make(force=["s"])
    assert runs(project) == ["skipper"]
    assert make().results[0].outcome == "skipped"


def test_scratch_folder_survives_failure_and_is_removed_after_success(project):
    project.pipeline(
        "m",
        '[processes.r]\ntype = "Resumable"\noutputs = { out = "out/r.txt" }\n',
        steps=STEPS
        + """
class Resumable(PipelineProcess):
    def execute(self):
        marker = self.scratch_dir / "progress"
        if not marker.exists():
            marker.write_text("half")
            raise RuntimeError("crash after half the work")
        self.outputs["out"].write_text("resumed from " + marker.read_text())
""",
    )
    with pytest.raises(Exception, match="crash after half"):
        make()
    scratch = project.root / ".tipi_cache/scratch/m/r"
    assert (scratch / "progress").read_text() == "half"
    make()
    assert project.read("out/r.txt") == "resumed from half"
    assert not scratch.exists()


def test_directory_outputs_are_staged_and_replaced(project):
    project.pipeline(
        "m",
        '[processes.d]\ntype = "Dir"\nparams = { n = 2 }\noutputs = { out = "out/d" }\n',
        steps=STEPS
        + """
class Dir(PipelineProcess):
    def __init__(self, controller, force=False, n: int = 1):
        super().__init__(controller, force)
        self.n = n

    def execute(self):
        self.outputs["out"].mkdir()
        for i in range(self.n):
            (self.outputs["out"] / f"{i}.txt").write_text(str(i))
""",
    )
    make()
    assert sorted(p.name for p in (project.root / "out/d").iterdir()) == ["0.txt", "1.txt"]
    Engine("m", overrides=["d.n=1"]).make()
    assert sorted(p.name for p in (project.root / "out/d").iterdir()) == ["0.txt"]


def test_a_corrupt_cache_is_a_warning_and_a_fresh_start(proj, cli):
    make()
    runs(proj)
    log = proj.root / ".tipi_cache/pipelines/m/traces.log"
    log.write_bytes(b"\x00garbage" * 10)
    (proj.root / ".tipi_cache/stat.msgpack").write_bytes(b"\xc1")
    result = cli("make")
    assert result.exit_code == 0
    assert "starting over" in result.stderr
    assert len(runs(proj)) == 5
    assert cli("make").exit_code == 0
    assert runs(proj) == []


def test_plan_cache_is_used_until_a_source_changes(proj):
    past = time.time() - 60
    for f in (proj.root / "pipelines/m").iterdir():
        os.utime(f, (past, past))
    make()
    engine = Engine("m")
    engine.load()
    assert engine.planner.resolved is None  # nothing imported: the plan came from the cache
    edit(proj, 'text = "b"', 'text = "c"')
    engine = Engine("m")
    assert engine.load().steps["b"].params["text"] == "c"
    assert engine.planner.resolved is not None


def test_overrides_are_part_of_the_plan(proj):
    make()
    runs(proj)
    reporter = ListReporter()
    Engine("m", overrides=["b.text=zz"], reporter=reporter).make()
    assert runs(proj) == ["zz", "concat"]
    make()
    assert runs(proj) == ["b", "concat"]


def test_unknown_target_error_type(proj):
    with pytest.raises(UsageError):
        make("nope")


def test_a_no_op_make_reads_no_file_content(proj, monkeypatch):
    make()
    past = time.time() - 60
    for path in [*(proj.root / "out").iterdir(), *(proj.root / "pipelines/m").iterdir()]:
        os.utime(path, (past, past))
    make()  # records the now-old files in the stat cache
    import tipi.identity.hashing as hashing

    reads: list[str] = []
    real = hashing.hash_file_content
    monkeypatch.setattr(hashing, "hash_file_content", lambda p: reads.append(str(p)) or real(p))
    summary = make()
    assert {r.outcome for r in summary.results} == {"skipped"}
    assert reads == []
    (proj.root / "out/b.txt").write_text("changed")
    make()
    # only the changed file: once to see the change, once after `b` rewrote it
    assert reads == [str(proj.root / "out/b.txt")] * 2
