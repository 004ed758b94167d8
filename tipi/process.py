"""PipelineProcess: one step of a pipeline, with declared inputs, outputs and params."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import msgpack
import xxhash

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
    An input listed in the TOML (``models = ["a.pt", "b.pt"]``: ``models[0]``, ``models[1]``)
    or gathered over a matrix key (``models = "out/p/train/{seed}/model.pt"`` in a step
    without ``seed``: ``models[seed=0]``, ``models[seed=1]``, ...) is there entry by entry, and
    grouped in ``self.input_lists["models"]`` (the paths, in order) and, when gathered,
    ``self.input_values["models"]`` (value → path; a tuple of values when it gathers several
    keys; values read back from their text: `0` an int, `0.5` a float, `true` a bool).

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
        permanence_params: names of params that hold the name of a permanence (a string, or
            a list of strings; "" or None for none). Such a param is left out of the step's
            fingerprint while every permanence it names does not change results
            (`affects_results = False`: loggers, progress bars, devices), so choosing another
            logger never reruns the step; naming any other permanence keeps it in.
    """

    inputs: ClassVar[Mapping[str, str]] = {}
    outputs: ClassVar[Mapping[str, str]] = {}
    version: ClassVar[str | None] = None
    announces_resume: ClassVar[bool] = False
    metrics_outputs: ClassVar[tuple[str, ...]] = ()
    permanence_params: ClassVar[tuple[str, ...]] = ("device", "loggers", "progress")

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
        the step leaves there to this run's fingerprint (see tipi.uptodate.resume).
        """
        # Instance attributes shadow the class-level declarations on purpose: the class keeps
        # the templates, the instance holds the paths of this run.
        self.inputs = dict(inputs)  # type: ignore[misc]
        self.outputs = dict(outputs)  # type: ignore[misc]
        self.input_lists, self.input_values = _grouped(self.inputs)
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

    @property
    def fingerprint(self) -> str | None:
        """This run's fingerprint, as the engine computed it before the run: type, code,
        params, the contents of the inputs and the configs of every result-relevant
        permanence the pipeline declares. None outside the engine."""
        fp = self._binding_data().get("fp")
        return fp if isinstance(fp, str) else None

    def cache_key(self, *per_entry: str) -> str | None:
        """The key of a cache this step keeps between runs: the whole fingerprint (code
        included) and the environment, less the contents of the inputs named in
        `per_entry`, by whose parts the cache keys its entries itself (Predict keys each
        image's prediction by the image's bytes, so a new image in the folder runs alone).

        Never key such a cache by a part of the fingerprint (the weights, some params): an
        edit of the model's code would be served the old results. When `self.force` is set
        (`-f`, `-F`, `force = true`), read nothing from the cache; writing is fine.

        Returns:
            None outside the engine (no fingerprint to key by): keep no cache then.

        Raises:
            ValueError: a name of `per_entry` is not an input of this step.
        """
        data = self._binding_data()
        names, inputs = data.get("names"), data.get("inputs")
        if not isinstance(data.get("fp"), str) or not isinstance(inputs, dict):
            return None
        if not isinstance(names, dict):
            return None  # which path is which input is not known: no safe key
        unknown = [n for n in per_entry if n not in names]
        if unknown:
            known = ", ".join(sorted(names)) or "none"
            raise ValueError(f"no input '{unknown[0]}' in step {self.name} (inputs: {known})")
        apart = {names[n] for n in per_entry}
        parts = [
            "tipi-step-cache/1",
            *(data.get(k) for k in ("type", "code", "params", "permanences", "environment")),
            {p: h for p, h in inputs.items() if p not in apart},
            sorted(per_entry),
        ]
        return xxhash.xxh3_128_hexdigest(msgpack.packb(_ordered(parts), use_bin_type=True))

    def _binding_data(self) -> dict:
        """The binding the engine gave this run (tipi/uptodate/resume.py), read as msgpack."""
        binding = getattr(self, "_scratch_binding", b"")
        if not binding:
            return {}
        try:
            data = msgpack.unpackb(binding, raw=False)
        except (ValueError, msgpack.UnpackException):
            return {}
        return data if isinstance(data, dict) else {}


def _grouped(
    inputs: Mapping[str, Path],
) -> tuple[dict[str, list[Path]], dict[str, dict[object, Path]]]:
    """(name → paths, name → {value: path}) of the inputs named `name[...]` (above)."""
    lists: dict[str, list[Path]] = {}
    values: dict[str, dict[object, Path]] = {}
    for key, path in inputs.items():
        name, bracket, rest = key.partition("[")
        if not bracket or not rest.endswith("]") or name in inputs:
            continue
        lists.setdefault(name, []).append(path)
        if "=" in rest:
            parts = tuple(_literal(item.partition("=")[2]) for item in rest[:-1].split(","))
            values.setdefault(name, {})[parts[0] if len(parts) == 1 else parts] = path
    return lists, values


def _literal(text: str) -> object:
    """A matrix value from its text in a name (config/instances.py `format_value`)."""
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if (str(value) if kind is int else repr(value)) == text:
            return value
    return text


def _ordered(value: object) -> object:
    """`value` with every map's keys sorted: the same facts always pack to the same bytes."""
    if isinstance(value, dict):
        return {str(k): _ordered(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_ordered(v) for v in value]
    return value
