"""GPUs under `-j` with a faked NVML: steps that declare none, UUID and MIG entries in
CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER, and `nproc` against `resources.gpu`."""

from __future__ import annotations

import json
import os

import pytest

from tests.fake_nvml import MIG_PARENT, MIG_UUIDS, UUIDS, four_gpus, mig_machine
from tipi.engine import Engine
from tipi.execution import gpus as gpus_module
from tipi.execution.gpus import detect_gpus, query_gpus, visible
from tipi.execution.resources import Inventory, ResourcePool, Resources
from tipi.permanences.device import Device, rank_device

STEPS = """
import json, os
from tipi import PipelineProcess


class Where(PipelineProcess):
    def __init__(self, controller, force: bool = False, tag: str = "") -> None:
        super().__init__(controller, force)

    def execute(self) -> None:
        env = os.environ
        record = {"gpus": env.get("CUDA_VISIBLE_DEVICES"), "order": env.get("CUDA_DEVICE_ORDER")}
        self.outputs["out"].write_text(json.dumps(record))
"""


def step(name: str, more: str = "") -> str:
    return f"""
    [processes.{name}]
    type = "Where"
    params = {{ tag = "{name}" }}
    outputs = {{ out = "out/{name}.json" }}
    {more}
    """


def seen(project, name: str) -> dict:
    return json.loads(project.read(f"out/{name}.json"))


@pytest.fixture
def nvml(monkeypatch):
    """Four GPUs behind the pynvml boundary that Inventory.detect() and Device use."""
    fake = four_gpus()
    monkeypatch.setattr(gpus_module, "import_nvml", lambda: fake)
    for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
        monkeypatch.setenv(name, "")  # so that the variable is restored after the test
        monkeypatch.delenv(name)
    return fake


# 1. A step that declares no GPU ---------------------------------------------------------------


@pytest.mark.slow
def test_a_step_without_gpu_gets_none_beside_steps_that_reserve_them(project, nvml):
    """Preprocessing beside training: it runs on the CPU, never on the card training holds."""
    toml = step("train", "resources = { gpu = 1 }") + step("prep") + step("prep2")
    project.pipeline("p", toml, steps=STEPS)
    Engine("p").make(jobs=3)
    assert seen(project, "train")["gpus"] == "1"  # the freest card (35 GiB free)
    assert seen(project, "prep")["gpus"] == ""
    assert seen(project, "prep2")["gpus"] == ""


@pytest.mark.slow
def test_the_choice_is_the_pipelines_whatever_the_targets(project, nvml):
    toml = step("train", "resources = { gpu = 1 }") + step("prep") + step("eval")
    project.pipeline("p", toml, steps=STEPS)
    Engine("p").make(["prep", "eval"], jobs=2)  # no GPU step in this make
    assert seen(project, "prep")["gpus"] == "" and seen(project, "eval")["gpus"] == ""


@pytest.mark.slow
def test_without_gpu_reservations_steps_see_every_gpu_as_before(project, nvml):
    project.pipeline("p", step("a") + step("b"), steps=STEPS)
    Engine("p").make(jobs=2)
    assert seen(project, "a")["gpus"] is None and seen(project, "b")["gpus"] is None


def test_the_pool_decides_what_a_step_without_gpu_sees():
    inventory = Inventory.fake(cpu=4, mem_gb=8, gpus=query_gpus(four_gpus()))
    assert ResourcePool(inventory).devices([]) is None  # nobody reserves: left as it is
    pool = ResourcePool(inventory, gpu_steps=True)
    assert pool.devices([]) == ""
    assert pool.devices(pool.take(Resources(gpu=2)) or []) == "1,3"
    cpu_only = ResourcePool(Inventory.fake(cpu=4, mem_gb=8, gpus=[]), gpu_steps=True)
    assert cpu_only.devices([]) is None


@pytest.mark.slow
def test_device_says_why_an_empty_cuda_visible_devices_means_cpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    device = Device()
    device.initialize()
    assert device.name == "cpu"
    assert "CUDA_VISIBLE_DEVICES is empty" in device.message
    assert "resources.gpu" in device.message


# 2. nproc and gpu -------------------------------------------------------------------------------


def test_more_ranks_than_reserved_gpus_is_a_config_error(project, cli):
    project.pipeline("p", step("train", "nproc = 2\n    resources = { gpu = 1 }"), steps=STEPS)
    result = cli("make", "-p", "p")
    assert result.exit_code == 2
    assert "nproc = 2 but resources.gpu = 1" in result.stderr
    assert "pipeline.toml:5" in result.stderr  # the nproc line
    assert "gpu = 2" in result.stderr and "Traceback" not in result.stderr
    assert not (project.root / "out").exists()


def test_ranks_within_the_reserved_gpus_load(project, cli):
    project.pipeline("p", step("train", "nproc = 2\n    resources = { gpu = 4 }"), steps=STEPS)
    result = cli("make", "-p", "p", "-n")
    assert result.exit_code == 0, result.stderr


def test_a_rank_without_a_gpu_of_its_own_is_never_sent_to_a_missing_device(monkeypatch):
    import torch

    assert rank_device(1, 2, 2) == ("cuda:1", "")
    name, message = rank_device(1, 2, 1)
    assert name == "cpu" and "2 rank(s) on this node but 1 GPU(s) visible" in message
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    device = Device(nvml=four_gpus())
    device.initialize()
    assert device.name == "cpu"


