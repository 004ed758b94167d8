"""A make's remote cache traffic on threads: lookups and downloads ahead, uploads beside.

An object store answers in tens of milliseconds; asked one step after another, a first build
of many small steps waits for it once per lookup and several times per upload. Here lookups
go to LOOKUP_THREADS threads as soon as a run key is known (`PooledRemote.ask`) and a step's
lookup later takes the answer from memory; the runs found can be downloaded ahead, on
DOWNLOAD_THREADS (`PooledRemote.fetch_ahead`); a run kept by the make goes to UPLOAD_THREADS at
once (`Uploads`), and the make waits for what is left only at its end.

What happens on a worker thread reaches the person through `Relay`: the reporter draws a live
display that only the make's own thread may touch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from tipi.runcache.content import CachedRun, ContentStore
from tipi.runcache.record import CorruptCache
from tipi.runcache.remote import RemoteStore, Transfer
from tipi.runcache.threads import Threads

LOOKUP_THREADS = 16
DOWNLOAD_THREADS = 8
UPLOAD_THREADS = 8
SURVEY_FROM = 4  # lookups a make expects before it lists every record at once instead
PROGRESS_AFTER = 2.0  # seconds of waiting for uploads before the make says it waits
PROGRESS_EVERY = 15.0


class Relay:
    """Messages raised on worker threads, shown by the make's thread when it `flush`es;
    on the make's thread they are shown at once."""

    def __init__(self, show: Callable[[str], None]) -> None:
        self._show = show
        self._owner = threading.get_ident()
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()

    def __call__(self, text: str) -> None:
        if threading.get_ident() == self._owner:
            self.flush()  # keep the order they were raised in
            self._show(text)
        else:
            self._queue.put(text)

    def flush(self) -> None:
        while True:
            try:
                text = self._queue.get_nowait()
            except queue.Empty:
                return
            self._show(text)


class Outage:
    """Whether the remote is down for this make: the first failure is told once (through
    `warn`), then nothing asks the remote again."""

    def __init__(self, url: str, warn: Callable[[str], None]) -> None:
        self.url = url
        self.warn = warn
        self.cause: str | None = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return self.cause is not None

    def declare(self, exc: BaseException, pushing: bool = False) -> None:
        """The remote failed with `exc` (`pushing`: while a run was pushed to it)."""
        text = str(exc)
        if not text.startswith("remote cache "):  # RemoteUnavailable names the remote
            text = f"remote cache {self.url}: {text}"
        with self._lock:
            if self.cause is not None:
                return
            self.cause = text
        self.warn(f"{'could not push to the ' if pushing else ''}{text}; going on without it")


class PooledRemote(RemoteStore):
    """A RemoteStore whose record listings (`ask`) and runs (`fetch_ahead`) can be asked
    for ahead, several at once; `records` and `fetch` answer from those when they were."""

    def __init__(self, url: str, warn: Callable[[str], None] = lambda _: None) -> None:
        super().__init__(url, warn)
        # Names of their own: RemoteStore's attributes are its own business.
        self._pool_asked: dict[str, Future[list[CachedRun]]] = {}
        self._pool_fetched: dict[str, Future[CachedRun | None]] = {}
        self._pool_lock = threading.Lock()
        self._pool_lookups: Threads | None = None
        self._pool_downloads: Threads | None = None
        self._pool_stopped = False
        self._pool_survey: Future[bool] | None = None

    def expect(self, count: int) -> None:
        """The make will look up about `count` keys: from SURVEY_FROM on, the first lookup
        thread lists every record of the remote in one request if there are at most
        RemoteStore.SURVEY_MOST (then each lookup only reads its records), and the lookups
        wait for that answer."""
        with self._pool_lock:
            if count < SURVEY_FROM or self._pool_survey is not None or self._pool_stopped:
                return
            if self._pool_asked:  # lookups queued before it would wait for it: never
                return
            if self._pool_lookups is None:
                self._pool_lookups = Threads(LOOKUP_THREADS, "tipi-remote-lookup")
            self._pool_survey = self._pool_lookups.submit(self.survey)

    def ask(self, key: str) -> Future[list[CachedRun]] | None:
        """Start looking up `key` (once per make); its future's result is `records(key)`.
        None once the make has ended (`stop_asking`)."""
        with self._pool_lock:
            future = self._pool_asked.get(key)
            if future is None:
                if self._pool_stopped:
                    return None
                if self._pool_lookups is None:
                    self._pool_lookups = Threads(LOOKUP_THREADS, "tipi-remote-lookup")
                future = self._pool_lookups.submit(self._look_up, key)
                self._pool_asked[key] = future
            return future

    def _look_up(self, key: str) -> list[CachedRun]:
        """`records(key)` on a lookup thread, after the survey if there is one (its failure
        is the remote's: then so is this lookup's, at once)."""
        survey = self._pool_survey
        if survey is not None:
            wait([survey])
        return RemoteStore.records(self, key)

    def records(self, key: str) -> list[CachedRun]:
        with self._pool_lock:
            future = self._pool_asked.get(key)
        if future is None or future.cancelled():
            return super().records(key)
        return list(future.result())  # its failure, if any, raises here: the caller's

    def fetch_ahead(
        self, key: str, configs: Mapping[str, Any], local: ContentStore, names: Iterable[str]
    ) -> None:
        """Start `fetch(key, configs, local, names)` (once per make), DOWNLOAD_THREADS at
        once; a later `fetch` of `key` waits for it rather than download again."""
        with self._pool_lock:
            if key in self._pool_fetched or self._pool_stopped:
                return
            if self._pool_downloads is None:
                self._pool_downloads = Threads(DOWNLOAD_THREADS, "tipi-remote-download")
            self._pool_fetched[key] = self._pool_downloads.submit(
                super().fetch, key, configs, local, list(names)
            )

    def fetch(
        self,
        key: str,
        configs: Mapping[str, Any],
        local: ContentStore,
        names: Iterable[str] | None = None,
    ) -> CachedRun | None:
        with self._pool_lock:
            future = self._pool_fetched.get(key)
            mine = future is None
            if mine:  # a fetch ahead asked for later finds this one rather than download too
                future = self._pool_fetched[key] = Future()
        if future.cancelled():  # type: ignore[union-attr]
            return super().fetch(key, configs, local, names)
        if not mine:
            return future.result()  # type: ignore[union-attr]  # as `super().fetch` raises
        try:
            found = super().fetch(key, configs, local, names)
        except BaseException as exc:
            future.set_exception(exc)  # type: ignore[union-attr]
            raise
        future.set_result(found)  # type: ignore[union-attr]
        return found

    def stop_asking(self) -> None:
        """Drop the lookups and downloads not started (the make ended); those under way
        finish."""
        with self._pool_lock:
            pools = (self._pool_lookups, self._pool_downloads)
            self._pool_lookups = self._pool_downloads = None
            self._pool_stopped = True
        self.forget_survey()  # a snapshot of the make's start: stale for anything later
        for pool in pools:
            if pool is not None:
                pool.stop()


