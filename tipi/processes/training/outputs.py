"""What a Train phase writes when it ends: its weights with the pipeline's metadata (the format
is described in checkpoints.py), the top-k files, history.json, and the summary of the
phases so far."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tipi.processes.training.checkpoints import write_weights
from tipi.processes.training.summary import phase_entry, summary_table


def input_preprocessing(dataset: Any, recorded: dict[str, Any]) -> dict[str, Any]:
    """How the model's inputs were made, for the checkpoints' `preprocessing`: what the
    splits file recorded (PrepareDigits: size, channels, mean, std, resize), else the
    `size` and `channels` of image-shaped (N, C, H, W) inputs of a TensorDataset (or a
    Subset of one); {} for other inputs. Samples are never read: a dataset's `__getitem__`
    may draw random numbers, and the training's draws must stay what they were."""
    found: dict[str, Any] = {}
    tensors = getattr(dataset, "tensors", None)
    if tensors is None:
        tensors = getattr(getattr(dataset, "dataset", None), "tensors", None)
    shape = tuple(getattr(tensors[0], "shape", ())) if tensors else ()
    if len(shape) == 4:
        found = {"size": [int(shape[2]), int(shape[3])], "channels": int(shape[1])}
    return {**found, **recorded}


def epochs_text(count: int) -> str:
    return f"{count} epoch" if count == 1 else f"{count} epochs"


class PhaseWriter:
    """Writes one phase's files. `start` is the metadata of its `init` ({} without one);
    `trainer` is set once the loop exists."""

    def __init__(self, step: Any, start: dict[str, Any]) -> None:
        self.step, self.start = step, start
        self.trainer: Any = None
        self.phases: list[dict[str, Any]] = list(start.get("phases", []))  # this one at the end

    @property
    def phase_index(self) -> int:
        """0 for a phase that starts from no `init`, else the init's index + 1."""
        phase = self.start.get("phase") or {}
        return int(phase["index"]) + 1 if "index" in phase else 0

    def metadata(self, kind: str, metrics: dict[str, Any], epoch: int) -> dict[str, Any]:
        from tipi.context import current

        step = self.step
        running = current()
        run = running.run if running is not None else None
        loaded = self.trainer.state.get("init")
        preprocessing = getattr(step, "preprocessing", None)
        return {
            **({"init": loaded} if loaded else {}),
            **({"preprocessing": preprocessing} if preprocessing else {}),
            "format": 1,
            "kind": kind,
            "pipeline": run.pipeline if run else "",
            "step": step.name,
            "phase": {"index": self.phase_index, "name": step.phase or step.name},
            "epoch": epoch,
            "global_step": self.trainer.global_step,
            "params": step.params,
            "fingerprint": getattr(step, "fingerprint", None),
            "run_id": run.id if run else None,
            "metrics": metrics,
            "phases": self.phases,
        }

    def checkpoint(
        self, path: Path, kind: str, metrics: dict[str, Any], epoch: int, weights: Any = None
    ) -> None:
        """Weights (the model's now, unless given) at `path`, atomically (the top-k files)."""
        self.step.scratch_dir  # noqa: B018 - top-k files go there: it needs its binding
        state_dict = weights if weights is not None else self.trainer.model.state_dict()
        write_weights(path, state_dict, self.metadata(kind, metrics, epoch), atomic=True)

    def outputs(self, state: dict[str, Any], monitor: str, ema: Any) -> None:
        """model, best (and ema, top_k), history; the phases summary as a notice."""
        step = self.step
        final = state["history"][-1] if state["history"] else {}
        ended_by = state.get("stopped_by") or epochs_text(step.epochs)
        passed = state.get("gate_passed")
        if passed and not state.get("stopped_by"):
            ended_by += f" (gate passed at epoch {passed['epoch']})"
        watched = [m for m in (monitor, step.until_rule and step.until_rule.metric) if m]
        label = step.phase or step.name
        entry = phase_entry(self.phase_index, label, step.name, state, watched, ended_by)
        self.phases = [*self.start.get("phases", []), entry]
        model, outputs = self.trainer.model, step.outputs
        self._write(outputs["model"], "last", final, state["epoch"], model.state_dict())
        best = state.get("best_weights") or model.state_dict()
        best_epoch = state.get("best_epoch") or state["epoch"]
        self._write(outputs["best"], "best", state.get("best_metrics") or final, best_epoch, best)
        if ema is not None:
            ema_metrics = {k: v for k, v in final.items() if k.startswith("ema_")}
            self._write(outputs["ema"], "ema", ema_metrics, state["epoch"], ema.state_dict())
        if step.save_top_k > 1:
            self._copy_top_k(state.get("top_k", []))
        summary = {
            "epochs": state["epoch"],
            "stopped_by": ended_by,
            "best_epoch": state.get("best_epoch"),
            "best_score": state.get("best_score"),
            "monitor": monitor,
            "global_step": state["global_step"],
            "phase": {"index": entry["index"], "name": entry["name"]},
            "frozen": state.get("frozen", []),
            "gate_passed": passed,
            "init": state.get("init"),
            "final": final,
            "history": state["history"],
            "steps": state.get("steps", []),
            "phases": self.phases,
        }
        outputs["history"].write_text(json.dumps(summary, indent=2))
        if len(self.phases) > 1:
            step.controller.notice("phases so far:\n" + summary_table(self.phases))

    def _write(
        self, path: Path, kind: str, metrics: dict[str, Any], epoch: int, weights: Any
    ) -> None:
        write_weights(path, weights, self.metadata(kind, metrics, epoch))

    def _copy_top_k(self, kept: list[dict[str, Any]]) -> None:
        folder, source = self.step.outputs["top_k"], self.trainer.top_k_dir
        folder.mkdir(parents=True, exist_ok=True)
        for entry in kept:
            shutil.copy2(source / entry["file"], folder / entry["file"])
        (folder / "top_k.json").write_text(json.dumps(kept, indent=2))
