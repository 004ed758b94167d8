"""A process that works for a make dies with it: a worker or a torchrun launcher left running
after `kill -9` of its make would go on writing files the next make may read."""

from __future__ import annotations

import os
import signal
import sys


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Ask Linux to send `sig` to this process when its parent dies. `parent`: the pid the
    parent had; if it is gone already (it died before the request), `sig` is raised now.
    Elsewhere nothing is done."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, sig)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)
