"""tipi (TensorImgPipeline): from a throw-away PyTorch script to a cached pipeline."""

from tipi._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from tipi.engine import Engine, MakeOptions, PipelineRunner, make
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

# Exported name → the module that defines it, imported on first use (PEP 562): `import tipi`
# (and with it the `tipi` executable, tipi/_fastpath.py) costs no module it does not use; the
# runner pulls in networkx and Rich, which a script that only subclasses Permanence or
# PipelineProcess should not pay for.
_EXPORTS = {
    "ConfigError": "tipi.errors",
    "DefinitionError": "tipi.errors",
    "PermanenceFailure": "tipi.errors",
    "ProcessFailure": "tipi.errors",
    "TipiError": "tipi.errors",
    "UsageError": "tipi.errors",
    "Permanence": "tipi.permanence",
    "PipelineProcess": "tipi.process",
    "PipelineRunner": "tipi.engine",
    "Engine": "tipi.engine",
    "MakeOptions": "tipi.engine",
    "make": "tipi.engine",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tipi' has no attribute '{name}'")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


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
