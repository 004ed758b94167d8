"""One `make` at a time per project: an OS file lock, plus a note naming who holds it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tipi.errors import TipiError
from tipi.state.layout import lock_file, lock_holder_file
from tipi.state.statefile import (
    BrokenState,
    file_kind,
    remove_path,
    shown,
    state_bytes,
    write_state,
)


class ProjectLock:
    """Serializes writers of `.tipi_cache/` (and of outputs) on one project.

    The lock is an OS-level lock (filelock: fcntl/flock), so the kernel releases it when its
    holder dies, even by SIGKILL: a lock left by a dead process is simply taken over. Beside
    it, `lock.holder` names the pid, host, command and start time of the holder, for the
    message a waiting `make` prints. Whoever takes the lock first removes what killed runs
    left in the cache and repairs its folders (leftovers.py): no one else is writing there.
    """

    def __init__(
        self,
        cache_dir: Path,
        on_wait: Callable[[str], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.cache = cache_dir
        self.path = lock_file(cache_dir)
        self.holder_file = lock_holder_file(cache_dir)
        self.on_wait = on_wait or (lambda message: None)
        self.warn = warn or self.on_wait
        self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None and self._lock.is_locked

    def acquire(self, poll: float = 0.2, wait: bool = True) -> bool:
        """Take the lock, waiting as long as needed; True when it had to wait.

        With `wait=False`, give up at once when another process holds it (then `held` is
        False).

        Raises:
            TipiError: the lock file cannot be opened (another user's, say).
        """
        from filelock import FileLock, Timeout

        self.cache.mkdir(parents=True, exist_ok=True)
        self._repair()
        lock = FileLock(self.path)
        waited = False
        try:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                if not wait:
                    return False
                waited = True
                self.on_wait(
                    f"waiting for {self.describe_holder()} to finish (it holds {self.path})"
                )
                lock.acquire(timeout=-1, poll_interval=poll)
        except Timeout:
            raise
        except OSError as exc:
            raise TipiError(
                f"cannot take the project lock {shown(self.path)}: {exc.strerror or exc}",
                hint="make it a file you can read and write, or remove it while no make runs",
            ) from None
        self._lock = lock
        self._write_holder()
        from tipi.state.leftovers import tidy_cache

        tidy_cache(self.cache, self.warn)
        return waited

    def release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                remove_path(self.holder_file)
            self._lock.release()
            self._lock = None

    def describe_holder(self) -> str:
        """'pid 123 (tipi make, since ...)', as far as the holder note tells."""
        try:
            info = json.loads(state_bytes(self.holder_file) or b"")
            host, pid = info.get("host"), info.get("pid")
        except (BrokenState, ValueError, AttributeError):
            return "another tipi process"
        where = "" if host == socket.gethostname() else f" on {host}"
        return f"pid {pid}{where} ({info.get('command')}, since {info.get('since')})"

    def _write_holder(self) -> None:
        """Name this process in `lock.holder`, replacing whatever is there (never through a
        link, never into a FIFO)."""
        try:
            mode = os.lstat(self.holder_file).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            self.warn(
                f"{shown(self.holder_file)} (the note naming the make that holds the lock) is "
                f"{file_kind(mode)}, not a file; replacing it"
            )
        note = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(["tipi", *sys.argv[1:]]),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        # A note for people, written again by every make that takes the lock: no fsync.
        write_state(self.holder_file, json.dumps(note).encode(), durable=False)

    def _repair(self) -> None:
        """Make the lock file a plain file its owner can read and write again, if it is not.

        A link, a folder or a FIFO is removed (never what a link points to) and a file with
        its owner's permissions taken away gets them back (the same file: a make holding it
        keeps its lock). Done under a lock on the cache folder, so that two makes repairing
        at once cannot each create a lock file of their own."""
        if self._problem() is None:
            return
        with _folder_locked(self.cache):
            problem = self._problem()
            if problem is None:
                return
            what, mode = problem
            if stat.S_ISREG(mode):
                os.chmod(self.path, stat.S_IMODE(mode) | stat.S_IRUSR | stat.S_IWUSR)
                done = "gave its owner read and write permission again"
            else:
                remove_path(self.path)
                done = "replaced it with a new lock file"
            self.warn(f"{shown(self.path)} (the project lock) {what}; {done}")

    def _problem(self) -> tuple[str, int] | None:
        """What is wrong with the lock file, and its mode; None when it is fine or missing."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return f"is {file_kind(st.st_mode)}, not a file", st.st_mode
        owner_rw = stat.S_IRUSR | stat.S_IWUSR
        if st.st_mode & owner_rw != owner_rw and st.st_uid == _uid():
            return f"had mode {stat.S_IMODE(st.st_mode):03o}", st.st_mode
        return None


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


@contextlib.contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """Hold an OS lock on `folder` itself for the block (where flock is not available, or
    not on folders, as on some network file systems: without it)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
