"""The controller's lifecycle: lazy initialize → validate → checkpoint → cleanup, always."""

from __future__ import annotations

import pytest

from tipi import Permanence
from tipi.config.resolve import ResolvedPermanence
from tipi.config.schema import PermanenceSpec
from tipi.errors import DefinitionError, Location, PermanenceFailure
from tipi.lifecycle import Controller
from tipi.report import ListReporter


class Recorder(Permanence):
    log: list[str] = []

    def __init__(self, tag: str = "", fail_in: str = "") -> None:
        self.tag = tag
        self.fail_in = fail_in

    def _phase(self, phase: str) -> None:
        self.log.append(f"{phase}:{self.tag}")
        if self.fail_in == phase:
            raise RuntimeError(f"{phase} broke")

    def initialize(self) -> None:
        self._phase("initialize")

    def validate(self) -> None:
        self._phase("validate")

    def checkpoint(self) -> None:
        self._phase("checkpoint")

    def cleanup(self) -> None:
        self._phase("cleanup")


@pytest.fixture(autouse=True)
def fresh_log():
    Recorder.log = []
    yield


def declare(**tags: dict) -> dict[str, ResolvedPermanence]:
    return {
        name: ResolvedPermanence(
            PermanenceSpec(name, "Recorder", params, Location()), Recorder, params
        )
        for name, params in tags.items()
    }


def test_nothing_is_built_until_first_use():
    with Controller(declare(a={"tag": "a"}, b={"tag": "b"})) as controller:
        assert Recorder.log == []
        first = controller.get_permanence("b")
        assert controller.get_permanence("b") is first
        assert first.is_initialized
    assert Recorder.log == ["initialize:b", "validate:b", "cleanup:b"]


def test_cleanup_runs_in_reverse_initialization_order_and_once():
    controller = Controller(declare(a={"tag": "a"}, b={"tag": "b"}, c={"tag": "c"}))
    for name in ("c", "a", "b"):
        controller.get_permanence(name)
    controller.cleanup()
    controller.cleanup()
    assert [e for e in Recorder.log if e.startswith("cleanup")] == [
        "cleanup:b",
        "cleanup:a",
        "cleanup:c",
    ]


def test_checkpoint_only_the_permanences_a_step_used():
    with Controller(declare(a={"tag": "a"}, b={"tag": "b"})) as controller:
        controller.get_permanence("a")
        with controller.recording() as used:
            controller.get_permanence("b")
        controller.checkpoint(used)
    assert "checkpoint:b" in Recorder.log
    assert "checkpoint:a" not in Recorder.log
    assert used == {"b"}


def test_a_failing_cleanup_does_not_stop_the_others():
    reporter = ListReporter()
    controller = Controller(declare(a={"tag": "a"}, b={"tag": "b", "fail_in": "cleanup"}), reporter)
    controller.get_permanence("a")
    controller.get_permanence("b")
    failures = controller.cleanup()
    assert [f.name for f in failures] == ["b"]
    assert Recorder.log[-2:] == ["cleanup:b", "cleanup:a"]
    assert (
        "warning",
        "permanence 'b' failed in cleanup(): RuntimeError: cleanup broke",
    ) in reporter.events


def test_failing_initialize_is_not_cleaned_up_but_failing_validate_is():
    controller = Controller(
        declare(a={"tag": "a", "fail_in": "initialize"}, b={"tag": "b", "fail_in": "validate"})
    )
    with pytest.raises(PermanenceFailure, match="'a' failed in initialize"):
        controller.get_permanence("a")
    with pytest.raises(PermanenceFailure, match="'b' failed in validate"):
        controller.get_permanence("b")
    controller.cleanup()
    assert "cleanup:a" not in Recorder.log
    assert "cleanup:b" in Recorder.log


def test_constructor_errors_name_the_permanence():
    controller = Controller(declare(a={"bogus": 1}))
    with pytest.raises(PermanenceFailure, match=r"'a' failed in __init__\(\)"):
        controller.get_permanence("a")


def test_unknown_name_lists_the_available_ones():
    controller = Controller(declare(alpha={}, beta={}))
    with pytest.raises(
        DefinitionError, match=r"no permanence named 'alhpa' \(available: alpha, beta\)"
    ) as info:
        controller.get_permanence("alhpa")
    assert info.value.hint == "did you mean 'alpha'?"


def test_permanences_can_use_each_other_through_the_controller():
    class Uses(Permanence):
        def initialize(self) -> None:
            self.other = self.controller.get_permanence("base")

        def cleanup(self) -> None:
            Recorder.log.append("cleanup:uses")

    declared = declare(base={"tag": "base"})
    declared["uses"] = ResolvedPermanence(PermanenceSpec("uses", "Uses", {}, Location()), Uses, {})
    with Controller(declared) as controller:
        assert controller.get_permanence("uses").other is controller.get_permanence("base")
    # base finished initializing first, so it is cleaned up last.
    assert Recorder.log[-2:] == ["cleanup:uses", "cleanup:base"]
