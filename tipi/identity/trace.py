"""A trace: what a step's last successful run saw and made (a verifying trace, à la Shake)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Trace:
    """The record of one successful run of a step, as stored in `.tipi_cache/`.

    Paths are relative to the project root, so traces stay valid in another clone.

    Attributes:
        fingerprint: hash of type, code, params, input hashes and used permanences' configs.
        type: the `type` the step was declared with.
        code: the code fingerprint of its class.
        params: canonical params (for "lr 0.001 → 0.01" reasons).
        inputs: input path → content hash (None: did not exist).
        permanences: name → canonical config ({type, params, code}) of each result-relevant
            permanence the step used.
        outputs: output path → content hash after the run.
        finished: when the run ended (seconds since the epoch).
        seconds: how long execute() took.
        environment: versions of Python, tipi and the packages the step's code imports.
    """

    fingerprint: str
    type: str
    code: str
    params: Mapping[str, Any]
    inputs: Mapping[str, str | None]
    permanences: Mapping[str, Any]
    outputs: Mapping[str, str | None]
    finished: float = 0.0
    seconds: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The msgpack map written to disk (short keys: the log holds thousands)."""
        return {
            "fp": self.fingerprint,
            "ty": self.type,
            "co": self.code,
            "pa": dict(self.params),
            "in": dict(self.inputs),
            "pe": dict(self.permanences),
            "ou": dict(self.outputs),
            "fi": self.finished,
            "se": self.seconds,
            "ex": dict(self.extra),
            "en": dict(self.environment),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Trace:
        """Inverse of to_record; raises KeyError/TypeError on a malformed record."""
        return cls(
            fingerprint=record["fp"],
            type=record["ty"],
            code=record["co"],
            params=record["pa"],
            inputs=record["in"],
            permanences=record["pe"],
            outputs=record["ou"],
            finished=record.get("fi", 0.0),
            seconds=record.get("se", 0.0),
            extra=record.get("ex", {}),
            environment=record.get("en", {}),
        )
