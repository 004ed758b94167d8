"""Issue 26, items 6 and 7 attacked as a researcher would: hostile CUDA_VISIBLE_DEVICES and
resources in TOML (a faked NVML), and `tipi sweep -j N` checked against `-j 1`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fake_nvml import four_gpus
from tests.make_helpers import runs
from tests.test_sweep_parallel import PIPELINE, STEPS, sweep
from tipi.errors import PipelineInterrupted
from tipi.execution import gpus as gpus_module
from tipi.execution.gpus import detect_gpus, query_gpus, visible
from tipi.sweep.runner import SweepFailed

W = """
from tipi import PipelineProcess


class W(PipelineProcess):
    def execute(self) -> None:
        self.outputs["o"].write_text("x")
"""


@pytest.fixture
def nvml(monkeypatch):
    fake = four_gpus()
    monkeypatch.setattr(gpus_module, "import_nvml", lambda: fake)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "")
    monkeypatch.delenv("CUDA_DEVICE_ORDER")
    return fake


# GPUs: CUDA_VISIBLE_DEVICES as CUDA reads it --------------------------------------------------


@pytest.mark.parametrize("listed", ["²", "0,²", "٣"])
def test_a_digit_python_knows_and_cuda_does_not_hides_the_rest(monkeypatch, nvml, listed):
    # str.isdigit() says yes to "²", and int("²") raised: every make with -j was an
    # internal error. CUDA reads ASCII digits only.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    assert [g.index for g in detect_gpus()] == ([0] if listed.startswith("0") else [])


def test_a_full_width_digit_is_no_device_for_cuda():
    # A full-width zero: isdigit() and int() == 0, so tipi took it for GPU 0 and handed it to
    # the step, which then saw no GPU at all.
    assert visible(query_gpus(four_gpus()), "\uff10") == []


def test_an_empty_entry_ends_the_list_as_cuda_reads_it():
    # CUDA stops at the first entry naming no device: "0,,3" hides GPU 3, which tipi used to
    # hand to a step all the same.
    gpus = query_gpus(four_gpus())
    assert [g.index for _, g in visible(gpus, "0,,3")] == [0]
    assert visible(gpus, ",1") == []
    assert [g.index for _, g in visible(gpus, "1,2,")] == [1, 2]


def test_an_index_is_read_as_strtoul_reads_it():
    gpus = query_gpus(four_gpus())
    assert [(g.index, g.ident) for _, g in visible(gpus, "1gpu2,+3")] == [(1, "1gpu2"), (3, "+3")]


# Resources in TOML: non-finite numbers ----------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+inf"])
@pytest.mark.parametrize("key", ["gpu", "cpu", "mem_gb"])
def test_a_non_finite_resource_is_a_config_error_with_its_line(project, cli, key, value):
    toml = f"""
    [processes.a]
    type = "W"
    outputs = {{ o = "out/a.txt" }}
    resources = {{ {key} = {value} }}
    """
    project.pipeline("p", toml, steps=W)
    result = cli("make", "-p", "p", "-j", "2")
    assert result.exit_code == 2, result.stderr
    assert f"pipeline.toml:4: processes.a.resources.{key}" in result.stderr
    assert "must be a number >= 0" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


# tipi sweep -j N against -j 1 ----------------------------------------------------------------


def _runs_table(root: Path) -> list[tuple]:
    """`tipi runs` as the rows a researcher reads: variant, status and each step's outcome."""
    from tipi.runs.store import RunStore

    found = RunStore(root, lambda text: None).records("toy")
    return [(r.variant, r.status, {n: s.outcome for n, s in r.steps.items()}) for r in found]


@pytest.mark.slow
def test_tipi_runs_after_a_j2_sweep_lists_the_rows_of_j1(project, tmp_path):
    # The shared steps are made first, as the first variant's: they were a run of their own,
    # so `tipi runs` listed that variant twice (once with prepare alone).
    project.pipeline("toy", PIPELINE, steps=STEPS)
    alone = tmp_path / "alone"
    (alone / "pipelines").mkdir(parents=True)
    (alone / "pipelines/toy").symlink_to(project.root / "pipelines/toy")
    for root, jobs in ((project.root, 2), (alone, 1)):
        with pytest.raises(SweepFailed, match="1 of 3 variants failed: lr=5.0"):
            sweep(root, "fit.lr=0.01,5.0,0.2", jobs=jobs).run()
    assert _runs_table(project.root) == _runs_table(alone)
    first = [row for row in _runs_table(project.root) if row[0] == "grid/lr=0.01"]
    assert first == [("grid/lr=0.01", "ok", {"prepare": "ran", "fit": "ran", "score": "ran"})]


