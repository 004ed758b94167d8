"""Predict on a folder of PNG/JPEG files: read with Pillow, resized and normalized, batched,
with each file's prediction cached by its content and the step's fingerprint between makes.

The cache lives in `.tipi_cache/predictions/<pipeline>/<step>/<key>.msgpack` (beside the
step's scratch folder, see tipi/state/layout.py): one versioned msgpack file per key, the key the
step's whole fingerprint less the folder's contents (`PipelineProcess.cache_key("images")`:
its code and the model's, the weights, params, permanence configs, the environment);
inside, file content hash → [class index, confidence]. Only the current key's file is kept,
with the entries of the files the folder holds now. A forced run (-f, -F, force = true)
reads nothing from it. Never pickled; a damaged file is ignored and rewritten.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import xxhash

from tipi.atomic import atomic_write
from tipi.state.layout import predictions_beside

SUFFIXES = (".png", ".jpg", ".jpeg")


RESIZES = ("bilinear", "box")


@dataclass(frozen=True)
class Preprocess:
    """How a file becomes the model's input: resized to `size` (`resize`: "bilinear", or
    "box", the area average a downscaled scan is), (channels, height, width) floats, each
    pixel `(value / 255 - mean) / std` per channel, after `1 - value / 255` with `invert`."""

    size: tuple[int, int]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    invert: bool = False
    resize: str = "bilinear"

    def load(self, path: Path) -> Any:
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            converted = image.convert("L" if self.channels == 1 else "RGB")
            height, width = self.size
            method = Image.Resampling.BOX if self.resize == "box" else Image.Resampling.BILINEAR
            resized = converted.resize((width, height), method)
            pixels = np.asarray(resized, dtype=np.float32) / 255.0
        if self.invert:
            pixels = 1.0 - pixels
        pixels = pixels.reshape(height, width, self.channels).transpose(2, 0, 1)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)
        return (pixels - mean) / std


def resolve_preprocess(step: Any, recorded: Mapping[str, Any]) -> Preprocess:
    """Predict's preprocessing for files: each of `image_size`, `channels`, `mean` and `std`
    from the step's params, else from `recorded` (the checkpoint's `preprocessing`: how the
    training data was made), else the old defaults ([8, 8], [0], [1]). A param that
    contradicts the record would feed the model inputs unlike its training data: refused.
    (`channels` defaults to 1, which a record of 3 channels overrides.)

    Raises:
        ConfigError: a contradicted record, or a value out of range (at the step and key).
    """
    from tipi.errors import ConfigError, Location
    from tipi.processes.checks import param_error

    name = step.name

    def pick(key: str, given: Any, field: str, default: Any) -> Any:
        have = recorded.get(field)
        if given is None:
            return default if have is None else have
        if have is not None and _widened(given, step) != _widened(have, step):
            raise ConfigError(
                f"{given} is not what the model was trained on: its checkpoint records "
                f"{field} = {have} (the training data's preprocessing)",
                hint=f"leave {key} out: Predict then applies the recorded preprocessing "
                "(files of any size are resized to it)",
                location=Location(key=f"processes.{name}.params.{key}"),
            )
        return given

    given_size = step.image_size
    if given_size is not None and (len(given_size) != 2 or min(given_size) < 1):
        raise param_error(name, "image_size", "must be [height, width], both 1 or more")
    # channels' default (1) is a value, not "unset": a record of 3 channels wins over it
    given = None if step.channels == 1 and recorded.get("channels") == 3 else step.channels
    channels = int(pick("channels", given, "channels", 1))
    image_size = list(pick("image_size", step.image_size, "size", [8, 8]))
    mean = list(pick("mean", step.mean, "mean", [0.0]))
    std = list(pick("std", step.std, "std", [1.0]))
    if len(image_size) != 2 or min(image_size) < 1:
        raise param_error(name, "image_size", "must be [height, width], both 1 or more")
    for key, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise param_error(name, key, f"needs 1 or {channels} values (one per channel)")
    if min(std) <= 0 or step.batch_size < 1:
        key = "std" if min(std) <= 0 else "batch_size"
        raise param_error(name, key, "must be above 0")
    mean, std = (v * channels if len(v) == 1 else v for v in (mean, std))
    resize = recorded.get("resize", "bilinear")
    height, width = image_size
    return Preprocess(
        (height, width),
        channels,
        tuple(float(v) for v in mean),
        tuple(float(v) for v in std),
        step.invert,
        resize if resize in RESIZES else "bilinear",
    )


def _widened(value: Any, step: Any) -> Any:
    """A param or recorded value as compared: numbers as floats, one value per channel."""
    if not isinstance(value, list | tuple):
        return float(value)
    values = [float(v) for v in value]
    channels = step.channels or 1
    return values * channels if len(values) == 1 and channels > 1 else values


def image_files(folder: Path) -> list[Path]:
    """The PNG and JPEG files under `folder` (any depth), sorted by relative path."""
    found = [p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def content_key(path: Path) -> str:
    return xxhash.xxh3_128_hexdigest(path.read_bytes())


def cache_key(step_key: str, version: int) -> str:
    """The cache file's key: the step's (see the module's docstring) and the format's."""
    return xxhash.xxh3_128_hexdigest(f"predictions/{version}/{step_key}".encode())


class PredictionCache:
    """Predictions by file content for one key, in `folder` (None: no cache), in format
    `version` (Predict.folder_cache: files of another are ignored)."""

    def __init__(self, folder: Path | None, key: str, version: int, read: bool = True) -> None:
        self.folder, self.key, self.version = folder, key, version
        self.entries: dict[str, list[Any]] = {}
        if folder is not None and read:
            self.entries = _read(folder / f"{key}.msgpack", key, version)

    def save(self, keep: set[str]) -> None:
        """Write the entries of `keep` (the folder's current files); drop other keys."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        entries = {k: v for k, v in self.entries.items() if k in keep}
        payload = {"version": self.version, "key": self.key, "entries": entries}
        atomic_write(self.folder / f"{self.key}.msgpack", msgpack.packb(payload))
        for other in self.folder.glob("*.msgpack"):
            if other.stem != self.key:
                other.unlink(missing_ok=True)


def _read(path: Path, key: str, version: int) -> dict[str, list[Any]]:
    try:
        data = msgpack.unpackb(path.read_bytes())
    except (OSError, ValueError, msgpack.UnpackException):
        return {}
    if not isinstance(data, dict) or data.get("version") != version:
        return {}
    entries = data.get("entries")
    if data.get("key") != key or not isinstance(entries, dict):
        return {}
    return {k: v for k, v in entries.items() if isinstance(k, str) and _entry(v)}


def _entry(value: Any) -> bool:
    """[class index, confidence], as predict_files writes it (others are predicted again)."""
    if not isinstance(value, list) or len(value) != 2:
        return False
    index, confidence = value
    return (
        isinstance(index, int)
        and not isinstance(index, bool)
        and index >= 0
        and isinstance(confidence, float)
        and 0.0 <= confidence <= 1.0
    )


def cache_folder(scratch: Path | None) -> Path | None:
    """`.tipi_cache/predictions/<pipeline>/<step>/`, found from the step's scratch folder
    (state/layout.py); None outside the engine."""
    return None if scratch is None else predictions_beside(scratch)


def predict_files(
    model: Any,
    device: Any,
    files: Sequence[Path],
    keys: Mapping[Path, str],
    preprocess: Preprocess,
    cache: PredictionCache,
    batch_size: int,
) -> int:
    """Fill `cache.entries` for the files it lacks, `batch_size` at a time; returns how
    many files the model saw."""
    todo = list({keys[f]: f for f in files if keys[f] not in cache.entries}.values())
    for batch in _chunks(todo, batch_size):
        found = forward(model, device, batch, preprocess)
        for path, (index, confidence) in zip(batch, found, strict=True):
            cache.entries[keys[path]] = [index, confidence]
    return len(todo)


def forward(model: Any, device: Any, batch: Sequence[Path], preprocess: Preprocess) -> Any:
    """(class index, softmax confidence) of each file of one batch."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.stack([preprocess.load(p) for p in batch])).to(device)
    with torch.no_grad():
        probabilities = torch.softmax(model(x).float(), dim=1).cpu()
    confidence, index = probabilities.max(1)
    return [(int(i), round(float(c), 6)) for i, c in zip(index, confidence, strict=True)]


def write_csv(
    path: Path,
    folder: Path,
    files: Sequence[Path],
    keys: Mapping[Path, str],
    entries: Mapping[str, list[Any]],
    classes: Sequence[str] | None,
) -> None:
    """file (relative to the folder), class (its name when `classes` are given), confidence."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "class", "confidence"])
        for file in files:
            index, confidence = entries[keys[file]]
            label = classes[index] if classes and index < len(classes) else index
            writer.writerow([file.relative_to(folder).as_posix(), label, confidence])


def _chunks(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_folder(step: Any) -> str:
    """Predict's folder mode (`images` input): predictions.csv for every image, the model
    run only on files whose prediction is not cached. Returns a line saying what ran."""
    from tipi.permanences.factory import require
    from tipi.permanences.network import read_checkpoint

    require("PIL", "images", "Predict on a folder of images")
    folder = step.inputs["images"]
    weights, metadata = read_checkpoint(step.inputs["model"])
    preprocess = step.preprocess(metadata.get("preprocessing") or {})
    files = image_files(folder)
    keys = {f: content_key(f) for f in files}
    # Keyed by everything the step's result depends on but the images themselves, which
    # key each entry: the model's code (its factory and forward), weights, params, configs.
    step_key = step.cache_key("images")
    where = cache_folder(step.scratch_dir) if step_key is not None else None
    version = step.folder_cache
    cache = PredictionCache(where, cache_key(step_key or "", version), version, not step.force)
    fresh = len({keys[f] for f in files} - set(cache.entries))
    # Asked for even when every file is cached: a permanence the step uses joins the
    # fingerprint of its trace, and the cached predictions were made with this model.
    network = step.controller.get_permanence(step.model_name)
    device = step.controller.get_permanence(step.device_name).device
    if fresh:
        model = network.model
        model.load_state_dict(weights)
        model.eval()
        predict_files(model, device, files, keys, preprocess, cache, step.batch_size)
    cache.save(set(keys.values()))
    write_csv(step.outputs["predictions"], folder, files, keys, cache.entries, step.classes)
    batches = -(-fresh // step.batch_size)
    return (
        f"{step.name}: {len(files)} image(s) in {folder.name}/, {fresh} predicted in "
        f"{batches} batch(es), {len(files) - fresh} from the cache"
    )
