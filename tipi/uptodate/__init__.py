"""The up-to-date decision: is a step, or a whole selection, up to date, and if not, why.

rebuilder.py decides one step from its facts and its trace (pure); reasons.py words why it
runs; clean.py is the stat-only proof that a whole selection is up to date; planfile.py says
when a cached plan may be used; resume.py binds a resumable checkpoint to a fingerprint.
Nothing here imports execution, planning or the CLI (pyproject.toml's import contracts).
"""
