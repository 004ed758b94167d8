"""Regenerates docs/progressive.md from the real example files (a test checks it is current)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_progressive_examples import diffs  # noqa: E402

STEPS = [
    (
        "Level 1: progress bars",
        "One import and one changed loop. `progress_bar` takes tqdm's common call forms (iterables, generators with `total`, nested loops, `update()`, `set_postfix()`), draws with Rich, and in CI or a pipe writes a plain line every few seconds instead of redrawing. Its cost per iteration is below tqdm's (benchmarks/README.md).",
    ),
    (
        "Level 2: experiment logging",
        '`logger.init()` picks W&B when it is installed (offline, into local run files, unless an API key is configured, and then it says once where they went; the key is never written anywhere) and falls back to JSON lines with one message otherwise. `backend="tensorboard"` or `"files"` choose explicitly. It takes `wandb.init`\'s common arguments as well, `logger.init(project="my_research", entity="my_team", config={"lr": lr})` (and `name`, `group`, `tags`, `notes`, `dir`, `mode`), and passes on what the backend supports. Each `init` is a run: an id, and a folder of its own for files and TensorBoard (`logs/<project>/<run>/`); `logger.log(..., step=epoch, epoch=epoch)` also logs the epoch ([logging](../README.md#logging)).',
    ),
    (
        "Level 3: the right device",
        "`device_manager.get_device()` picks the CUDA device with the most free memory (NVML), honours `CUDA_VISIBLE_DEVICES`, and falls back to the CPU with one message.",
    ),
    (
        "Level 4: a function that is also a step",
        "`@pipeline_process` leaves `train_model` a plain function (level 3's `__main__` still works) and makes it a pipeline step: its parameters, with their type hints and defaults, become the step's params; `model` receives the declared output's path.",
    ),
    (
        "Level 5: a pipeline",
        "The same file beside a `pipeline.toml` (`examples/progressive/level5/`). `tipi make` runs it once and then never again until something changes (`--set train.lr=0.02` says why it reruns). Inside the pipeline the helpers switch to the pipeline's permanences: bars nest under the step on its ProgressManager, metrics go to its loggers, the device is its Device.",
    ),
]

HEADER = """# From a script to a pipeline, one import at a time

`examples/progressive/` holds the same small digits training at six levels, each runnable as
written (`python examples/progressive/level0_script.py` ... and, for level 5,
`cd examples/progressive/level5 && tipi make`). Every level still runs as a plain script, and
`tests/test_progressive_examples.py` runs them all. The diffs below are the real files'
(regenerate this page with `python docs/make_progressive.py`).

## Level 0: a plain script

`examples/progressive/level0_script.py`: PyTorch, scikit-learn's digits (no download), `print`.
"""


def main() -> None:
    parts = [HEADER]
    for (title, text), diff in zip(STEPS, diffs(), strict=True):
        parts.append(f"## {title}\n\n{text}\n\n```diff\n{diff}\n```\n")
    (ROOT / "docs/progressive.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
