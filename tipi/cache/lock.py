"""One `make` at a time per project: an OS file lock, plus a note naming who holds it."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path


class ProjectLock:
    """Serializes writers of `.tipi_cache/` (and of outputs) on one project.

    The lock is an OS-level lock (filelock: fcntl/flock), so the kernel releases it when its
    holder dies, even by SIGKILL: a lock left by a dead process is simply taken over. Beside
    it, `lock.holder` names the pid, host, command and start time of the holder, for the
    message a waiting `make` prints.
    """

    def __init__(self, cache_dir: Path, on_wait: Callable[[str], None] | None = None) -> None:
        self.path = cache_dir / "lock"
        self.holder_file = cache_dir / "lock.holder"
        self.on_wait = on_wait or (lambda message: None)
        self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None and self._lock.is_locked

    def acquire(self, poll: float = 0.2, wait: bool = True) -> bool:
        """Take the lock, waiting as long as needed; True when it had to wait.

        With `wait=False`, give up at once when another process holds it (then `held` is
        False)."""
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path)
        waited = False
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                return False
            waited = True
            self.on_wait(f"waiting for {self.describe_holder()} to finish (it holds {self.path})")
            lock.acquire(timeout=-1, poll_interval=poll)
        self._lock = lock
        self.holder_file.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "command": " ".join(["tipi", *sys.argv[1:]]),
                    "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
            )
        )
        return waited

    def release(self) -> None:
        if self._lock is not None:
            self.holder_file.unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    def describe_holder(self) -> str:
        """'pid 123 (tipi make, since ...)', as far as the holder note tells."""
        try:
            info = json.loads(self.holder_file.read_text())
        except (OSError, ValueError):
            return "another tipi process"
        where = "" if info.get("host") == socket.gethostname() else f" on {info.get('host')}"
        return f"pid {info.get('pid')}{where} ({info.get('command')}, since {info.get('since')})"
