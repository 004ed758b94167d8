"""SideBySide: phase A's and phase B's evaluations in one table (the hypothesis's answer)."""

from __future__ import annotations

import json

from tipi import PipelineProcess

SHOWN = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


class SideBySide(PipelineProcess):
    """Reads the `a` and `b` metrics files of two Evaluate steps; writes `comparison`
    (JSON: each metric for A and B and B - A) and prints the table."""

    outputs = {"comparison": "out/{pipeline}/{name}/comparison.json"}
    metrics_outputs = ("comparison",)

    def __init__(self, controller, force: bool = False, a: str = "A", b: str = "B") -> None:
        super().__init__(controller, force)
        self.labels = (a, b)

    def execute(self) -> None:
        a = json.loads(self.inputs["a"].read_text())
        b = json.loads(self.inputs["b"].read_text())
        rows = {m: {"a": a[m], "b": b[m], "b_minus_a": b[m] - a[m]} for m in SHOWN}
        self.outputs["comparison"].write_text(
            json.dumps({"a": self.labels[0], "b": self.labels[1], "metrics": rows}, indent=2)
        )
        first, second = self.labels
        lines = [f"{'metric':<16} {first:>16} {second:>16} {'B - A':>8}"]
        for metric, row in rows.items():
            lines.append(
                f"{metric:<16} {row['a']:>16.4f} {row['b']:>16.4f} {row['b_minus_a']:>+8.4f}"
            )
        print("\n".join(lines), flush=True)  # noqa: T201 - the step's answer, shown in the make
