"""tqdm's own test suite (tests/tests_tqdm.py of the installed tqdm's source distribution, with
its conftest.py) run against progress_bar: tqdm's class swapped for `tipi.helpers.tqdm`.

The sources are fetched from the package registry on first use (`pip download --no-binary
:all: tqdm==<installed>`) into `.cache/tqdm-tests/<version>/`; offline, one test skips saying
so. Every test of the API surface runs; SKIPPED lists those that check tqdm's own text
(carriage returns, cursor moves, ANSI colours, bars redrawn below a message) or tqdm internals,
each with its reason. In a pipe progress_bar writes tqdm's line, newline-terminated, so tests
that look for counts, percentages, rates and units in the output run as they are.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).parent.parent
CACHE = REPO / ".cache" / "tqdm-tests"
ORIGINAL_IMPORT = "from tqdm import TqdmDeprecationWarning, TqdmWarning, tqdm, trange"
SWAPPED_IMPORT = (
    "from tqdm import TqdmDeprecationWarning, TqdmWarning\nfrom tipi.helpers import tqdm, trange"
)

CONFTEST_IMPORT = "from tipi.helpers import tqdm"
FIXTURES = ("pretest_posttest", "caperr", "tmp_file", "tmp_file2", "thread_lock", "process_lock")

CR = "tqdm redraws one line with carriage returns; progress_bar writes whole lines to a pipe"
SKIPPED = {
    # tqdm's text functions and internals, not progress_bar's API.
    "test_bar_formatspec": "tqdm.std.Bar, tqdm's internal class",
    "test_ema": "tqdm.std.EMA, tqdm's internal class (progress_bar has its own, same maths)",
    "test_deprecation_exception": "TqdmDeprecationWarning itself, no bar involved",
    # Deprecated arguments of tqdm 4.x.
    "test_deprecated_nested": "`nested=` was removed by tqdm; progress_bar raises TypeError for "
    "it, as for any unknown argument, not tqdm's TqdmDeprecationWarning",
    "test_deprecated_gui": "`gui=True` is tqdm's matplotlib mode, accepted and ignored",
    # Exact control characters of tqdm's redraws.
    "test_close": f"asserts no newline after a refresh ('\\n' not in res): {CR}",
    "test_position": f"asserts the cursor-up codes that stack tqdm's bars: {CR}",
    "test_clear": f"replays carriage returns to see a line erased: {CR}",
    "test_refresh": f"replays carriage returns to see a line redrawn in place: {CR}",
    "test_write": f"checks the bars are erased and redrawn below a message: {CR}",
    "test_write_stdout_stderr": f"asserts the exact '\\r' sequence around a message: {CR}",
    "test_postfix": f"slices the output by its leading '\\r' and trailing ']': {CR}",
    "test_bar_format": f"asserts a '\\r'-delimited line: {CR}",
    "test_ascii_bar": f"splits the output at '\\r' to find each redraw: {CR}",
    "test_unicode_bar": f"splits the output at '\\r' to find each redraw: {CR}",
    "test_eta": f"asserts a line that starts with '\\r': {CR}",
    "test_screen_shape": "tqdm's nrows: bars beyond the screen replaced by '... (more hidden)'; "
    "the live display lets Rich lay out the screen and a pipe has no screen",
    "test_colour": "asserts ANSI colour codes in a pipe; progress_bar writes none there (the "
    "colour is the Rich bar's in a terminal)",
}


def tqdm_sources() -> tuple[Path | None, str]:
    """tests_tqdm.py and conftest.py of the installed tqdm, fetched once; (folder, '') or
    (None, why they are missing)."""
    try:
        version = importlib.metadata.version("tqdm")
    except importlib.metadata.PackageNotFoundError:
        return None, "tqdm is not installed (pip install -e '.[dev]')"
    folder = CACHE / version
    if (folder / "tests_tqdm.py").exists() and (folder / "conftest.py").exists():
        return folder, ""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--no-binary", ":all:", f"tqdm=={version}", "--dest", tmp]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=180)
            (sdist,) = Path(tmp).glob("tqdm-*.tar.gz")
            with tarfile.open(sdist) as tar:
                for name in ("tests_tqdm.py", "conftest.py"):
                    member = tar.extractfile(f"tqdm-{version}/tests/{name}")
                    folder.mkdir(parents=True, exist_ok=True)
                    # whole or not at all: pytest -n 2 collects this module in two processes
                    part = folder / f"{name}.{os.getpid()}.part"
                    part.write_bytes(member.read())  # type: ignore[union-attr]
                    os.replace(part, folder / name)
        except (OSError, subprocess.SubprocessError, ValueError, KeyError, AttributeError) as exc:
            return None, f"could not fetch tqdm {version}'s sources from the registry: {exc}"
    return folder, ""


def load(path: Path, swaps: dict[str, str]) -> dict[str, Any]:
    """Run a file of tqdm's tests with its imports swapped; its namespace."""
    source = path.read_text()
    for old, new in swaps.items():
        assert old in source, f"{path.name} no longer says {old!r}: update the swap"
        source = source.replace(old, new)
    namespace: dict[str, Any] = {"__name__": f"tqdm_{path.stem}", "__file__": str(path)}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace


FOLDER, MISSING = tqdm_sources()
if FOLDER is None:

    def test_tqdm_test_suite_is_available():
        pytest.skip(MISSING)

else:
    _conftest = load(FOLDER / "conftest.py", {"from tqdm import tqdm": CONFTEST_IMPORT})
    for _name in FIXTURES:
        globals()[_name] = _conftest[_name]
    _tests = load(FOLDER / "tests_tqdm.py", {ORIGINAL_IMPORT: SWAPPED_IMPORT})
    for _name, _test in _tests.items():
        if _name.startswith("test_") and callable(_test):
            if _name in SKIPPED:
                _test = pytest.mark.skip(reason=SKIPPED[_name])(_test)
            globals()[_name] = _test
    RUN_FROM_TQDM = sorted(n for n in _tests if n.startswith("test_"))


def test_every_listed_skip_is_a_test_of_tqdms():
    if FOLDER is None:
        pytest.skip(MISSING)
    assert set(SKIPPED) <= set(RUN_FROM_TQDM)
