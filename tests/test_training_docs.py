"""docs/training.md is real: every TOML block is Train (or Data) params that settle as a run
would settle them, and its demo pipeline, written out, makes."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from tests.training_helpers import one_thread  # noqa: F401 - one_thread is autouse
from tipi.config.params import check_params
from tipi.engine import Engine
from tipi.errors import Location
from tipi.permanences.data import Data
from tipi.processes.training import Train

DOC = Path(__file__).parent.parent / "docs/training.md"
BLOCKS = re.findall(r"```(toml|python)\n(.*?)```", DOC.read_text(), re.S)


def _train_tables(document: dict) -> list[tuple[str, dict]]:
    tables = []
    for name, table in document.get("processes", {}).items():
        if table.get("type", "Train") == "Train":
            tables.append((name, table))
    return tables


@pytest.mark.parametrize("text", [t for kind, t in BLOCKS if kind == "toml"])
def test_every_toml_block_settles(text):
    document = tomllib.loads(text)
    for name, table in _train_tables(document):
        first = {f"{{{k}}}": v[0] for k, v in table.get("matrix", {}).items()}  # one instance
        given = {
            k: first.get(v, v) if isinstance(v, str) else v
            for k, v in table.get("params", {}).items()
        }
        params = check_params(Train, given, lambda key: Location(key=key))
        step = Train(None, **params)
        outputs = {**Train.outputs, **table.get("outputs", {})}
        step.bind_paths({}, {k: Path(v) for k, v in outputs.items()}, None, name)  # settles
    for table in document.get("permanences", {}).values():
        if table["type"] == "Data":
            check_params(Data, table.get("params", {}), lambda key: Location(key=key))


@pytest.mark.slow
def test_the_demo_pipeline_makes(project):
    files = {}
    for _kind, text in BLOCKS:
        first = text.splitlines()[0]
        if first.startswith("# pipelines/demo/"):
            files[first.removeprefix("# ")] = text
    assert set(files) == {"pipelines/demo/hooks.py", "pipelines/demo/pipeline.toml"}
    for path, text in files.items():
        (project.root / path).parent.mkdir(parents=True, exist_ok=True)
        (project.root / path).write_text(text)
    Engine("demo").make()
    report = json.loads(project.read("out/demo/denoise/history.json"))
    assert report["monitor"] == "val_loss" and "train_psnr" in report["final"]
    assert (project.root / "out/demo/denoise/ema.pt").exists()