class Uploads:
    """Each kept run pushed as soon as it is kept, UPLOAD_THREADS at a time (an interrupted
    upload leaves nothing half-written where a reader looks: remote_ops.py)."""

    def __init__(
        self, remote: RemoteStore, local: ContentStore, outage: Outage, warn: Callable[[str], None]
    ) -> None:
        self.remote = remote
        self.local = local
        self.outage = outage
        self.warn = warn
        self.futures: list[Future[Transfer]] = []
        self._pool: Threads | None = None

    def submit(self, record: CachedRun) -> None:
        if self.outage:
            return
        if self._pool is None:
            self._pool = Threads(UPLOAD_THREADS, "tipi-remote-upload")
        self.futures.append(self._pool.submit(self._push, record))

    def _push(self, record: CachedRun) -> Transfer:
        if self.outage:
            return Transfer()
        try:
            return self.remote.push(self.local, only=[record], new=True)
        except CorruptCache as exc:  # this run's files, not the remote
            self.warn(f"could not push the {record.describe()} to {self.remote.url}: {exc}")
        except OSError as exc:  # RemoteUnavailable, or the remote failed in a way it did not say
            self.outage.declare(exc, pushing=True)
        return Transfer()

    def wait(self, notice: Callable[[str], None], flush: Callable[[], None]) -> Transfer:
        """Wait for every upload (saying so when it takes long) and add up what they sent.
        Ctrl-C stops the waiting: uploads not started are dropped, those under way end with
        the process (their threads are daemons), and a warning counts both as not pushed."""
        pending = set(self.futures)
        total = len(pending)
        unsent: set[Future[Transfer]] = set()  # what Ctrl-C left: not counted as sent
        say_at = time.monotonic() + PROGRESS_AFTER
        try:
            while pending:
                _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                flush()
                if pending and time.monotonic() >= say_at:
                    done = total - len(pending)
                    notice(f"pushing to {self.remote.url}: {done} of {total} run(s) sent")
                    say_at = time.monotonic() + PROGRESS_EVERY
        except KeyboardInterrupt:  # the make's outcome stands; only the push stops
            self.close()
            unsent = {f for f in self.futures if f.cancelled() or not f.done()}
            if unsent:
                self.warn(
                    f"push to {self.remote.url} interrupted: {len(unsent)} run(s) not pushed "
                    f"(`tipi cache push --remote {self.remote.url}` sends them)"
                )
        self.close()
        sent = Transfer()
        for future in self.futures:
            if future not in unsent and future.done() and not future.cancelled():
                part = future.result()
                sent.records += part.records
                sent.objects += part.objects
                sent.bytes += part.bytes
        self.futures = []
        return sent

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool = None


__all__ = [
    "DOWNLOAD_THREADS",
    "LOOKUP_THREADS",
    "UPLOAD_THREADS",
    "Outage",
    "PooledRemote",
    "Relay",
    "Threads",
    "Uploads",
]
