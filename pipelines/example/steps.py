"""Types for the "example" pipeline. Every *.py beside pipeline.toml is imported; its
Permanence and PipelineProcess classes can be named as `type` in the TOML."""

from tipi import Permanence, PipelineProcess


class Counter(Permanence):
    """Hands out consecutive numbers: a small shared resource with a lifecycle."""

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.value = start

    def initialize(self) -> None:
        self.value = self.start

    def next(self) -> int:
        value = self.value
        self.value += 1
        return value

    def cleanup(self) -> None:
        self.value = self.start


class WriteNumbers(PipelineProcess):
    """Writes `n` numbers from the counter, one a line."""

    def __init__(self, controller, force: bool = False, n: int = 3) -> None:
        super().__init__(controller, force)
        self.n = n

    def execute(self) -> None:
        counter = self.controller.get_permanence("counter")
        numbers = [counter.next() for _ in range(self.n)]
        self.outputs["numbers"].write_text("".join(f"{x}\n" for x in numbers))


class SumNumbers(PipelineProcess):
    """Adds up the numbers it is given."""

    def execute(self) -> None:
        numbers = [int(line) for line in self.inputs["numbers"].read_text().split()]
        self.outputs["total"].write_text(f"{sum(numbers)}\n")
