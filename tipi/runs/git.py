"""The project's git commit and whether its tree is dirty, for a run's record."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# A run's start must never hang on git (a network file system, a huge repository).
TIMEOUT_SECONDS = 10.0


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git work tree holding `root`.

    `commit` is the full hash of HEAD (None in a repository without commits); `dirty` says
    whether a tracked file differs from it (staged or not; untracked files do not count:
    outputs and caches are often not ignored). Both are None when git is not installed,
    `root` is not in a work tree, or git fails or takes too long.
    """
    git = shutil.which("git")
    if git is None:
        return None, None
    # One call for both (each git process costs milliseconds a make's overhead feels); it
    # fails outside a work tree, and `# branch.oid` is "(initial)" before the first commit.
    status = _git(git, root, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return None, None
    lines = status.splitlines()
    oid = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    commit = oid if oid and oid != "(initial)" else None
    return commit, any(line and not line.startswith("#") for line in lines)


def _git(git: str, root: Path, *args: str) -> str | None:
    """git's output of `args` run in `root`; None when it fails."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}  # never wait for a lock
    try:
        done = subprocess.run(
            [git, "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            env=env,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None
    return done.stdout if done.returncode == 0 else None
