"""Pipeline configuration: the typed schema and the TOML loader with overrides."""

from tipi.config.loader import load_pipeline, parse_override
from tipi.config.project import find_project_root, list_pipelines, locate_pipeline
from tipi.config.resolve import ResolvedPipeline, ResolvedStep, resolve_pipeline
from tipi.config.schema import PermanenceSpec, PipelineSpec, ProcessSpec

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
