"""PipelineProcess: one step of a pipeline, with declared inputs, outputs and params."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from tipi.atomic import atomic_write

if TYPE_CHECKING:
    from tipi.permanence import Permanence


class PermanenceProvider(Protocol):
    """What a process sees of the controller: permanences by name."""

    def get_permanence(self, name: str) -> Permanence: ...


class PipelineProcess(ABC):
    """A step of a pipeline. Subclass it, write ``execute()``, declare params in ``__init__``.

    Params are the keyword arguments of ``__init__`` after ``controller`` and ``force``; the
    values in the step's TOML ``params`` table are checked against their type hints before
    anything runs.

    Inputs and outputs may be declared as class attributes (name → path template) and are
    extended or overridden by the step's TOML ``inputs``/``outputs``. At run time
    ``self.inputs`` and ``self.outputs`` map each name to a resolved ``pathlib.Path``.

    Attributes:
        controller: gives access to permanences: ``self.controller.get_permanence("device")``.
        force: run even when ``skip()`` says the work is done.
        version: when set, stands for the code of this class in its fingerprint (bump it to
            force a rebuild; leave it None to fingerprint the normalized source).
        scratch_dir: a folder of this step's own that survives a crash (write resumable
            checkpoints there); removed once the step succeeds. None outside the engine.
            What is left there is resumed only by a run of the same fingerprint (same code,
            params, inputs and permanence configs); any other run starts without it.
        announces_resume: True when the step says itself that it resumes a checkpoint (as
            `Train` does, naming the epoch and batch); else the engine says it.
        metrics_outputs: names of outputs that are JSON files of numbers (metrics): every
            run records their figures as `step.key` (`tipi runs`, `tipi diff`). The step's
            TOML `metrics = { name = "path.json" }` adds more.
    """

    inputs: ClassVar[Mapping[str, str]] = {}
    outputs: ClassVar[Mapping[str, str]] = {}
    version: ClassVar[str | None] = None
    announces_resume: ClassVar[bool] = False
    metrics_outputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, controller: PermanenceProvider, force: bool = False) -> None:
        self.controller = controller
        self.force = force

    @abstractmethod
    def execute(self) -> None:
        """Do the step's work: read ``self.inputs``, write ``self.outputs``."""

    def skip(self) -> bool:
        """Return True when the work is already done and the step need not run."""
        return False

    def bind_paths(
        self,
        inputs: Mapping[str, Path],
        outputs: Mapping[str, Path],
        scratch_dir: Path | None = None,
        name: str | None = None,
        binding: bytes = b"",
    ) -> None:
        """Give the step its paths for this run (the engine calls this).

        Outputs point into a staging folder; the engine moves them to their declared paths
        only once `execute()` returned, so a crash never leaves a half-written output.
        `binding` is written into the scratch folder when it is created: it ties whatever
        the step leaves there to this run's fingerprint (see tipi.cache.resume).
        """
        # Instance attributes shadow the class-level declarations on purpose: the class keeps
        # the templates, the instance holds the paths of this run.
        self.inputs = dict(inputs)  # type: ignore[misc]
        self.outputs = dict(outputs)  # type: ignore[misc]
        self._scratch_dir = scratch_dir
        self._scratch_binding = binding
        self.name = name or type(self).__name__

    @property
    def scratch_dir(self) -> Path | None:
        """This step's own folder that survives a crash (created on first use)."""
        scratch = getattr(self, "_scratch_dir", None)
        if scratch is not None:
            scratch.mkdir(parents=True, exist_ok=True)
            binding = getattr(self, "_scratch_binding", b"")
            marker = scratch / ".tipi-binding"
            if binding and not marker.exists():
                # Every rank of a distributed step may write it: each its own temp file.
                atomic_write(marker, binding)
        return scratch
