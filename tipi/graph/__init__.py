"""The step graph: building and validating the DAG (dag), choosing what a make needs (select).

Submodules are imported directly: `dag` needs networkx, which a no-op make never loads.
"""
