"""Permanence: a long-lived resource shared by processes, with an explicit lifecycle."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar


class Permanence(ABC):
    """A resource that lives for a whole run: a device, a dataset, a model, a logger.

    The controller constructs it from its TOML ``params`` and drives the lifecycle:
    ``initialize()`` on first use, ``validate()`` right after, ``checkpoint()`` after each step
    that used it succeeds, and ``cleanup()`` once at the end of the run, always, in reverse
    order of initialization. Only ``cleanup`` must be written; the other phases are optional.

    Attributes:
        affects_results: whether this resource's configuration changes what a step computes.
            The engine folds the config of result-relevant permanences a step used into the
            step's fingerprint; devices, progress bars and loggers set this to False.
        controller: set by the controller before `initialize()`, so a permanence can use
            another one (`self.controller.get_permanence("device")`).
    """

    affects_results: ClassVar[bool] = True
    controller: Any = None

    @classmethod
    def code_refs(cls, params: Mapping[str, Any]) -> list[str]:
        """Code this permanence runs besides its own class, as `module:attr` strings (a
        model factory named in its params): their code closure joins the permanence's
        fingerprint, so editing the factory reruns the steps that use it."""
        return []

    def initialize(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Acquire the resource (open files, allocate, load). Called once, on first use."""

    def validate(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Check the initialized resource is usable; raise with a clear message if not."""

    def checkpoint(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Persist whatever must survive the run, after a step that used it succeeded."""

    def get_state(self) -> dict[str, Any]:
        """Return a small, serializable summary of the resource (for reports and status)."""
        return {}

    @abstractmethod
    def cleanup(self) -> None:
        """Release the resource. Called exactly once for every initialized permanence."""

    @property
    def is_initialized(self) -> bool:
        """True once the controller has run ``initialize()`` and ``validate()``."""
        return getattr(self, "_tipi_initialized", False)

    def _mark_initialized(self, value: bool) -> None:
        self._tipi_initialized = value
