"""Network: a model from the zoo or a `module:factory`, on the pipeline's device, checkpointed
atomically and loaded with `weights_only=True`; `read_checkpoint` reads every weights file
tipi writes (Train's `{"state_dict", "metadata"}`, this permanence's own, bare state dicts)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tipi.atomic import atomic_path
from tipi.permanence import Permanence
from tipi.permanences.factory import build
from tipi.permanences.zoo import MODELS


class Network(Permanence):
    """A torch model shared by the steps that train, evaluate or export it.

    Args:
        model: a zoo name ("mlp", "small_cnn") or "package.module:factory".
        params: keyword arguments of the factory.
        device: the name of the Device permanence to move it to ("" keeps it on the CPU).
        checkpoint: where `checkpoint()` saves weights and optimizer state (None: nowhere).
        seed: seeds the weight initialization, so every run starts from the same weights.

    Attributes:
        model: the `torch.nn.Module`, after initialize.
        optimizer: set by a training step to have its state checkpointed too.
        trained_by: the step that last trained the model in this make (None: as built).
    """

    @classmethod
    def code_refs(cls, params: Mapping[str, Any]) -> list[str]:
        """The model factory: a `module:function` path, or a built-in of the zoo."""
        spec = str(params.get("model", ""))
        return [spec if ":" in spec else f"tipi.permanences.zoo:{spec}"]

    def __init__(
        self,
        model: str,
        params: dict[str, Any] | None = None,
        device: str = "device",
        checkpoint: Path | None = None,
        seed: int = 0,
    ) -> None:
        self.spec = model
        self.seed = seed
        self.params = dict(params or {})
        self.device_name = device
        self.checkpoint_path = checkpoint
        self.model: Any = None
        self.optimizer: Any = None
        self.trained_by: str | None = None  # the last step that changed the weights

    def initialize(self) -> None:
        import torch

        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            self.model = build(self.spec, MODELS, self.params, "model")
        if self.device_name and self.controller is not None:
            self.model.to(self.controller.get_permanence(self.device_name).device)
        self.trained_by = None

    def reset(self) -> None:
        """Build the model afresh (the same seed, so the same initial weights): a step that
        trains from scratch must not start from what an earlier step of this make left."""
        self.initialize()

    def validate(self) -> None:
        import torch

        if not isinstance(self.model, torch.nn.Module):
            found = type(self.model).__name__
            raise TypeError(f"model factory '{self.spec}' returned {found}, not a torch.nn.Module")

    def checkpoint(self) -> None:
        if self.checkpoint_path is not None:
            self.save(self.checkpoint_path)

    def save(self, path: Path) -> None:
        """Save weights (and optimizer state) so a crash never leaves a torn file."""
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"model": self.model.state_dict()}
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    def load(
        self, path: Path, strict: bool = True, key_map: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Load what `save` wrote, a Train checkpoint or a bare state dict; tensors only
        (`weights_only=True`), never arbitrary pickles. `key_map` renames key prefixes
        (`{"old.": "new."}`) first; `strict=False` loads the keys that fit and skips the
        rest (see `load_weights`). Returns the checkpoint's metadata ({} when it has none),
        with what a non-strict or mapped load skipped under `"init"`."""
        import torch

        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        weights, metadata = unwrap_checkpoint(state)
        report = load_weights(self.model, weights, strict, key_map)
        if self.optimizer is not None and isinstance(state, dict) and "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        if not strict or key_map:
            metadata = {**metadata, "init": report}
        return metadata

    def get_state(self) -> dict[str, Any]:
        count = sum(p.numel() for p in self.model.parameters()) if self.model is not None else 0
        return {"model": self.spec, "parameters": count}

    def cleanup(self) -> None:
        self.model = None
        self.optimizer = None


def map_keys(weights: Mapping[str, Any], key_map: Mapping[str, str] | None) -> dict[str, Any]:
    """`weights` with each key's longest matching prefix of `key_map` replaced."""
    if not key_map:
        return dict(weights)
    prefixes = sorted(key_map, key=len, reverse=True)
    mapped = {}
    for key, value in weights.items():
        old = next((p for p in prefixes if key.startswith(p)), None)
        mapped[key if old is None else key_map[old] + key[len(old) :]] = value
    return mapped


class WeightsMismatch(ValueError):
    """A strict load whose keys or shapes do not match the model's (`report` says which)."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(describe_load(report))
        self.report = report


def load_weights(
    model: Any,
    weights: Mapping[str, Any],
    strict: bool = True,
    key_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Load `weights` (prefixes renamed by `key_map`) into `model`.

    Returns the report `{"strict", "mapped", "missing", "unexpected", "mismatched"}`: the
    model's keys the file lacks, the file's keys the model lacks, and those whose shapes
    differ (name: file shape → model shape). Non-strict, the keys that fit are loaded and the
    rest keep the model's values.

    Raises:
        WeightsMismatch: strict, and any key is missing, unexpected or of another shape.
    """
    mapped = map_keys(weights, key_map)
    own = model.state_dict()
    missing = sorted(k for k in own if k not in mapped)
    unexpected = sorted(k for k in mapped if k not in own)
    mismatched = {
        k: f"{list(mapped[k].shape)} → {list(own[k].shape)}"
        for k in sorted(mapped)
        if k in own and hasattr(mapped[k], "shape") and mapped[k].shape != own[k].shape
    }
    report = {
        "strict": strict,
        "mapped": dict(key_map or {}),
        "missing": missing,
        "unexpected": unexpected,
        "mismatched": mismatched,
    }
    if strict and (missing or unexpected or mismatched):
        raise WeightsMismatch(report)
    fitting = {k: v for k, v in mapped.items() if k in own and k not in mismatched}
    model.load_state_dict(fitting, strict=strict)
    return report


def describe_load(report: Mapping[str, Any], shown: int = 4) -> str:
    """One line: what a load left out (`3 missing (a, b, c), 1 unexpected (d)`)."""

    def some(names: Any) -> str:
        names = list(names)
        more = f", {len(names) - shown} more" if len(names) > shown else ""
        return ", ".join(names[:shown]) + more

    parts = [
        f"{len(report[kind])} {kind} ({some(report[kind])})"
        for kind in ("missing", "unexpected", "mismatched")
        if report[kind]
    ]
    return ", ".join(parts) or "every key matched"


def unwrap_checkpoint(saved: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict, metadata) of a loaded weights file: Train's `{"state_dict", "metadata"}`,
    Network.save's `{"model", "optimizer"}`, or a bare state dict (metadata {})."""
    if isinstance(saved, dict) and isinstance(saved.get("state_dict"), Mapping):
        return dict(saved["state_dict"]), dict(saved.get("metadata") or {})
    if isinstance(saved, dict) and isinstance(saved.get("model"), Mapping):
        return dict(saved["model"]), {}
    if not isinstance(saved, Mapping):
        raise ValueError(f"not a weights file: it holds a {type(saved).__name__}")
    return dict(saved), {}


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict, metadata) of the weights file at `path`, loaded with `weights_only=True`
    on the CPU."""
    import torch

    return unwrap_checkpoint(torch.load(Path(path), map_location="cpu", weights_only=True))


def read_weights(path: Path) -> dict[str, Any]:
    """The state dict of the weights file at `path` (any format `read_checkpoint` reads)."""
    return read_checkpoint(path)[0]
