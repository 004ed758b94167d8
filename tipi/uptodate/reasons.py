"""Why a step runs: a Reason is a code, a subject and old → new, rendered as a sentence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tipi.redact import HIDDEN, is_secret_name

_SENTENCES = {
    "new": "new step: no record of an earlier run",
    "forced": "forced{subject_paren}",
    "volatile": "volatile: runs every time",
    "type": "type changed: {old_text} → {new_text}",
    "code": "code of {subject} changed",
    "code-unit": "code changed: {subject}{detail}",
    "environment": "environment changed: {subject} {old_text} → {new_text}",
    "param-changed": "params changed: {subject} {old} → {new}",
    "param-added": "params changed: {subject} added ({new})",
    "param-removed": "params changed: {subject} removed (was {old})",
    "param-inert": "{subject} {old_or_none} → {new_or_none} does not rerun the step: it names "
    "only permanences that do not change results",
    "input-changed": "input {subject} changed",
    "input-new": "new input {subject}",
    "input-dropped": "input {subject} no longer used",
    "input-name": "inputs changed: {subject} {old_or_none} → {new_or_none}",
    "upstream": "upstream '{subject}' will run first",
    "upstream-changed": "input {subject} changed: upstream '{new_plain}' made it again",
    "permanence-changed": "permanence '{subject}' config changed{detail}",
    "permanence-gone": "permanence '{subject}' is no longer declared",
    "output-missing": "output {subject} missing",
    "output-modified": "output {subject} was modified since it was made",
    "output-new": "output {subject} was not made by the last run",
    "fingerprint": "fingerprint changed",
    "skip-method": "skip() said the work is done",
    "up-to-date": "up to date",
    "failed-upstream": "upstream '{subject}' failed",
}


@dataclass(frozen=True)
class Reason:
    """One cause of a run (or of a skip).

    Attributes:
        code: a key of the sentence table, e.g. "param-changed", "output-missing".
        subject: what it is about: a param, a path, a step or permanence name.
        old: the recorded value, where there is one.
        new: the current value, where there is one.
    """

    code: str
    subject: str = ""
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        detail = ""
        if self.code == "permanence-changed" and self.new:
            detail = f": {self.new}"
        elif self.code == "code-unit":
            detail = {"added": " (newly reached)", "removed": " (no longer reached)"}.get(
                self.new, ""
            )
        old, new = self.old, self.new
        if self.code.startswith("param-") and is_secret_name(self.subject.rsplit(".", 1)[-1]):
            old, new = HIDDEN, HIDDEN  # a trace of an older tipi may hold the value itself
        return _SENTENCES[self.code].format(
            subject=self.subject,
            subject_paren=f" ({self.subject})" if self.subject else "",
            old=_short(old),
            new=_short(new),
            old_text=self.old if self.old != "" else "(none)",
            new_text=self.new if self.new != "" else "(none)",
            new_plain=self.new,
            old_or_none="(none)" if self.old in (None, "", []) else _short(old),
            new_or_none="(none)" if self.new in (None, "", []) else _short(new),
            detail=detail,
        )


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
