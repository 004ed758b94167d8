"""Export's parity checks: relative to the outputs' scale with top-1 agreement (fp16 passes on
large logits, a corrupted artifact fails with its two numbers), and TorchScript bytes that do
not depend on who made them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from analysis_helpers import EXPORT_PIPELINE, train_weights, write_digits_splits

from tipi.engine import Engine
from tipi.errors import ProcessFailure
from tipi.permanences.zoo import mlp
from tipi.processes.data import load_splits, make_loader
from tipi.processes.export import Export, onnx_parity, torchscript_bytes
from tipi.processes.onnx_tools import Parity, compare_outputs

TWO_NUMBERS = re.compile(
    r"differs from the eager model at sample (\d+), output (\d+): "
    r"eager (-?[\d.e+-]+|nan|inf), exported (-?[\d.e+-]+|nan|inf|-inf) \("
)
SCALE = 400.0  # the last layer's weights times this: logits in the thousands


def large_logit_project(root: Path) -> Path:
    """A project whose Export (dynamic int8 too) exports digits weights of the zoo's MLP
    whose last layer is scaled by SCALE: the argmax is the trained one, the logits huge."""
    import torch

    (root / "pipelines/x").mkdir(parents=True)
    (root / "pipelines/x/pipeline.toml").write_text(EXPORT_PIPELINE)
    write_digits_splits(root / "data/splits.pt")
    weights = root / "out/train/model.pt"
    train_weights(weights, steps=80)
    state = torch.load(weights, weights_only=True)
    state["3.weight"] *= SCALE
    state["3.bias"] *= SCALE
    torch.save(state, weights)
    return root


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """The large-logit project, made once (the exporter takes seconds)."""
    root = large_logit_project(tmp_path_factory.mktemp("large"))
    summary = Engine("x", root=root).make()
    return root, summary


def eager_model(root: Path):
    import torch

    model = mlp().eval()
    model.load_state_dict(torch.load(root / "out/train/model.pt", weights_only=True))
    return model


def export_over(root: Path, folder: Path) -> Export:
    """An Export of the large-logit project's settings whose outputs are the files in
    `folder`, to check artifacts written (or spoiled) outside the step."""
    export = Export(None, quantize="dynamic", graph_optimization_level="extended")
    export.name = "export"
    export.inputs = {"model": root / "out/train/model.pt", "data": root / "data/splits.pt"}
    names = {
        "onnx": "model.onnx",
        "onnx_fp16": "model.fp16.onnx",
        "onnx_int8": "model.int8.onnx",
        "torchscript": "model.ts",
    }
    export.outputs = {name: folder / file for name, file in names.items()}
    return export


def check(export: Export, root: Path) -> dict:
    """Export's parity checks of its outputs against the eager model on val, as in execute."""
    splits = load_splits(root / "data/splits.pt")
    batches = list(make_loader(splits["val"], 64, shuffle=False))
    report, parities = export._report(eager_model(root), export._samples(batches))
    for name, parity in parities.items():
        export._check_parity(name, parity, report["parity_on"])
    return report


def spoil(path: Path, initializer: str, change) -> None:
    """Rewrite the ONNX initializer whose name contains `initializer` with `change(array)`."""
    import onnx  # here, not at collection: onnx takes a second or two to import
    from onnx import numpy_helper

    model = onnx.load(str(path))
    found = [t for t in model.graph.initializer if initializer in t.name]
    assert found, [t.name for t in model.graph.initializer]
    array = numpy_helper.to_array(found[0])
    found[0].CopyFrom(numpy_helper.from_array(change(array.copy()), found[0].name))
    onnx.save(model, str(path))


# -- the comparison itself -------------------------------------------------------------------


def test_the_error_is_relative_to_the_largest_eager_output_and_locates_the_worst():
    eager = np.array([[1000.0, -2.0, 3.0], [5.0, 400.0, -7.0]])
    exported = eager.copy()
    exported[1, 2] += 0.5
    parity = compare_outputs(eager, exported)
    assert parity.relative_error == pytest.approx(0.5 / 1000)
    assert parity.agreement == 1.0 and parity.samples == 2 and parity.scale == 1000.0
    assert parity.where() == "sample 1, output 2: eager -7, exported -6.5"


