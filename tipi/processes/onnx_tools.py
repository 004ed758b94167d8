"""ONNX Runtime for Export and Profile: sessions at a graph optimization level, int8
quantization (dynamic, or static calibrated on training batches), and each artifact's accuracy
and parity with the eager model."""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

OptLevel = Literal["disable", "basic", "extended", "all"]
OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def ort_session(path: Path, level: str = "all", threads: int = 0) -> Any:
    """An onnxruntime CPU session of `path` at graph optimization `level` (disable, basic,
    extended, all) with `threads` intra-op threads (0: onnxruntime's default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = getattr(
        onnxruntime.GraphOptimizationLevel, OPT_LEVELS[level]
    )
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: the graph warnings concern no user
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def quantize_onnx(
    source: Path, target: Path, mode: str, calibration: Iterable[Any] | None = None
) -> None:
    """Write `source` quantized to int8 at `target` with ONNX Runtime's tools.

    `dynamic`: int8 weights, activations quantized at run time (no data needed). `static`:
    int8 weights and activations in QDQ format, their ranges calibrated (min-max) on the
    batches of `calibration` (numpy arrays fed to the input `input`). The model is
    pre-processed first (ONNX shape inference and graph optimization), as ONNX Runtime
    recommends, and the result checked with `onnx.checker`.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as scratch, _quiet():
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if mode == "dynamic":
            quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
        else:
            quantize_static(
                str(prepared),
                str(target),
                _Reader(calibration or []),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
    onnx.checker.check_model(onnx.load(str(target)))


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over numpy batches."""

    def __init__(self, batches: Iterable[Any]) -> None:
        self.batches: Iterator[Any] = iter(batches)

    def get_next(self) -> dict[str, Any] | None:
        batch = next(self.batches, None)
        return None if batch is None else {"input": batch}


@contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantization logs its progress and warns about its own internals."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def accuracy(predict: Callable[[Any], Any], batches: Iterable[tuple[Any, Any]]) -> float:
    """Share of samples where `predict(x)` (logits, as numpy) argmax equals the label."""
    import numpy as np

    right = total = 0
    for x, y in batches:
        right += int((np.asarray(predict(x)).argmax(1) == np.asarray(y)).sum())
        total += len(y)
    return right / max(total, 1)


def onnx_predictor(session: Any) -> Callable[[Any], Any]:
    """Logits of an onnxruntime session for a torch batch."""
    return lambda x: session.run(None, {"input": x.numpy()})[0]


def torch_predictor(model: Any) -> Callable[[Any], Any]:
    """Logits of an eager or TorchScript module for a torch batch, without gradients."""
    import torch

    def predict(x: Any) -> Any:
        with torch.no_grad():
            return model(x).numpy()

    return predict


def outputs(predict: Callable[[Any], Any], inputs: Iterable[Any]) -> Any:
    """`predict(x)` of every input batch, concatenated along the sample axis (numpy)."""
    import numpy as np

    return np.concatenate([np.asarray(predict(x)) for x in inputs])


@dataclass(frozen=True)
class Parity:
    """How far an exported artifact's outputs are from the eager model's on the same samples.

    `relative_error` is the largest absolute difference divided by the largest absolute eager
    output over all the samples (one scale for the batch, not one per sample: rounding error
    grows with the size of the activations behind an output, which the batch's largest output
    tracks, while a per-sample scale blows up on samples whose outputs are all near 0).
    `agreement` is the share of samples (and positions, for outputs with more axes) whose
    argmax over axis 1 is the same; None for a single output per sample. `index`, `eager`
    and `exported` locate the worst difference, the two numbers a failure shows.
    """

    relative_error: float
    agreement: float | None
    samples: int
    scale: float
    index: tuple[int, ...]
    eager: float
    exported: float

    def where(self) -> str:
        """'sample 12, output 3: eager 18.2, exported 17.7' for the worst difference."""
        sample, rest = self.index[0], self.index[1:]
        output = "" if not rest else f", output {rest[0] if len(rest) == 1 else rest}"
        return f"sample {sample}{output}: eager {self.eager:.6g}, exported {self.exported:.6g}"


def compare_outputs(eager: Any, exported: Any) -> Parity:
    """The `Parity` of `exported` outputs with `eager` ones (numpy arrays of one shape).

    A NaN or infinity where the eager output is finite counts as an infinite difference, so
    that it fails any tolerance instead of slipping through `max`."""
    import numpy as np

    eager, exported = np.asarray(eager, dtype=np.float64), np.asarray(exported, dtype=np.float64)
    if eager.shape != exported.shape:
        raise ValueError(f"output shape {exported.shape} differs from the eager {eager.shape}")
    difference = np.abs(exported - eager)
    difference[~np.isfinite(difference)] = np.inf
    index = tuple(int(i) for i in np.unravel_index(int(difference.argmax()), difference.shape))
    # The floor keeps an all-zero eager output from dividing by zero: any difference then
    # counts as huge, none as nothing.
    scale = max(float(np.abs(eager).max()), float(np.finfo(np.float32).tiny))
    agreement = None
    if eager.ndim >= 2 and eager.shape[1] > 1:
        agreement = float((eager.argmax(1) == exported.argmax(1)).mean())
    return Parity(
        relative_error=float(difference.max()) / scale,
        agreement=agreement,
        samples=len(eager),
        scale=scale,
        index=index,
        eager=float(eager[index]),
        exported=float(exported[index]),
    )
