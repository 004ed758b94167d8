"""A cache inside a step is keyed by the step's whole fingerprint (PipelineProcess.fingerprint,
cache_key): every part of it changes the key, except the inputs the cache keys entries by."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest

from tipi.engine import Engine
from tipi.process import PipelineProcess
from tipi.uptodate.rebuilder import StepFacts
from tipi.uptodate.resume import binding

FACTS = StepFacts(
    name="predict",
    type="Predict",
    code="code-1",
    params={"batch_size": 4},
    inputs={"weights/w.pt": "w1", "images": "i1"},
    outputs={"out/p.csv": None},
    permanences={"net": {"type": "Network", "params": {"model": "m:make"}, "code": "net-1"}},
    environment={"torch": "2.0"},
)
NAMES = {"model": "weights/w.pt", "images": "images"}


class Step(PipelineProcess):
    def execute(self) -> None:
        pass


def bound(facts: StepFacts = FACTS, names: dict[str, str] = NAMES) -> Step:
    step = Step(controller=None)  # type: ignore[arg-type]
    step.bind_paths({}, {}, None, "predict", binding(facts, names))
    return step


def test_outside_the_engine_there_is_no_key():
    step = Step(controller=None)  # type: ignore[arg-type]
    assert step.fingerprint is None and step.cache_key("images") is None
    step.bind_paths({}, {}, None, "predict")
    assert step.fingerprint is None and step.cache_key() is None
    step.bind_paths({}, {}, None, "predict", b"\xc1 not msgpack")
    assert step.fingerprint is None and step.cache_key() is None


@pytest.mark.parametrize(
    "change",
    [
        {"code": "code-2"},  # the step's code (its closure)
        {"type": "Other"},
        {"params": {"batch_size": 8}},
        {"inputs": {"weights/w.pt": "w2", "images": "i1"}},  # the weights
        {"permanences": {"net": {"type": "Network", "params": {}, "code": "net-2"}}},
        {"environment": {"torch": "2.1"}},
    ],
)
def test_every_part_of_the_fingerprint_changes_the_key(change):
    before, after = bound(), bound(replace(FACTS, **change))
    assert before.cache_key("images") != after.cache_key("images")
    assert before.cache_key() != after.cache_key()


def test_the_inputs_a_cache_keys_entries_by_are_left_out():
    new_images = replace(FACTS, inputs={"weights/w.pt": "w1", "images": "i2"})
    assert bound().cache_key("images") == bound(new_images).cache_key("images")
    assert bound().cache_key() != bound(new_images).cache_key()
    assert bound().fingerprint != bound(new_images).fingerprint
    # Not the same key as the whole: a cache keyed by all of it is another cache.
    assert bound().cache_key("images") != bound().cache_key()


def test_an_unknown_input_is_an_error_and_unnamed_inputs_give_no_key():
    with pytest.raises(ValueError, match="no input 'image' in step predict"):
        bound().cache_key("image")
    older = msgpack.unpackb(binding(FACTS), raw=False)
    del older["names"]  # a binding that does not say which path is which input
    step = Step(controller=None)  # type: ignore[arg-type]
    step.bind_paths({}, {}, None, "predict", msgpack.packb(older))
    assert step.fingerprint is not None and step.cache_key("images") is None


STEPS = """
from tipi import PipelineProcess

SEEN = []


class Keys(PipelineProcess):
    outputs = {"keys": "out/keys.txt"}

    def __init__(self, controller, force: bool = False, n: int = 1) -> None:
        super().__init__(controller, force)
        self.n = n

    def execute(self) -> None:
        SEEN.append(self.force)
        self.outputs["keys"].write_text(f"{self.fingerprint} {self.cache_key('data')}")
"""

PIPELINE = """
[processes.keys]
type = "Keys"
inputs = { data = "data.txt" }
"""


def test_a_running_step_sees_its_fingerprint_and_whether_it_is_forced(project):
    project.pipeline("k", PIPELINE, steps=STEPS)
    (project.root / "data.txt").write_text("a")
    Engine("k").make()
    fingerprint, key = project.read("out/keys.txt").split()
    assert len(fingerprint) == len(key) == 32
    (project.root / "data.txt").write_text("b")
    Engine("k").make(force_all=True)
    other, same = project.read("out/keys.txt").split()
    assert other != fingerprint and same == key  # only the input it keys entries by changed
    Engine("k", overrides=["keys.n=2"]).make()
    assert project.read("out/keys.txt").split()[1] != key
