"""`tipi clean -p X` removes every folder of X's state that state/layout.py names (and only
X's), driven by the layout so that a folder added to it cannot be forgotten by clean."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tipi.config.variant import Variant
from tipi.engine import Engine
from tipi.state.layout import PER_PIPELINE, Layout

# What README.md's `tipi clean` row and state/layout.py document as a pipeline's own state,
# written out here (not read from the layout) so that the test fails where clean misses one.
DOCUMENTED = ("pipelines", "staging", "scratch", "predictions", "logs", "runs")


def fill(layout: Layout) -> list[Path]:
    """A file in each of the pipeline's folders, a sweep variant's among them, as makes,
    Predict, workers and sweeps leave them; returns the files."""
    variant = Layout(
        layout.root, layout.pipeline, Variant(layout.pipeline, "lr", "v1", frozenset({"sum"}))
    )
    files = [
        variant.plan_file,
        layout.staging_dir / "123-abc.slot0" / "out.txt",
        variant.variant_staging_dir(1) / "123-abc.slot0" / "out.txt",
        variant.scratch_of("sum") / "resume.pt",
        layout.scratch_dir / ".ranks-sum" / "task.json",
        layout.predictions_of("predict") / "key.msgpack",
        variant.predictions_of("sum") / "key.msgpack",
        layout.log_of("sum"),
        layout.runs_dir / "20260101-000000-aaaa.msgpack",
    ]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return files


@pytest.fixture
def two_pipelines(numbers_project):
    """`numbers`, made once, and `other`, never made; both with every folder filled."""
    root = numbers_project.root
    source = root / "pipelines" / "numbers"
    other = root / "pipelines" / "other"
    other.mkdir()
    for path in source.iterdir():
        if path.is_file():
            (other / path.name).write_bytes(path.read_bytes())
    Engine("numbers").make()
    fill(Layout(root, "numbers"))
    fill(Layout(root, "other"))
    return root


def test_clean_p_removes_every_documented_folder_of_the_pipeline_and_nothing_else(
    two_pipelines, cli
):
    root = two_pipelines
    cache = root / ".tipi_cache"
    layout = Layout(root, "numbers")
    shared = [layout.stat_file, layout.code_file, layout.suspects_file, layout.store_dir / "f"]
    for path in shared:  # the project's, whatever this make wrote of them
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    others = sorted(p for p in cache.rglob("*") if "other" in p.relative_to(cache).parts)

    result = cli("clean", "-p", "numbers")

    assert result.exit_code == 0, result.stderr
    for part in DOCUMENTED:
        assert not (cache / part / "numbers").exists(), part
        assert f"removed .tipi_cache/{part}/numbers" in result.stdout
    assert sorted(p for p in cache.rglob("*") if "other" in p.relative_to(cache).parts) == others
    assert all(p.exists() for p in shared)
    assert not [p for p in cache.rglob("*") if "numbers" in p.relative_to(cache).parts]


def test_keep_runs_keeps_only_the_runs(two_pipelines, cli):
    cache = two_pipelines / ".tipi_cache"
    result = cli("clean", "-p", "numbers", "--keep-runs")
    assert result.exit_code == 0, result.stderr
    kept = [p.relative_to(cache) for p in cache.rglob("*") if "numbers" in p.parts]
    assert kept and all(p.parts[0] == "runs" for p in kept)


def per_pipeline_paths(layout: Layout) -> dict[str, Path]:
    """Every path the layout gives (properties, and methods called with a step or an index)
    that lies in a folder named after the pipeline."""
    found: dict[str, Path] = {}
    for name, member in vars(Layout).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            value = getattr(layout, name)
        elif inspect.isfunction(member) and name != "per_pipeline_dirs":
            value = getattr(layout, name)(
                0 if "index" in inspect.signature(member).parameters else "s"
            )
        else:
            continue
        if isinstance(value, Path) and layout.pipeline in value.relative_to(layout.cache).parts:
            found[name] = value
    return found


@pytest.mark.parametrize("variant", [None, Variant("digits", "lr", "v1", frozenset({"s"}))])
def test_every_per_pipeline_path_of_the_layout_lies_in_a_folder_clean_removes(tmp_path, variant):
    """A folder added to Layout for one pipeline must be added to PER_PIPELINE too, or this
    fails: `tipi clean -p` removes exactly `per_pipeline_dirs()`."""
    layout = Layout(tmp_path, "digits", variant)
    removed = layout.per_pipeline_dirs()
    paths = per_pipeline_paths(layout)
    assert {"staging_dir", "scratch_of", "predictions_of", "log_of", "runs_dir"} <= paths.keys()
    for name, path in paths.items():
        assert any(path == folder or path.is_relative_to(folder) for folder in removed), name
    assert tuple(p.relative_to(layout.cache).parts[0] for p in removed) == PER_PIPELINE
    assert set(PER_PIPELINE) == set(DOCUMENTED)


def test_every_folder_a_make_gives_the_pipeline_is_one_clean_removes(numbers_project):
    """What a real make wrote (not what the layout says): each top-level folder of the
    cache with a folder named after the pipeline in it is in PER_PIPELINE."""
    Engine("numbers").make()
    cache = numbers_project.root / ".tipi_cache"
    tops = {p.name for p in cache.iterdir() if (p / "numbers").exists()}
    assert tops and tops <= set(PER_PIPELINE)
