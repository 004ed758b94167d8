"""The pipeline summary of training phases: each phase's epochs, why it ended, and its key
metrics, carried from phase to phase in the checkpoints' metadata (`phases`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

KEY_METRICS = ("train_loss", "val_loss", "val_accuracy")


def phase_entry(
    index: int,
    label: str,
    step: str,
    state: Mapping[str, Any],
    watched: Sequence[str],
    ended_by: str,
) -> dict[str, Any]:
    """One row of the summary, for the metadata of the phase's checkpoints."""
    final = state["history"][-1] if state["history"] else {}
    names = [n for n in (*KEY_METRICS, *watched) if n in final]
    metrics = {n: final[n] for n in dict.fromkeys(names)}
    loaded = state.get("init")
    return {
        **({"init": loaded} if loaded else {}),
        "index": index,
        "name": label,
        "step": step,
        "epochs": state["epoch"],
        "ended_by": ended_by,
        "global_step": state["global_step"],
        "best_epoch": state.get("best_epoch"),
        "metrics": metrics,
    }


def summary_table(phases: Sequence[Mapping[str, Any]]) -> str:
    """The phases as an aligned text table (one line per phase)."""
    columns = list(dict.fromkeys(name for phase in phases for name in phase["metrics"]))
    header = ["#", "phase", "step", "epochs", "ended by", *columns]
    rows = [header]
    for phase in phases:
        values = [_number(phase["metrics"].get(c)) for c in columns]
        label = phase["name"]
        rows.append(
            [
                str(phase["index"]),
                label,
                phase["step"],
                str(phase["epochs"]),
                phase["ended_by"],
                *values,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for phase in phases:  # what a non-strict or mapped init left out, under the table
        if phase.get("init"):
            from tipi.permanences.network import describe_load

            how = "strict" if phase["init"].get("strict") else "non-strict"
            lines.append(f"{phase['name']}: init {how}: {describe_load(phase['init'], 8)}")
    return "\n".join(lines)


def pipeline_summary(checkpoint: Path) -> str:
    """The summary table of every phase that led to `checkpoint` (a Train output), for
    scripts and notebooks: `print(pipeline_summary("out/p/b/model.pt"))`."""
    from tipi.permanences.network import read_checkpoint

    _, metadata = read_checkpoint(checkpoint)
    return summary_table(metadata.get("phases", []))


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
