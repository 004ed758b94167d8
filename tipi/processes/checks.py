"""One-line errors for a step's params, naming the step and the key (exit 2)."""

from __future__ import annotations

from tipi.errors import ConfigError, Location


def param_error(step: str, key: str, message: str, section: str = "params") -> ConfigError:
    """A ConfigError located at `processes.STEP.params.KEY` (or `.inputs.KEY`), for values
    only the step can check (ranges, consistency with its inputs); type errors are caught
    when the pipeline is loaded, from the `__init__` type hints."""
    where = f"processes.{step}.{section}" if key == section else f"processes.{step}.{section}.{key}"
    return ConfigError(message, location=Location(key=where))
