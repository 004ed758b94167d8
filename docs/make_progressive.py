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
        "One import and one changed loop. `progress_bar` is tqdm's API, so a script that uses tqdm switches with one word: `from tqdm.auto import tqdm, trange` becomes `from tipi.helpers import tqdm, trange` (`tqdm` is `progress_bar`). Supported as in tqdm: the constructor's arguments (`iterable, desc, total, leave, file, mininterval, maxinterval, miniters, disable, unit, unit_scale, unit_divisor, initial, position, postfix, colour, delay, write_bytes`; `ncols, ascii, bar_format` shape the plain lines; `dynamic_ncols, nrows, smoothing, lock_args, gui` are accepted and ignored), the methods (`update, close, clear, refresh, reset, unpause, set_description, set_description_str, set_postfix, set_postfix_str, write, display`), the class methods (`write, get_lock, set_lock, external_write_mode, wrapattr`), the attributes (`n, total, desc, postfix, pos, disable, format_dict`), `len()`, `bool()`, iteration, `with`, and `tqdm.contrib`'s `tenumerate`, `tzip`, `tmap`, `thread_map` and `process_map` with `tqdm_class=progress_bar`; tqdm's own test suite runs against it (`tests/test_progress_tqdm.py`, which lists the tests of tqdm's exact redraw text it skips and why). In a terminal the bars are Rich bars on one live display, nested bars indented under their loop, finished bars kept with their final count (`leave`); in CI, a pipe or with `TIPI_NO_LIVE=1` each bar writes tqdm's line as a plain `[progress]` line, no ANSI: when it opens, at most every 5 s (or every `mininterval` you pass) and once when it ends. Its cost per iteration is below tqdm's (`benchmarks/progress_overhead.py`).",
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
