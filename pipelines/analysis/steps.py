"""DigitImages: test-split digits written as PNG files, a folder for Predict to read."""

from __future__ import annotations

from typing import Any

from tipi import PipelineProcess


class DigitImages(PipelineProcess):
    """The first `count` test digits as 8-bit grayscale PNG files of `size` x `size` pixels,
    named `<index>-<label>.png` (Predict resizes them back to the model's 8 x 8)."""

    def __init__(self, controller: Any, force: bool = False, count: int = 20, size: int = 32):
        super().__init__(controller, force)
        self.count, self.size = count, size

    def execute(self) -> None:
        from PIL import Image

        from tipi.processes.data import load_splits

        images, labels = load_splits(self.inputs["data"])["test"].tensors
        folder = self.outputs["images"]
        folder.mkdir()
        for i in range(min(self.count, len(labels))):
            pixels = (images[i, 0] * 255).round().byte().numpy()
            picture = Image.fromarray(pixels).resize((self.size, self.size), Image.NEAREST)
            picture.save(folder / f"{i:03d}-{int(labels[i])}.png")
