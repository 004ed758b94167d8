"""Pipeline configuration: the typed schema and the TOML loader with overrides.

Names are imported on first use: a no-op make reads its cached plan and never loads the TOML
machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "load_pipeline": "tipi.config.loader",
    "parse_override": "tipi.config.loader",
    "find_project_root": "tipi.config.project",
    "list_pipelines": "tipi.config.project",
    "locate_pipeline": "tipi.config.project",
    "ResolvedPipeline": "tipi.config.resolve",
    "ResolvedStep": "tipi.config.resolve",
    "resolve_pipeline": "tipi.config.resolve",
    "PermanenceSpec": "tipi.config.schema",
    "PipelineSpec": "tipi.config.schema",
    "ProcessSpec": "tipi.config.schema",
}

if TYPE_CHECKING:
    from tipi.config.loader import load_pipeline, parse_override
    from tipi.config.project import find_project_root, list_pipelines, locate_pipeline
    from tipi.config.resolve import ResolvedPipeline, ResolvedStep, resolve_pipeline
    from tipi.config.schema import PermanenceSpec, PipelineSpec, ProcessSpec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tipi.config' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "PermanenceSpec",
    "PipelineSpec",
    "ProcessSpec",
    "ResolvedPipeline",
    "ResolvedStep",
    "find_project_root",
    "list_pipelines",
    "load_pipeline",
    "locate_pipeline",
    "parse_override",
    "resolve_pipeline",
]