def test_a_nan_or_a_changed_shape_is_never_within_tolerance():
    eager = np.ones((3, 4))
    exported = eager.copy()
    exported[2, 1] = np.nan
    parity = compare_outputs(eager, exported)
    assert parity.relative_error == np.inf
    assert parity.index == (2, 1)
    with pytest.raises(ValueError, match=r"output shape \(3, 5\) differs from the eager \(3, 4\)"):
        compare_outputs(eager, np.ones((3, 5)))
    assert compare_outputs(np.zeros((2, 1)), np.zeros((2, 1))).agreement is None


def test_flipped_classes_fail_below_min_agreement_even_within_the_tolerance():
    export = Export(None, int8_tolerance=0.5, min_agreement=0.9)
    export.name = "export"
    eager = np.array([[1.0, 0.9]] * 8 + [[0.0, 1.0]] * 2)
    exported = eager.copy()
    exported[:4] = [0.9, 1.0]  # 4 samples of 10 flip, each by a tenth of the scale
    parity = compare_outputs(eager, exported)
    assert parity.relative_error == pytest.approx(0.1)
    assert parity.agreement == pytest.approx(0.6)
    with pytest.raises(ProcessFailure) as info:
        export._check_parity("onnx_int8", parity, "val (10 samples)")
    message = str(info.value)
    assert (
        "int8 ONNX differs from the eager model at sample 0, output 0: eager 1, exported 0.9"
        in (message)
    )
    assert "top-1 agreement 60.0% < min_agreement 0.9" in message
    assert "on val (10 samples)" in message
    export._check_parity("onnx_int8", Parity(0.1, 0.9, 10, 1.0, (0, 0), 1.0, 0.9), "val")


def test_tolerances_and_min_agreement_are_checked_before_anything_is_exported():
    for params, key in (
        ({"fp16_tolerance": 0.0}, "fp16_tolerance"),
        ({"int8_tolerance": float("nan")}, "int8_tolerance"),
        ({"tolerance": -1e-4}, "tolerance"),
        ({"min_agreement": 1.5}, "min_agreement"),
    ):
        export = Export(None, **params)
        export.name, export.inputs, export.outputs = "export", {}, {}
        with pytest.raises(Exception, match=key):
            export._check_params()


# -- the step on large logits ----------------------------------------------------------------


@pytest.mark.slow
def test_fp16_of_large_logits_passes_where_the_old_absolute_check_failed(large):
    import torch

    root, summary = large
    assert [r.outcome for r in summary.results] == ["ran"]
    folder = root / "out/x/export"
    report = json.loads((folder / "export.json").read_text())
    assert report["parity_on"] == "val (269 samples)"
    fp16 = report["artifacts"]["onnx_fp16"]
    assert fp16["relative_error"] < 2e-3 and fp16["top1_agreement"] == 1.0
    assert report["artifacts"]["onnx_int8"]["relative_error"] < 0.1
    assert report["artifacts"]["torchscript"]["relative_error"] < 1e-6
    # The check Export used to make: the absolute difference on a seeded random batch,
    # against 1e-2. These logits are in the thousands, so fp16's rounding alone exceeds it.
    example = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert onnx_parity(eager_model(root), folder / "model.fp16.onnx", example) > 1e-2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("artifact", "file", "initializer"),
    [
        ("fp16 ONNX", "model.fp16.onnx", "3.weight"),
        ("ONNX", "model.onnx", "3.bias"),
        ("int8 ONNX", "model.int8.onnx", "scale"),
    ],
)
def test_a_corrupted_artifact_still_fails_with_its_two_numbers(
    large, tmp_path, artifact, file, initializer
):
    root, _ = large
    shutil.copytree(root / "out/x/export", tmp_path, dirs_exist_ok=True)
    export = export_over(root, tmp_path)
    check(export, root)  # as written: passes
    spoil(tmp_path / file, initializer, lambda a: a * 1.5)
    with pytest.raises(ProcessFailure) as info:
        check(export, root)
    message = str(info.value)
    assert message.startswith(f"step 'export' failed: ValueError: {artifact} differs")
    found = TWO_NUMBERS.search(message)
    assert found, message
    assert float(found[3]) != float(found[4])
    assert "relative error" in message and "on val (269 samples)" in message
    assert "raise" in info.value.hint


# -- TorchScript's bytes ---------------------------------------------------------------------


