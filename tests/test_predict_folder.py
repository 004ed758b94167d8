"""Predict on a folder of PNG/JPEG files: Pillow, resize and normalize, batched, CSV of file,
class and confidence; unchanged files' predictions cached between makes by content and model."""

from __future__ import annotations

import csv
import shutil

import msgpack
import numpy as np
import pytest
from analysis_helpers import digits_tensors, train_weights
from PIL import Image

import tipi.processes.predict_files as predict_files
from tipi.engine import Engine
from tipi.processes.predict_files import Preprocess

PIPELINE = """
[permanences.device]
type = "Device"
[permanences.net]
type = "Network"
params = { model = "mlp" }

[processes.predict]
type = "Predict"
inputs = { model = "out/train/model.pt", images = "images" }
params = { batch_size = 4, PARAMS }
"""


def write_image(path, index, suffix=".png"):
    images, labels = digits_tensors()
    pixels = (images[index, 0].numpy() * 255).round().astype(np.uint8)
    # 16x16 on disk: Predict resizes to the model's 8x8.
    Image.fromarray(pixels).resize((16, 16), Image.Resampling.NEAREST).save(path)
    return int(labels[index])


@pytest.fixture
def folder_project(project, monkeypatch):
    train_weights(project.root / "out/train/model.pt", steps=80)
    (project.root / "images/more").mkdir(parents=True)
    labels = {
        f"d{i:02d}.png": write_image(project.root / f"images/d{i:02d}.png", i) for i in range(11)
    }
    labels["more/d11.jpg"] = write_image(project.root / "images/more/d11.jpg", 11)
    (project.root / "images/notes.txt").write_text("not an image")
    project.pipeline(
        "x", PIPELINE.replace("PARAMS", "image_size = [8, 8], mean = [0.0], std = [1.0]")
    )
    seen = []
    real = predict_files.forward

    def counting(model, device, batch, preprocess):
        seen.append([p.name for p in batch])
        return real(model, device, batch, preprocess)

    monkeypatch.setattr(predict_files, "forward", counting)
    return project, labels, seen


def rows(project):
    with (project.root / "out/x/predict/predictions.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_a_folder_is_predicted_in_batches_and_a_new_file_runs_only_its_batch(folder_project):
    project, labels, seen = folder_project
    Engine("x").make()
    first = rows(project)
    assert [r["file"] for r in first] == [
        *sorted(n for n in labels if "/" not in n),
        "more/d11.jpg",
    ]
    assert [len(b) for b in seen] == [4, 4, 4]  # 12 images, batches of 4
    right = sum(int(r["class"]) == labels[r["file"]] for r in first)
    assert right >= 9
    assert all(0 < float(r["confidence"]) <= 1 for r in first)
    cache = list((project.root / ".tipi_cache/predictions/x/predict").glob("*.msgpack"))
    assert len(cache) == 1
    stored = msgpack.unpackb(cache[0].read_bytes())
    assert stored["version"] == 2 and len(stored["entries"]) == 12

    seen.clear()
    assert {r.outcome for r in Engine("x").make().results} == {"skipped"}
    assert seen == []

    write_image(project.root / "images/d99.png", 99)
    ran = Engine("x").make()
    assert [r.outcome for r in ran.results] == ["ran"]
    assert seen == [["d99.png"]]  # only the new file's batch
    second = rows(project)
    assert len(second) == 13
    assert [r for r in second if r["file"] != "d99.png"] == first  # cached rows unchanged

    # Other weights: every file is predicted again (the cache is keyed by the model too).
    seen.clear()
    train_weights(project.root / "out/train/model.pt", steps=10, seed=1)
    Engine("x").make()
    assert sum(map(len, seen)) == 13
    assert len(list(cache[0].parent.glob("*.msgpack"))) == 1  # the old key's file is gone


def test_classes_name_the_indices_and_a_damaged_cache_is_rebuilt(folder_project):
    project, _, seen = folder_project
    names = [f"digit-{i}" for i in range(10)]
    project.pipeline("x", PIPELINE.replace("PARAMS", f"classes = {names!r}".replace("'", '"')))
    Engine("x").make()
    assert all(r["class"].startswith("digit-") for r in rows(project))
    (cache,) = (project.root / ".tipi_cache/predictions/x/predict").glob("*.msgpack")
    cache.write_bytes(b"\x00garbage")
    Engine("x", overrides=["predict.batch_size=6"]).make()
    assert [len(b) for b in seen[-2:]] == [6, 6]  # nothing trusted from the damaged file


def test_preprocess_resizes_inverts_and_normalizes(tmp_path):
    Image.fromarray(np.full((4, 6, 3), 255, dtype=np.uint8)).save(tmp_path / "white.png")
    rgb = Preprocess((2, 3), 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).load(tmp_path / "white.png")
    assert rgb.shape == (3, 2, 3)
    assert np.allclose(rgb, 2.0)  # (1 - 0.5) / 0.25
    gray = Preprocess((8, 8), 1, (0.0,), (1.0,), invert=True).load(tmp_path / "white.png")
    assert gray.shape == (1, 8, 8) and np.allclose(gray, 0.0)


def test_bad_image_params_are_one_line_with_step_and_key(folder_project, cli):
    project, _, _ = folder_project
    project.pipeline("x", PIPELINE.replace("PARAMS", "image_size = [8]"))
    result = cli("make", "-p", "x")
    assert result.exit_code == 2
    assert "processes.predict.params.image_size: must be [height, width]" in result.stderr
    project.pipeline("x", PIPELINE.replace("PARAMS", "channels = 2"))
    result = cli("make", "-p", "x")
    assert result.exit_code == 2
    assert "processes.predict.params.channels: expected 1 | 3, found 2" in result.stderr


FACTORY = """
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def make():
    return Net()
"""

FACTORY_PIPELINE = """
[permanences.device]
type = "Device"
params = { device = "cpu" }
[permanences.net]
type = "Network"
params = { model = "mymodel:make" }

[processes.predict]
type = "Predict"
inputs = { model = "weights/pretrained.pt", images = "images" }
params = { batch_size = 4 }
"""


@pytest.fixture
def factory_project(project):
    """Pretrained weights given as an input, the model from a factory module beside the
    pipeline, six images."""
    import torch

    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 10)
    (project.root / "weights").mkdir()
    weights = {f"fc.{k}": v for k, v in layer.state_dict().items()}
    torch.save(weights, project.root / "weights/pretrained.pt")
    (project.root / "images").mkdir()
    for i in range(6):
        write_image(project.root / f"images/d{i}.png", i)
    folder = project.pipeline("x", FACTORY_PIPELINE, mymodel=FACTORY)
    return project, folder / "mymodel.py"


