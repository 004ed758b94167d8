"""The up-to-date decision: is a step, or a whole selection, up to date, and if not, why.

rebuilder.py decides one step from its facts and its trace (pure); reasons.py words why it
runs; question.py answers whether a whole selection is up to date, for the full make and the
fast path alike, by clean.py's stat-only proof; planfile.py owns the plan file and says when a
cached plan may be used; resume.py binds a resumable checkpoint to a fingerprint.
Nothing here imports execution, planning or the CLI (pyproject.toml's import contracts).
"""
