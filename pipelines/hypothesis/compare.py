"""SideBySide: phase A's and phase B's evaluations in one table (the hypothesis's answer).

Over a step matrix (pipeline.toml: `a` and `b` gather `evaluate_a[seed=S]` and
`evaluate_b[seed=S]`), one row per seed and metric, A and B of the same seed side by side:
paired by seed, never pooled (a test across seeds is not this step's).
"""

from __future__ import annotations

import json
from pathlib import Path

from tipi import PipelineProcess

SHOWN = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


class SideBySide(PipelineProcess):
    """Reads the `a` and `b` metrics files of Evaluate steps, one each or one per seed;
    writes `comparison` (JSON: each metric for A and B and B - A, by seed when gathered)
    and prints the table."""

    outputs = {"comparison": "out/{pipeline}/{name}/comparison.json"}
    metrics_outputs = ("comparison",)

    def __init__(self, controller, force: bool = False, a: str = "A", b: str = "B") -> None:
        super().__init__(controller, force)
        self.labels = (a, b)

    def execute(self) -> None:
        arms = [self._by_seed(arm) for arm in ("a", "b")]
        if arms[0].keys() != arms[1].keys():
            raise ValueError(f"A's seeds {sorted(arms[0])} are not B's {sorted(arms[1])}")
        seeds = {}
        for seed in arms[0]:
            a, b = (json.loads(arm[seed].read_text()) for arm in arms)
            seeds[seed] = {m: {"a": a[m], "b": b[m], "b_minus_a": b[m] - a[m]} for m in SHOWN}
        report = {"a": self.labels[0], "b": self.labels[1]}
        if list(seeds) == [None]:  # one pair: the file as it always was
            report["metrics"] = seeds[None]
        else:
            report["seeds"] = {str(seed): rows for seed, rows in seeds.items()}
            # `metrics` (what `tipi runs` shows) holds each seed's numbers: `seed0.accuracy.a`
            report["metrics"] = {f"seed{seed}": rows for seed, rows in seeds.items()}
        self.outputs["comparison"].write_text(json.dumps(report, indent=2))
        print(self._table(seeds), flush=True)  # noqa: T201 - the step's answer, in the make

    def _by_seed(self, arm: str) -> dict[object, Path]:
        """seed → metrics file of one arm; {None: file} for a single input."""
        gathered = self.input_values.get(arm)
        return dict(gathered) if gathered else {None: self.inputs[arm]}

    def _table(self, seeds: dict[object, dict[str, dict[str, float]]]) -> str:
        first, second = self.labels
        lines = [f"{'seed':>4}  {'metric':<16} {first:>16} {second:>16} {'B - A':>8}"]
        for seed, rows in seeds.items():
            for metric, row in rows.items():
                lines.append(
                    f"{'' if seed is None else seed:>4}  {metric:<16} {row['a']:>16.4f} "
                    f"{row['b']:>16.4f} {row['b_minus_a']:>+8.4f}"
                )
        return "\n".join(lines)
