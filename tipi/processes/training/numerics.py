"""How Train computes: precision (32, 16-mixed with a grad scaler, bf16-mixed also on CPUs),
an exponential moving average of the weights, and torch's deterministic algorithms."""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator, Sequence
from typing import Any

from tipi.processes.training.settings import param_error


def resolve_precision(step: str, precision: str | None, mixed_precision: bool, device: Any) -> str:
    """The precision to train in on `device`: the `precision` param, else (legacy
    `mixed_precision`) 16-mixed on CUDA and 32 elsewhere.

    Raises:
        ConfigError: 16-mixed off CUDA (its grad scaler is CUDA's), bf16 where it is missing.
    """
    import torch

    if precision is None:
        return "16-mixed" if mixed_precision and device.type == "cuda" else "32"
    if precision == "16-mixed" and device.type != "cuda":
        raise param_error(
            step,
            "precision",
            f"16-mixed needs a CUDA device (this step runs on {device.type})",
            "use bf16-mixed, which CPUs run too, or 32",
        )
    if precision == "bf16-mixed" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise param_error(step, "precision", "this GPU has no bfloat16", "use 16-mixed or 32")
    return precision


class Precision:
    """Autocast and the backward/step pair for one precision.

    16-mixed scales the loss (torch.amp.GradScaler) and unscales before clipping; a step the
    scaler skips (inf/NaN gradients) still counts as an optimizer step.
    """

    def __init__(self, mode: str, device: Any) -> None:
        import torch

        self.mode, self.device_type = mode, device.type
        self.dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(mode)
        self.scaler = torch.amp.GradScaler("cuda") if mode == "16-mixed" else None

    def autocast(self) -> Any:
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: Any) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizers: Sequence[Any], clip: float | None, params: Sequence[Any]) -> None:
        scaler = self.scaler
        if scaler is None and not clip:  # the common case, after every accumulated batch
            for optimizer in optimizers:
                optimizer.step()
            return
        if clip:
            import torch

            if scaler is not None:
                for optimizer in optimizers:
                    scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, clip)
        for optimizer in optimizers:
            if scaler is not None:
                scaler.step(optimizer)
            else:
                optimizer.step()
        if scaler is not None:
            scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


class EMA:
    """An exponential moving average of the model's weights, in a copy of the model.

    After each optimizer step: `ema = ema + (1 - d) * (weights - ema)` over the trainable
    parameters and the floating-point buffers (BatchNorm statistics); integer buffers are
    copied. With `warmup` (timm's and TensorFlow's), `d = min(decay, (1 + n) / (10 + n))`
    at the n-th update (from 0), so a short run's average is not stuck at the initial
    weights; without it, `d = decay`. `updates` counts them (a resume puts it back).
    `module` is the copy, in eval mode, validated as `ema_*` metrics and saved as `ema.pt`.
    """

    def __init__(self, model: Any, decay: float, warmup: bool = False) -> None:
        import torch

        self.decay, self.warmup, self.updates = decay, warmup, 0
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        mine = dict(self.module.named_parameters())
        theirs = dict(model.named_parameters())
        names = [n for n, p in theirs.items() if p.requires_grad]
        targets = [mine[n] for n in names]
        sources = [theirs[n] for n in names]
        my_buffers, their_buffers = dict(self.module.named_buffers()), dict(model.named_buffers())
        floats = [n for n, b in their_buffers.items() if b.is_floating_point()]
        targets += [my_buffers[n] for n in floats]
        sources += [their_buffers[n] for n in floats]
        rest = [n for n, b in their_buffers.items() if not b.is_floating_point()]
        self.targets, self.sources = targets, sources
        self.copy_targets = [my_buffers[n] for n in rest]
        self.copy_sources = [their_buffers[n] for n in rest]
        self._weight = 1.0 - decay
        self._lerp = torch._foreach_lerp_ if targets else None
        self._copy = torch._foreach_copy_ if rest else None
        self._no_grad = torch.no_grad()  # reusable: built once, not after every step

    def update(self) -> None:
        """One foreach call for the floats and one for the integer buffers (on a small
        model, a Python loop over the tensors costs as much as their arithmetic)."""
        weight = self._weight
        if self.warmup:
            n = self.updates
            weight = 1.0 - min(self.decay, (1 + n) / (10 + n))
        self.updates += 1
        with self._no_grad:
            if self._lerp is not None:
                self._lerp(self.targets, self.sources, weight)
            if self._copy is not None:
                self._copy(self.copy_targets, self.copy_sources)

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)


@contextlib.contextmanager
def deterministic(enabled: bool, on_cuda: bool) -> Iterator[None]:
    """torch's deterministic algorithms for the block (an op without one raises), cuDNN
    autotuning off; the previous settings come back afterwards."""
    if not enabled:
        yield
        return
    import torch

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    if on_cuda:  # cuBLAS needs a fixed workspace to be deterministic (CUDA >= 10.2)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before[2]
