"""Sweeps: one pipeline, many params; what the params do not reach runs once for all."""