# 3. UUID and MIG entries --------------------------------------------------------------------------


def test_uuid_entries_are_mapped_to_nvml_devices_and_keep_their_names():
    gpus = query_gpus(four_gpus())
    chosen = visible(gpus, f"{UUIDS[3]},GPU-8f3d,0")  # a full UUID, a unique prefix, an index
    assert [(logical, g.index, g.ident) for logical, g in chosen] == [
        (0, 3, UUIDS[3]),
        (1, 1, "GPU-8f3d"),
        (2, 0, "0"),
    ]
    assert visible(gpus, "GPU-8f3,1") == []  # ambiguous prefix: CUDA stops there
    assert [g.index for _, g in visible(gpus, "2,GPU-ffff,1")] == [2]  # stops at the unknown
    assert [g.index for _, g in visible(gpus, "2,2")] == [2]  # a device listed twice


def test_mig_instances_are_devices_named_by_either_form():
    gpus = query_gpus(mig_machine())
    assert [(g.index, g.ident) for g in gpus] == [(0, MIG_UUIDS[0]), (0, MIG_UUIDS[1]), (1, "1")]
    assert [g.uuid for _, g in visible(gpus, MIG_UUIDS[1])] == [MIG_UUIDS[1]]
    legacy = f"MIG-{MIG_PARENT}/1/0"
    assert [(g.uuid, g.ident) for _, g in visible(gpus, legacy)] == [(MIG_UUIDS[0], legacy)]
    assert visible(gpus, f"MIG-{MIG_PARENT}/9/0") == []


def test_device_picks_the_freest_of_the_uuid_entries(monkeypatch, nvml):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{UUIDS[0]},{UUIDS[2]}")
    device = Device(nvml=nvml)
    device.initialize()
    assert device.name == "cuda:1"  # physical 2: 15 GiB free against 10
    assert device.message == ""


def test_device_with_a_mig_instance_uses_it(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", MIG_UUIDS[1])
    device = Device(nvml=mig_machine())
    device.initialize()
    assert (device.name, device.message) == ("cuda:0", "")


def test_device_trusts_cuda_for_an_entry_nvml_cannot_match(monkeypatch, nvml):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-ffffffff")
    device = Device(nvml=nvml)
    device.initialize()
    assert device.name == "cuda:0" and "NVML knows no device named by" in device.message


@pytest.mark.slow
def test_the_scheduler_narrows_with_the_users_own_identifiers(project, monkeypatch, nvml):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{UUIDS[0]},GPU-2b7e")
    assert [g.ident for g in detect_gpus()] == [UUIDS[0], "GPU-2b7e"]
    toml = step("g1", "resources = { gpu = 1 }") + step("g2", "resources = { gpu = 1 }")
    project.pipeline("p", toml + step("prep"), steps=STEPS)
    Engine("p").make(jobs=3)
    assert {seen(project, "g1")["gpus"], seen(project, "g2")["gpus"]} == {UUIDS[0], "GPU-2b7e"}
    assert seen(project, "prep")["gpus"] == ""


def test_mig_instances_are_reserved_one_per_step():
    pool = ResourcePool(Inventory.fake(cpu=4, mem_gb=8, gpus=query_gpus(mig_machine())))
    assert pool.take(Resources(gpu=1)) == ["1"]  # the T4: 15 GiB free
    assert pool.take(Resources(gpu=1)) == [MIG_UUIDS[1]]  # then the freer instance
    assert pool.take(Resources(gpu=1)) == [MIG_UUIDS[0]]
    assert pool.take(Resources(gpu=1)) is None


# 4. CUDA_DEVICE_ORDER ---------------------------------------------------------------------------


@pytest.mark.slow
def test_steps_number_devices_as_nvml_does(project, nvml):
    toml = step("train", "resources = { gpu = 1 }") + step("prep")
    project.pipeline("p", toml, steps=STEPS)
    Engine("p").make(jobs=2)
    assert seen(project, "train")["order"] == "PCI_BUS_ID"
    assert seen(project, "prep")["order"] == "PCI_BUS_ID"


@pytest.mark.slow
def test_a_users_own_device_order_is_kept_and_devices_are_then_named_by_uuid(
    project, monkeypatch, nvml
):
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    project.pipeline("p", step("train", "resources = { gpu = 1 }"), steps=STEPS)
    Engine("p").make(jobs=2)
    assert seen(project, "train") == {"gpus": UUIDS[1], "order": "FASTEST_FIRST"}


def test_device_sets_the_order_in_its_own_process_unless_the_user_did(monkeypatch, nvml):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    Device(nvml=nvml).initialize()
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    Device(nvml=nvml).initialize()
    assert os.environ["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"


@pytest.mark.slow
def test_torchrun_ranks_number_devices_as_nvml_does(project, nvml):
    toml = """
    [permanences.device]
    type = "Device"
    """ + step("ddp", "nproc = 2")
    ranks = STEPS.replace(  # Device is asked after the variables are read: it sets the order
        "self.outputs[",
        'record["device"] = self.controller.get_permanence("device").name\n        self.outputs[',
    )
    project.pipeline("p", toml, steps=ranks)
    Engine("p").make()  # sequential: torchrun is started by this process
    assert seen(project, "ddp") == {"device": "cpu", "gpus": None, "order": "PCI_BUS_ID"}
