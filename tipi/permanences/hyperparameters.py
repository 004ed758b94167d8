"""Hyperparameters: a plain table of values, plus an optional sweep description."""

from __future__ import annotations

from typing import Any

from tipi.permanence import Permanence


class Hyperparameters(Permanence):
    """Values shared by several steps (`hp["lr"]`), and how to sweep them.

    Args:
        values: the table of values.
        sweep: a sweep in W&B's format (method, metric, parameters naming keys of `values`):
            what `tipi sweep` runs when the pipeline folder has no sweep.toml.
    """

    def __init__(
        self, values: dict[str, Any] | None = None, sweep: dict[str, Any] | None = None
    ) -> None:
        self.values = dict(values or {})
        self.sweep = dict(sweep) if sweep else None

    def __getitem__(self, key: str) -> Any:
        try:
            return self.values[key]
        except KeyError:
            raise KeyError(
                f"no hyperparameter '{key}' (have: {', '.join(self.values) or 'none'})"
            ) from None

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def get_state(self) -> dict[str, Any]:
        return dict(self.values)

    def cleanup(self) -> None:
        """Nothing to release."""
