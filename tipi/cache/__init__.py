"""Fingerprints, traces, the trace store and the pure rebuilder that decides run or skip."""
