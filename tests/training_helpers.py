"""Shared pieces of the Train tests: one CPU thread (fast and stable on shared runners), tiny
pipelines on the synthetic dataset, and a stand-in for the loop callbacks see."""

from __future__ import annotations

import pytest
import torch

TINY = """
[permanences.device]
type = "Device"

[permanences.net]
type = "Network"
params = {{ model = "{model}", params = {model_params} }}

[permanences.data]
type = "Data"
params = {{ dataset = "synthetic_images", params = {{ n = {n} }}{data} }}

[processes.fit]
type = "Train"
{extra}
[processes.fit.params]
{params}
"""


def tiny(
    params: str,
    *,
    model: str = "small_cnn",
    model_params: str = "{ width = 4 }",
    n: int = 96,
    data: str = "",
    extra: str = "",
) -> str:
    """A pipeline `fit` training the `net` permanence on `data` (synthetic images)."""
    return TINY.format(
        model=model,
        model_params=model_params,
        n=n,
        data=f", {data}" if data else "",
        extra=extra,
        params=params,
    )


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One intra-op thread here and in `tipi` subprocesses: on two shared cores more threads
    only wait on each other, and every run of a test computes in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("CI", "1")  # plain progress lines, no live display
    yield
    torch.set_num_threads(before)


class FakeTrainer:
    """What a callback sees of Train's loop, for callbacks tested alone."""

    def __init__(self, model=None) -> None:
        self.state: dict = {}
        self.model = model
        self.reason = ""

    def stop(self, reason: str) -> None:
        self.reason = reason
