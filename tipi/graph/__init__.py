"""The step graph: building and validating the DAG, selecting targets, ordering steps."""

from tipi.graph.dag import StepGraph, build_graph

__all__ = ["StepGraph", "build_graph"]
