"""@pipeline_process: a plain function that is also a pipeline step."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tipi.process import PipelineProcess

F = TypeVar("F", bound=Callable[..., Any])
# Parameters filled by the engine rather than by `params`.
PATH_ARGUMENTS = ("inputs", "outputs", "scratch_dir")


def pipeline_process(
    func: F | None = None,
    *,
    inputs: Mapping[str, str] | None = None,
    outputs: Mapping[str, str] | None = None,
    version: str | None = None,
) -> Any:
    """Make a function usable as `type = "function_name"` in pipeline.toml.

    The function stays callable as it was. As a step, its parameters (with their type hints
    and defaults) are the step's params; a parameter named like one of its declared inputs or
    outputs receives that path; parameters named `inputs`, `outputs` or `scratch_dir` receive
    the step's mappings and scratch folder. Its code fingerprint is the function's own source.

    Usable bare (`@pipeline_process`) or with paths
    (`@pipeline_process(outputs={"model": "out/model.pt"})`).
    """

    def decorate(function: F) -> F:
        process = make_process_class(function, dict(inputs or {}), dict(outputs or {}), version)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

        wrapper.__tipi_process__ = process  # type: ignore[attr-defined]
        wrapper.process = process  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


def make_process_class(
    function: Callable[..., Any],
    inputs: dict[str, str],
    outputs: dict[str, str],
    version: str | None,
) -> type[PipelineProcess]:
    """A PipelineProcess subclass whose params are `function`'s parameters."""
    signature = inspect.signature(function)
    paths = set(inputs) | set(outputs) | set(PATH_ARGUMENTS)
    try:
        hints = typing.get_type_hints(function)
    except Exception:
        hints = {}
    params = [p for p in signature.parameters.values() if p.name not in paths]

    def __init__(
        self: PipelineProcess, controller: Any, force: bool = False, **kwargs: Any
    ) -> None:
        PipelineProcess.__init__(self, controller, force)
        self.params = kwargs

    def execute(self: PipelineProcess) -> None:
        call = dict(self.params)  # type: ignore[attr-defined]
        for name in signature.parameters:
            if name in ("inputs", "outputs"):
                call[name] = getattr(self, name)
            elif name == "scratch_dir":
                call[name] = self.scratch_dir
            elif name in self.inputs or name in self.outputs:
                call[name] = {**self.inputs, **self.outputs}[name]
        function(**call)

    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("controller", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("force", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=False),
            *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params),
        ]
    )
    __init__.__annotations__ = {p.name: hints[p.name] for p in params if p.name in hints}
    namespace = {
        "__init__": __init__,
        "execute": execute,
        "inputs": inputs,
        "outputs": outputs,
        "version": version,
        # A function gets its params' values, never the permanences they might name: a
        # `device = "cuda"` of its own is a param like any other.
        "permanence_params": (),
        "__tipi_function__": function,
        "__module__": function.__module__,
        "__qualname__": function.__qualname__,
        "__doc__": function.__doc__,
    }
    return type(function.__name__, (PipelineProcess,), namespace)
