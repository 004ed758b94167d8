"""The names offered when a name is not known: "did you mean 'x'?".

Every place that rejects a name (a step, a target, a TOML key, a param, a type, a permanence,
a pipeline) offers the close ones through here, so that all of them phrase the hint alike:

    hint = did_you_mean(name, steps) or f"steps: {', '.join(steps)}"

difflib is imported only when a name is wrong: the no-op `tipi make` imports modules that
call this (config/project.py, graph/select.py) and must not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable

# difflib's own default: how alike (0..1) a name must be to be offered.
CUTOFF = 0.6


def close_matches(
    word: str, choices: Iterable[str], *, n: int = 1, cutoff: float = CUTOFF
) -> list[str]:
    """Up to `n` of `choices` that look like `word`, the closest first."""
    import difflib

    return difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)


def did_you_mean(
    word: str, choices: Iterable[str], *, n: int = 1, cutoff: float = CUTOFF
) -> str | None:
    """The hint for the unknown `word`: "did you mean 'x'?" ("'x' or 'y' or 'z'" when `n` > 1
    and several are close); None when none of `choices` is close, so that a caller can fall
    back on listing them: `did_you_mean(...) or "allowed: ..."`."""
    close = close_matches(word, choices, n=n, cutoff=cutoff)
    if not close:
        return None
    return f"did you mean {' or '.join(repr(name) for name in close)}?"
