"""Issue 26, items 6 and 7 attacked as a researcher would: hostile CUDA_VISIBLE_DEVICES and
resources in TOML (a faked NVML), and `tipi sweep -j N` checked against `-j 1`."""

from __future__ import annotations

import pytest

from tests.fake_nvml import four_gpus
from tipi.execution import gpus as gpus_module
from tipi.execution.gpus import detect_gpus, query_gpus, visible

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
