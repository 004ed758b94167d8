"""tipi.state (layout.py, stores.py): every path under `.tipi_cache/` in one place, and the stores of one make opened
on first use, written back only when asked, and closed once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tipi.state.layout
from tipi.config.variant import Variant
from tipi.state.layout import Layout, predictions_beside, ranks_beside, store_folders
from tipi.state.stores import State


def paths_of(layout: Layout) -> dict[str, Path]:
    names = [n for n, v in vars(Layout).items() if isinstance(v, property) and n not in ("cache",)]
    return {n: getattr(layout, n) for n in names}


def test_every_path_is_under_the_cache_and_in_the_documented_layout(tmp_path):
    layout = Layout(tmp_path, "digits")
    doc = tipi.state.layout.__doc__ or ""
    for name, path in paths_of(layout).items():
        inside = path.relative_to(layout.cache)  # raises when outside
        shown = str(inside).replace("digits", "<p>")
        assert shown.split("/")[0] in doc, f"{name}: {shown} is not in state/layout.py"
        assert Path(shown).name.split(".")[0] in doc or shown.endswith("<p>"), name
    assert layout.log_of("train") == layout.cache / "logs/digits/train.log"


@pytest.mark.parametrize("variant", [None, Variant("digits", "lr", "v1", frozenset({"train"}))])
def test_every_path_the_layout_builds_is_written_out_in_its_tree(tmp_path, variant):
    """Properties, methods (for step `train`, variant index 0) and the functions of a cache
    folder: each path, in the tree's notation, is a line's path in layout.py's docstring."""
    layout = Layout(tmp_path, "digits", variant)
    doc = tipi.state.layout.__doc__ or ""
    paths = dict(paths_of(layout))
    paths |= {n: getattr(layout, n)("train") for n in ("log_of", "scratch_of", "predictions_of")}
    paths["variant_staging_dir"] = layout.variant_staging_dir(0)
    paths |= {f"store_folders[{i}]": p for i, p in enumerate(store_folders(layout.cache))}
    paths["ranks_beside"] = ranks_beside(layout.scratch_of("train"))
    names = {
        "digits": "<p>",
        "train@lr~v1": "<step>",
        "train": "<step>",
        "variant-0": "variant-<i>",
    }
    names |= {"lr": "<s>", "v1": "<v>"}
    for name, path in paths.items():
        parts = [names.get(part, part) for part in path.relative_to(layout.cache).parts]
        parts[-1] = parts[-1].replace("train@lr~v1", "train").replace("train", "<step>")
        assert "/".join(parts) in doc, f"{name}: {'/'.join(parts)} is not in state/layout.py"
    assert predictions_beside(layout.scratch_of("train")) == layout.predictions_of("train")
    assert predictions_beside(tmp_path / "elsewhere" / "p" / "train") is None


def test_a_state_opens_and_writes_nothing_until_used(tmp_path):
    state = State(Layout(tmp_path, "p"), warn=print, notice=print)
    state.close(write=True)
    state.release()
    assert list(tmp_path.iterdir()) == []


def test_what_a_make_learnt_is_written_only_when_asked(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    os.utime(tmp_path / "data.txt", (time.time() - 60,) * 2)  # not racy: its hash is kept
    layout = Layout(tmp_path, "p")
    dry = State(layout, warn=print, notice=print)
    assert dry.stat.hash_path(str(tmp_path / "data.txt"))
    dry.close(write=False)  # a dry run
    assert not layout.stat_file.exists()
    real = State(layout, warn=print, notice=print)
    digest = real.stat.hash_path(str(tmp_path / "data.txt"))
    real.close(write=True)
    assert layout.stat_file.exists()
    again = State(layout, warn=print, notice=print)
    assert again.stat.hash_path(str(tmp_path / "data.txt")) == digest


def held_elsewhere(cache: Path) -> bool:
    code = (
        "import sys; from pathlib import Path; from tipi.state.lock import ProjectLock;"
        "lock = ProjectLock(Path(sys.argv[1])); lock.acquire(wait=False); print(lock.held)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(cache)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip() == "False"


@pytest.mark.slow
def test_the_lock_is_held_from_lock_to_release(tmp_path):
    layout = Layout(tmp_path, "p")
    state = State(layout, warn=print, notice=print)
    assert not state.lock_held
    assert state.try_lock()
    assert state.lock_held
    assert held_elsewhere(layout.cache)
    state.close()
    assert held_elsewhere(layout.cache)  # closing the stores is not releasing the lock
    state.release()
    assert not held_elsewhere(layout.cache)
