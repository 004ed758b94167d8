"""The run cache: switching a param back restores outputs instead of running; a remote cache
filled by one clone serves another; gc keeps what it is told to."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from tests.make_helpers import runs
from tipi.engine import Engine
from tipi.report import ListReporter
from tipi.runcache import content
from tipi.runcache.content import ContentStore
from tipi.runcache.remote import RemoteStore

STEPS = """
import os
from tipi import PipelineProcess


def log_run(name):
    with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
        f.write(name + "\\n")


class Scale(PipelineProcess):
    def __init__(self, controller, force: bool = False, factor: int = 1) -> None:
        super().__init__(controller, force)
        self.factor = factor

    def execute(self) -> None:
        log_run(self.name)
        self.outputs["out"].write_text(str(3 * self.factor))


class Folder(PipelineProcess):
    def execute(self) -> None:
        log_run(self.name)
        value = int(self.inputs["value"].read_text())
        folder = self.outputs["folder"]
        (folder / "deep").mkdir(parents=True)
        (folder / "a.txt").write_text(str(value + 1))
        (folder / "deep" / "b.txt").write_text(str(value + 2))
"""

PIPELINE = """
[processes.scale]
type = "Scale"
params = { factor = 1 }
outputs = { out = "out/value.txt" }

[processes.expand]
type = "Folder"
inputs = { value = "out/value.txt" }
outputs = { folder = "out/folder" }
"""


def outcomes(reporter: ListReporter) -> dict[str, str]:
    return {e[1].name: e[1].outcome for e in reporter.events if e[0] == "step_finished"}


def test_switching_a_param_back_restores_without_running(project):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    Engine("rc").make()
    Engine("rc", overrides=["scale.factor=2"]).make()
    assert project.read("out/folder/deep/b.txt") == "8"
    assert runs(project) == ["scale", "expand", "scale", "expand"]

    reporter = ListReporter()
    summary = Engine("rc", reporter=reporter).make()  # factor back to 1
    assert outcomes(reporter) == {"scale": "restored", "expand": "restored"}
    assert runs(project) == []  # nothing ran
    assert project.read("out/value.txt") == "3"
    assert project.read("out/folder/a.txt") == "4"
    assert project.read("out/folder/deep/b.txt") == "5"
    first = summary.results[0].reasons
    assert first[0].startswith("restored from the run cache: same fingerprint as a run of")
    assert "params changed: factor 2 → 1" in first
    # Restored steps are recorded like runs: the next make has nothing to do.
    assert not Engine("rc").make().of("restored")
    # A dry run says it would restore.
    status = Engine("rc", overrides=["scale.factor=2"]).status()
    assert status[0].status == "will-run"
    assert "it would be restored" in status[0].reasons[0]


def test_forced_steps_run_and_a_damaged_cache_falls_back_to_running(project, monkeypatch):
    monkeypatch.setattr(content, "KEEP_INLINE_MAX", -1)  # every output an object
    project.pipeline("rc", PIPELINE, steps=STEPS)
    Engine("rc").make()
    Engine("rc").make(force=["scale"])
    assert runs(project) == ["scale", "expand", "scale"]
    (project.root / "out" / "value.txt").unlink()
    for _, path in ContentStore(project.root / ".tipi_cache").all_objects():
        path.unlink()  # records left without their files
    reporter = ListReporter()
    Engine("rc", reporter=reporter).make()
    assert outcomes(reporter)["scale"] == "ran"


def test_a_second_clone_pulls_from_a_directory_remote_and_runs_nothing(project, tmp_path, cli):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    remote = tmp_path / "remote"
    result = cli("make", "--remote", str(remote))
    assert result.exit_code == 0 and "pushed 2 run(s)" in result.stderr

    clone = tmp_path / "elsewhere" / "clone"  # another absolute path
    shutil.copytree(project.root / "pipelines", clone / "pipelines")
    reporter = ListReporter()
    summary = Engine("rc", root=clone, reporter=reporter).make(remote=f"file://{remote}")
    assert outcomes(reporter) == {"scale": "restored", "expand": "restored"}
    assert not (clone / "runs.log").exists()
    assert (clone / "out" / "folder" / "deep" / "b.txt").read_text() == "5"
    assert summary.ok

    # push/pull by hand: a third clone pulls, then makes offline.
    third = tmp_path / "third"
    shutil.copytree(project.root / "pipelines", third / "pipelines")
    pulled = RemoteStore(str(remote)).pull(ContentStore(third / ".tipi_cache"))
    # value.txt's bytes came inside scale's record; the folder's two files are objects.
    assert (pulled.records, pulled.objects) == (2, 2)
    assert len(Engine("rc", root=third).make().of("restored")) == 2


def test_concurrent_pushes_leave_a_consistent_remote(project, tmp_path):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    for factor in range(1, 5):
        Engine("rc", overrides=[f"scale.factor={factor}"]).make()
    local = ContentStore(project.root / ".tipi_cache")
    remote_dir = tmp_path / "remote"
    errors = []

    def push() -> None:
        try:
            RemoteStore(str(remote_dir)).push(local)
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=push) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    remote = RemoteStore(str(remote_dir))
    assert len(remote.keys_and_names()) == 8
    assert not [p for p in remote_dir.rglob(".*")]  # no temporary file left behind
    fresh = ContentStore(tmp_path / "fresh")
    assert remote.pull(fresh).records == 8
    for _, record in fresh.all_records():
        assert all(fresh.object_path(d).exists() for d in record.objects())


def test_gc_keeps_the_newest_runs_and_what_fits(project, cli):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    for factor in (1, 2, 3):
        assert cli("make", "--set", f"scale.factor={factor}").exit_code == 0
    store = ContentStore(project.root / ".tipi_cache")
    assert len(list(store.all_records())) == 6
    result = cli("cache", "gc", "--keep-last", "2")
    assert result.exit_code == 0, result.stderr
    assert "removed 2 run(s)" in result.stdout
    kept = [r for _, r in store.all_records()]
    assert sorted(r.step for r in kept) == ["expand", "expand", "scale", "scale"]
    assert "3" not in {Path(store.object_path(d)).read_text() for r in kept for d in r.objects()}
    # Switching back to the dropped value runs again; to a kept one restores.
    assert Engine("rc", overrides=["scale.factor=1"]).make().of("ran")
    assert Engine("rc", overrides=["scale.factor=2"]).make().of("restored")

    result = cli("cache", "gc", "--max-size", "0")
    assert result.exit_code == 0 and "kept 0 run(s)" in result.stdout
    assert not list(store.all_objects())
    assert cli("cache", "gc").exit_code == 2
    assert cli("cache", "gc", "--max-size", "lots").exit_code == 2
