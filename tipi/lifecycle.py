"""The controller: gives processes permanences by name and drives their lifecycle."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tipi.errors import ConfigError, DefinitionError, PermanenceFailure
from tipi.permanence import Permanence
from tipi.report import NullReporter, Reporter
from tipi.suggest import did_you_mean

if TYPE_CHECKING:
    from tipi.config.resolve import ResolvedPermanence


class Controller:
    """Builds permanences lazily and guarantees their cleanup.

    A permanence is constructed, initialized and validated on the first
    ``get_permanence(name)``; ``checkpoint(names)`` runs after a step that used them
    succeeds; ``cleanup()`` runs every initialized permanence's ``cleanup()`` in reverse order
    of initialization, exactly once, even when one of them fails. Use it as a context manager
    so cleanup happens after success, failure and Ctrl-C alike.
    """

    def __init__(
        self,
        permanences: Mapping[str, ResolvedPermanence],
        reporter: Reporter | None = None,
    ) -> None:
        self._declared = dict(permanences)
        self._reporter = reporter or NullReporter()
        self._instances: dict[str, Permanence] = {}
        self._initialized: list[str] = []
        self._recording: list[set[str]] = []
        self._needs: dict[str, set[str]] = {}

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    @property
    def initialized(self) -> list[str]:
        """Names of the permanences initialized so far, in order."""
        return list(self._initialized)

    def declared(self) -> list[str]:
        """Names of every permanence the pipeline declares."""
        return list(self._declared)

    def declared_class(self, name: str) -> type:
        """The class of a declared permanence (without building it)."""
        return self._declared[name].cls

    def params_of(self, name: str) -> Mapping[str, Any]:
        """The checked params of a declared permanence (its config, for fingerprints)."""
        return self._declared[name].params

    def notice(self, message: str) -> None:
        """Let a permanence tell the user something once (e.g. "no GPU; using the CPU")."""
        self._reporter.notice(message)

    def get_permanence(self, name: str) -> Permanence:
        """Return permanence `name`, building, initializing and validating it on first use.

        Raises:
            DefinitionError: no permanence of that name is declared.
            PermanenceFailure: its constructor, initialize() or validate() raised.
        """
        for used in self._recording:
            used.add(name)
            used.update(self._needs.get(name, ()))
        if name in self._instances and self._instances[name].is_initialized:
            return self._instances[name]
        declared = self._declared.get(name)
        if declared is None:
            available = ", ".join(self._declared) or "none declared"
            raise DefinitionError(
                f"no permanence named '{name}' (available: {available})",
                hint=did_you_mean(name, self._declared) or "declare it under [permanences.NAME]",
            )
        instance = self._instances.get(name) or self._construct(name, declared)
        # What it asks for while it starts, it needs: a later step that uses only this one
        # depends on those too, although they are already initialized by then.
        with self.recording() as needs:
            self._initialize(name, instance)
        self._needs[name] = needs
        return instance

    @contextmanager
    def recording(self) -> Iterator[set[str]]:
        """Collect the names of the permanences requested inside the block."""
        used: set[str] = set()
        self._recording.append(used)
        try:
            yield used
        finally:
            # By identity: two recordings may hold equal sets.
            self._recording[:] = [r for r in self._recording if r is not used]

    def checkpoint(self, names: set[str] | list[str]) -> None:
        """Run checkpoint() on the named, initialized permanences, in initialization order."""
        for name in self._initialized:
            if name in names:
                self._call(name, "checkpoint")

    def cleanup(self) -> list[PermanenceFailure]:
        """Clean up every initialized permanence in reverse order; never raises.

        Returns:
            the failures of individual cleanups (each is also reported as a warning).
        """
        failures = []
        while self._initialized:
            name = self._initialized.pop()
            instance = self._instances[name]
            try:
                instance.cleanup()
            except Exception as exc:
                failure = PermanenceFailure(name, "cleanup", exc)
                failures.append(failure)
                self._reporter.warning(str(failure))
            finally:
                instance._mark_initialized(False)
        return failures

    def _construct(self, name: str, declared: ResolvedPermanence) -> Permanence:
        try:
            instance = declared.cls(**declared.params)
        except ConfigError as error:  # its params do not fit together: a config error, exit 2
            error.message = f"permanence '{name}': {error.message}"
            error.location = error.location or declared.spec.location
            raise
        except Exception as exc:
            raise PermanenceFailure(name, "__init__", exc) from exc
        instance.controller = self
        self._instances[name] = instance
        return instance

    def _initialize(self, name: str, instance: Permanence) -> None:
        self._reporter.permanence_initializing(name)
        self._call(name, "initialize")
        # From here the resource may hold something, so it is cleaned up even if validate fails.
        instance._mark_initialized(True)
        self._initialized.append(name)
        self._call(name, "validate")

    def _call(self, name: str, phase: str) -> None:
        try:
            getattr(self._instances[name], phase)()
        except Exception as exc:
            raise PermanenceFailure(name, phase, exc) from exc
