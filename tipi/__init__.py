"""tipi (TensorImgPipeline): from a throw-away PyTorch script to a cached pipeline."""

from tipi._version import __version__
from tipi.errors import (
    ConfigError,
    DefinitionError,
    PermanenceFailure,
    ProcessFailure,
    TipiError,
    UsageError,
)
from tipi.permanence import Permanence
from tipi.process import PipelineProcess


def __getattr__(name: str) -> object:
    # The runner pulls in networkx and Rich; a script that only subclasses Permanence or
    # PipelineProcess should not pay for them.
    if name in ("PipelineRunner", "Engine", "MakeOptions", "make"):
        from tipi import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'tipi' has no attribute '{name}'")


__all__ = [
    "ConfigError",
    "DefinitionError",
    "Engine",
    "MakeOptions",
    "Permanence",
    "PermanenceFailure",
    "PipelineProcess",
    "PipelineRunner",
    "ProcessFailure",
    "TipiError",
    "UsageError",
    "__version__",
    "make",
]