@pytest.mark.slow
def test_torchscript_bytes_do_not_depend_on_the_callers_stack_or_process(tmp_path):
    """torch writes the Python call stack of the trace into the archive (a worker's differs
    from an in-process make's): the bytes must not."""
    import torch

    torch.manual_seed(0)
    model = mlp().eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    example = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    def deeper(depth: int) -> bytes:
        return torchscript_bytes(model, example) if depth == 0 else deeper(depth - 1)

    here = torchscript_bytes(model, example)
    assert deeper(5) == here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(mlp().eval(), example)  # torch's own counter moves on: ours must not
    assert torchscript_bytes(model, example) == here
    script = (
        "import sys, torch\n"
        "from tipi.permanences.zoo import mlp\n"
        "from tipi.processes.export import torchscript_bytes\n"
        "m = mlp().eval()\n"
        f"m.load_state_dict(torch.load({str(tmp_path / 'w.pt')!r}, weights_only=True))\n"
        "x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))\n"
        "sys.stdout.buffer.write(torchscript_bytes(m, x))\n"
    )
    elsewhere = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=True, cwd=tmp_path
    ).stdout
    assert elsewhere == here
    path = tmp_path / "model.ts"
    path.write_bytes(here)
    assert not [n for n in zipfile.ZipFile(path).namelist() if n.endswith(".debug_pkl")]
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        assert torch.equal(loaded(example), model(example))


@pytest.mark.slow
def test_export_writes_the_same_bytes_in_a_worker_and_in_process(tmp_path):
    """`make -j 2` runs Export in a worker process, a plain make in the engine's: two copies
    of one project must get byte-identical artifacts and export.json."""
    roots = []
    for name, jobs in (("sequential", None), ("worker", 2)):
        root = tmp_path / name
        (root / "pipelines/x").mkdir(parents=True)
        (root / "pipelines/x/pipeline.toml").write_text(EXPORT_PIPELINE)
        write_digits_splits(root / "data/splits.pt")
        train_weights(root / "out/train/model.pt", steps=40)
        summary = Engine("x", root=root).make(jobs=jobs)
        assert [r.outcome for r in summary.results] == ["ran"]
        roots.append(root)
    files = sorted(p.name for p in (roots[0] / "out/x/export").iterdir())
    assert files == ["export.json", "model.fp16.onnx", "model.int8.onnx", "model.onnx", "model.ts"]
    for file in files:
        first, second = (root / "out/x/export" / file for root in roots)
        assert first.read_bytes() == second.read_bytes(), file


LOCAL_MODEL = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.body(x) * 2.0


def net():
    return Net()
"""

LOCAL_PIPELINE = """
[permanences.device]
type = "Device"

[permanences.net]
type = "Network"
params = { model = "mymodel:net" }

[processes.export]
type = "Export"
inputs = { model = "w.pt" }
"""


@pytest.mark.slow
def test_a_model_of_the_pipeline_folder_exports_the_same_bytes_from_two_checkouts(tmp_path):
    """Two copies of a project at two paths, made one after the other in this process: the
    ONNX files held each op's Python stack (absolute paths) and the module path of its class,
    TorchScript the class names, with the digest of the folder's path that tipi imports the
    model under, and a counter of the process's earlier traces."""
    import torch

    torch.manual_seed(0)
    weights = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    ).state_dict()
    made = []
    for name in ("one", "two"):
        root = tmp_path / name / "checkout"
        (root / "pipelines/x").mkdir(parents=True)
        (root / "pipelines/x/pipeline.toml").write_text(LOCAL_PIPELINE)
        (root / "pipelines/x/mymodel.py").write_text(LOCAL_MODEL)
        torch.save({f"body.{k}": v for k, v in weights.items()}, root / "w.pt")
        summary = Engine("x", root=root).make()
        assert [r.outcome for r in summary.results] == ["ran"]
        made.append(root / "out/x/export")
    for file in ("model.onnx", "model.fp16.onnx", "model.ts", "export.json"):
        first, second = (folder / file for folder in made)
        assert first.read_bytes() == second.read_bytes(), file
        assert str(tmp_path).encode() not in first.read_bytes(), file
    names = zipfile.ZipFile(made[0] / "model.ts").namelist()
    assert "archive/code/__torch__/_tipi_pipelines/x/mymodel.py" in names
    local = [m for m in sys.modules.values() if getattr(m, "__name__", "").endswith(".mymodel")]
    assert local and not any("_jit_override_qualname" in vars(m.Net) for m in local)
    assert not hasattr(torch.nn.Linear, "_jit_override_qualname")
