"""Daemon worker threads for the remote cache's traffic, and running a few calls at once."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Threads:
    """Up to `size` daemon threads running what is submitted, in order. Unlike a
    ThreadPoolExecutor's, they never hold up the end of the process: after Ctrl-C a remote
    that hangs must not keep tipi from exiting, and an upload cut short leaves nothing
    half-written where a reader looks (remote_ops.py)."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple] | None]
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._stopped = False

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._stopped:
                future.cancel()
                return future
            self._queue.put((future, function, args))
            if self._idle == 0 and len(self._threads) < self.size:
                name = f"{self.name}-{len(self._threads)}"
                thread = threading.Thread(target=self._work, name=name, daemon=True)
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1  # taken by the next idle thread
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, function, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function(*args))
                except BaseException as exc:  # the caller's, through the future
                    future.set_exception(exc)
            with self._lock:
                self._idle += 1

    def stop(self) -> None:
        """Cancel what has not started; what runs finishes (or ends with the process)."""
        with self._lock:
            self._stopped = True
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
            for _ in self._threads:
                self._queue.put(None)


def each(threads: Threads | None, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`function` of every item, several at once on `threads` (in this thread when there
    is one item or no threads); every call ends before the first failure, in the items'
    order, is raised: nothing is left running behind the caller's back."""
    items = list(items)
    if threads is None or len(items) < 2:
        return [function(item) for item in items]
    futures = [threads.submit(function, item) for item in items]
    wait(futures)
    for future in futures:
        if future.cancelled():  # the pool was stopped: the process is ending
            raise KeyboardInterrupt
        if future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    return [future.result() for future in futures]


__all__ = ["Threads", "each"]
