"""The step graph: building and validating the DAG (dag), choosing what a make needs (select).

Neither imports networkx: only `tipi graph`'s drawing (report/graph.py) does.
"""