def test_two_variants_that_would_share_a_folder_are_refused_before_anything_runs(project, cli):
    # A string that reads as a number names its variant as the number does: both wrote one
    # folder, one log and one trace key, at the same time under -j 2, and a re-sweep reran
    # (or restored) one of them every time.
    project.pipeline("toy", PIPELINE, steps=STEPS)
    result = cli("sweep", "-p", "toy", "-j", "2", "--grid", 'fit.lr="0.1",0.1')
    assert result.exit_code == 2, result.stderr
    assert "would share the folder 'lr=0.1'" in result.stderr
    assert "Traceback" not in result.stderr
    assert runs(project) == [] and not (project.root / "out").exists()


INTERRUPTING = """
from tipi import PipelineProcess


class Stop(PipelineProcess):
    def __init__(self, controller, force: bool = False, lr: float = 0.1) -> None:
        super().__init__(controller, force)

    def execute(self) -> None:
        raise KeyboardInterrupt  # as Ctrl-C reaches a step running in the sweep's process
"""


def test_an_interrupted_sweep_says_to_run_the_sweep_again_not_a_make(project):
    # The hint was the variant's `tipi make -p toy`, which makes no variant at all.
    toml = """
    [processes.fit]
    type = "Stop"
    outputs = { model = "out/toy/fit/model.txt" }
    """
    project.pipeline("toy", toml, steps=INTERRUPTING)
    with pytest.raises(PipelineInterrupted) as stopped:
        sweep(project.root, "fit.lr=0.01,0.2").run()
    assert "tipi make" not in (stopped.value.hint or "")
    assert "run the sweep again" in (stopped.value.hint or "")
    data = json.loads((project.root / "out/sweeps/toy/grid/results.json").read_text())
    assert [v["status"] for v in data["variants"]] == ["interrupted"]


def _in_line(frame: Any, line: int) -> bool:
    """Whether the thread whose top frame is `frame` is inside threading's Condition.wait
    at `line`."""
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_lineno == line:
            return True
        frame = frame.f_back
    return False


def test_ctrl_c_while_the_sweeps_thread_takes_its_turn_back_leaves_the_turn_its_own(tmp_path):
    # Ctrl-C while the sweep's thread took the turn back from a variant interrupted that
    # acquire (a plain Lock's is interruptible): the thread went on as if it held the turn
    # and released it under the variant ("Exception in thread tipi sweep runner 1 ...
    # RuntimeError: release unlocked lock", and the sweep tidied up while a variant still
    # recorded). A real SIGINT, sent as the sweep's thread blocks on the turn.
    import inspect
    import signal
    import sys
    import threading

    from tipi.report import NullReporter
    from tipi.state.layout import Layout
    from tipi.sweep.slots import SharedSlots

    shared = SharedSlots(2, Layout(tmp_path, "toy", None), NullReporter())
    main = threading.get_ident()
    lines, start = inspect.getsourcelines(threading.Condition.wait)
    retaking = start + next(i for i, t in enumerate(lines) if "_acquire_restore(saved" in t)
    sweep_done, variant_clean = threading.Event(), threading.Event()

    def variant() -> None:
        try:
            with shared.turn:
                shared.turn.notify_all()  # the sweep's thread wakes and waits for the turn
                while not _in_line(sys._current_frames()[main], retaking):
                    pass
                signal.pthread_kill(main, signal.SIGINT)
                sweep_done.wait(0.5)  # the old code went on at once, releasing our turn
        except RuntimeError:
            return
        variant_clean.set()

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        thread = threading.Thread(target=variant)
        with shared.turn:
            thread.start()
            with pytest.raises(KeyboardInterrupt):
                shared.pause(30)
        sweep_done.set()
        thread.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert variant_clean.is_set()
