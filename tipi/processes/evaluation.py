"""Evaluate and Predict: metrics (torchmetrics) and batch inference for a trained model."""

from __future__ import annotations

import csv
import json
from typing import Any, ClassVar, Literal

from tipi.permanences.network import read_weights
from tipi.process import PipelineProcess
from tipi.processes.checks import param_error
from tipi.processes.data import load_splits, make_loader
from tipi.report.live import console


def _predict(
    controller: Any, model_name: str, device_name: str, weights: Any, dataset: Any
) -> tuple[Any, Any]:
    import torch

    network = controller.get_permanence(model_name)
    device = controller.get_permanence(device_name).device
    model = network.model
    model.load_state_dict(read_weights(weights))  # Train's checkpoints and bare state dicts
    model.eval()
    predictions, labels = [], []
    with torch.no_grad():
        for x, y in make_loader(dataset, 256, shuffle=False):
            predictions.append(model(x.to(device)).argmax(1).cpu())
            labels.append(y)
    return torch.cat(predictions), torch.cat(labels)


class Evaluate(PipelineProcess):
    """Accuracy, macro precision/recall/F1 and the confusion matrix on one data part.

    Inputs: `model` (weights), `data` (splits). Output: `metrics` (JSON). The confusion
    matrix is also logged as a figure to the `loggers` permanence when one is named.
    """

    outputs = {"metrics": "out/{pipeline}/{name}/metrics.json"}
    metrics_outputs = ("metrics",)  # runs record accuracy, precision, recall, F1

    def __init__(
        self,
        controller: Any,
        force: bool = False,
        model: str = "net",
        device: str = "device",
        loggers: str = "",
        part: str = "test",
        num_classes: int = 10,
    ) -> None:
        super().__init__(controller, force)
        self.model_name, self.device_name, self.loggers_name = model, device, loggers
        self.part, self.num_classes = part, num_classes

    def execute(self) -> None:
        from torchmetrics.classification import (
            MulticlassAccuracy,
            MulticlassConfusionMatrix,
            MulticlassF1Score,
            MulticlassPrecision,
            MulticlassRecall,
        )

        dataset = load_splits(self.inputs["data"])[self.part]
        predicted, labels = _predict(
            self.controller, self.model_name, self.device_name, self.inputs["model"], dataset
        )
        k = self.num_classes
        metrics = {
            "accuracy": MulticlassAccuracy(k, average="micro")(predicted, labels).item(),
            "precision_macro": MulticlassPrecision(k, average="macro")(predicted, labels).item(),
            "recall_macro": MulticlassRecall(k, average="macro")(predicted, labels).item(),
            "f1_macro": MulticlassF1Score(k, average="macro")(predicted, labels).item(),
        }
        confusion = MulticlassConfusionMatrix(k)(predicted, labels)
        report = {
            **metrics,
            "samples": len(labels),
            "part": self.part,
            "confusion_matrix": confusion.tolist(),
        }
        self.outputs["metrics"].write_text(json.dumps(report, indent=2))
        console().print(
            f"{self.name}: {self.part} accuracy {metrics['accuracy']:.1%}, macro F1 "
            f"{metrics['f1_macro']:.3f} on {len(labels)} samples",
            highlight=False,
        )
        if self.loggers_name:
            loggers = self.controller.get_permanence(self.loggers_name)
            loggers.log_metrics({f"{self.part}_{k}": v for k, v in metrics.items()})
            loggers.log_figure("confusion_matrix", _confusion_figure(confusion))


def _confusion_figure(confusion: Any) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    axes.imshow(confusion.numpy(), cmap="Blues")
    classes = len(confusion)
    if classes <= 20:  # matplotlib's own ticks name every other class of ten
        axes.set_xticks(range(classes))
        axes.set_yticks(range(classes))
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (i, j), value in __import__("numpy").ndenumerate(confusion.numpy()):
        axes.text(j, i, str(value), ha="center", va="center", fontsize=7)
    return figure


class Predict(PipelineProcess):
    """Batch inference over one data part, written as CSV (index, prediction, label); or,
    with an `images` input (a folder), over its PNG/JPEG files (CSV: file, class, confidence).

    Each file is read with Pillow as `channels` (1: grayscale, 3: RGB), resized to
    `image_size` (height, width), scaled to [0, 1] (inverted with `invert`) and normalized
    by `mean` and `std` per channel, then predicted `batch_size` files at a time; `classes`
    names the class indices. A file's prediction is cached by its content and the step's
    fingerprint, code included (tipi/processes/predict_files.py): a make after adding a file
    runs only that file; a forced run reads no cache.
    """

    outputs = {"predictions": "out/{pipeline}/{name}/predictions.csv"}
    # The format of the folder mode's per-file cache (predict_files.py). Being in the class's
    # code, a new format also retires what runs of an older one recorded: format 1 kept runs
    # that served every file from the cache as not using the model, so the run cache (and a
    # remote) could restore the predictions of an older model's code.
    folder_cache: ClassVar[int] = 2

    def __init__(
        self,
        controller: Any,
        force: bool = False,
        model: str = "net",
        device: str = "device",
        part: str = "test",
        image_size: list[int] | None = None,
        channels: Literal[1, 3] = 1,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        invert: bool = False,
        batch_size: int = 64,
        classes: list[str] | None = None,
    ) -> None:
        super().__init__(controller, force)
        self.model_name, self.device_name, self.part = model, device, part
        # None: as the checkpoint's metadata records the training data (predict_files.py)
        self.image_size, self.channels, self.invert = image_size, channels, invert
        self.mean, self.std = mean, std
        self.batch_size, self.classes = batch_size, classes

    def preprocess(self, recorded: dict[str, Any] | None = None) -> Any:
        """The checked image preprocessing (folder mode): the params, else what `recorded`
        (the checkpoint's `preprocessing`) says; a param that contradicts it is an error."""
        from tipi.processes.predict_files import resolve_preprocess

        return resolve_preprocess(self, recorded or {})

    def execute(self) -> None:
        if "images" in self.inputs:
            from tipi.processes.predict_files import run_folder

            console().print(run_folder(self), highlight=False)
            return
        if "data" not in self.inputs:
            message = "Predict reads inputs.data (splits) or inputs.images (a folder of images)"
            raise param_error(self.name, "inputs", message, section="inputs")
        dataset = load_splits(self.inputs["data"])[self.part]
        predicted, labels = _predict(
            self.controller, self.model_name, self.device_name, self.inputs["model"], dataset
        )
        with self.outputs["predictions"].open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "prediction", "label"])
            writer.writerows(
                zip(range(len(labels)), predicted.tolist(), labels.tolist(), strict=True)
            )