def edit_forward(module, new_return):
    text = module.read_text()
    old = next(line for line in text.splitlines() if line.strip().startswith("return self.fc"))
    module.write_text(text.replace(old, f"        return {new_return}"))


def test_an_edit_of_the_models_forward_predicts_every_file_again(factory_project):
    """The per-file cache is keyed by the step's whole fingerprint (the model's code too),
    not by the weights and configs alone: weights unchanged, the model's forward edited,
    every file is predicted by the new code and the CSV is the new one."""
    project, module = factory_project
    Engine("x").make()
    first = rows(project)
    edit_forward(module, "-self.fc(x.flatten(1))")  # another model, the same weights
    result = Engine("x").make()
    (step,) = result.results
    assert step.outcome == "ran"
    assert any("Net.forward" in r for r in step.reasons)
    second = rows(project)
    assert [r["class"] for r in second] != [r["class"] for r in first]
    # What a clean build with the new code writes, byte for byte.
    clean = (project.root / "out/x/predict/predictions.csv").read_bytes()
    for path in (project.root / ".tipi_cache").iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    (project.root / "out/x/predict/predictions.csv").unlink()
    Engine("x").make()
    assert (project.root / "out/x/predict/predictions.csv").read_bytes() == clean


def test_a_run_served_from_the_cache_still_depends_on_the_model(factory_project, monkeypatch):
    """Every file served from the cache (the CSV deleted): the run still records the
    model's config, so a later edit of its forward reruns the step; -F reads no cache."""
    project, module = factory_project
    Engine("x").make()
    seen = []
    real = predict_files.forward

    def counting(model, device, batch, preprocess):
        seen.append(len(batch))
        return real(model, device, batch, preprocess)

    monkeypatch.setattr(predict_files, "forward", counting)
    (project.root / "out/x/predict/predictions.csv").unlink()
    Engine("x").make(run_cache=False)
    assert seen == []  # all six from the cache
    edit_forward(module, "-self.fc(x.flatten(1))")
    (step,) = Engine("x").make().results
    assert step.outcome == "ran" and sum(seen) == 6
    seen.clear()
    (step,) = Engine("x").make(force_all=True).results
    assert step.outcome == "ran" and sum(seen) == 6  # forced: nothing read from the cache


def test_cached_entries_that_predict_files_never_writes_are_predicted_again(folder_project):
    """A crafted cache file under the right key: a negative index (that would name the last
    class), a confidence that is not one, a boolean: each such file is predicted again."""
    project, _, seen = folder_project
    Engine("x").make()
    first = rows(project)
    (cache,) = (project.root / ".tipi_cache/predictions/x/predict").glob("*.msgpack")
    stored = msgpack.unpackb(cache.read_bytes())
    keys = sorted(stored["entries"])
    for key, bad in zip(keys, ([-1, 0.5], [3, "0.9"], [True, 0.5], [2, 7.0]), strict=False):
        stored["entries"][key] = bad
    cache.write_bytes(msgpack.packb(stored))
    (project.root / "out/x/predict/predictions.csv").unlink()
    seen.clear()
    Engine("x").make(run_cache=False)
    assert sum(map(len, seen)) == 4
    assert rows(project) == first


def test_a_dangling_link_in_the_images_folder_is_no_internal_error(factory_project):
    """A link to nothing among the images: the folder's hash names it (so pointing it at an
    image reruns the step), Predict skips it, and nothing crashes."""
    project, _ = factory_project
    (project.root / "images/broken.png").symlink_to("nowhere.png")
    (step,) = Engine("x").make().results
    assert step.outcome == "ran"
    assert "broken.png" not in {r["file"] for r in rows(project)}
    write_image(project.root / "images/nowhere.png", 7)
    (step,) = Engine("x").make().results
    assert step.outcome == "ran"
    assert {"broken.png", "nowhere.png"} <= {r["file"] for r in rows(project)}
