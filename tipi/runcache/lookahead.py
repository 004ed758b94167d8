"""Remote lookups for a make's steps, each started as soon as the step's run key is known.

Started when the make starts, so that a step's own lookup is answered from memory.

A step whose inputs are all in place has its key now. A step after one the make may restore
has it as soon as the remote answers for that one: its record says what each output's hash
will be once restored, which is what the next step's inputs will hash to. So a chain is asked
about link after link on the lookup threads while the make restores the first links, and a
wide pipeline all at once. A guess is never used as an answer: each step still computes its
key from the files in place when its turn comes, and only a lookup of that same key is
taken from memory.

A run the remote has is also downloaded ahead (into the local store, where the step's lookup
then finds it), but only for the next DOWNLOAD_AHEAD steps of the make's order past the one
being restored: a make that stops early leaves at most that many downloads unused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from tipi.runcache.content import CachedRun, ContentStore
from tipi.runcache.remote_pool import PooledRemote

DOWNLOAD_AHEAD = 16


@dataclass(frozen=True)
class Prospect:
    """A step of the make that may be restored, as known when the make starts.

    Attributes:
        name: the step.
        index: its position in the make's order.
        key: its run key, given the content hash of each of its input paths.
        inputs: input path → content hash now (None: missing).
        upstream: the input paths a step before it in this make may remake.
        outputs: output name → path.
    """

    name: str
    index: int
    key: Callable[[Mapping[str, str | None]], str]
    inputs: Mapping[str, str | None]
    upstream: frozenset[str]
    outputs: Mapping[str, str]


class Lookahead:
    """Asks `remote` about each prospect once its key is known (see the module's doc)."""

    def __init__(
        self,
        remote: PooledRemote,
        configs: Mapping[str, Any],
        local: ContentStore,
        warn: Callable[[str], None],
        download: bool = True,
    ) -> None:
        """`download`: fetch ahead what the remote has (not in a dry run)."""
        self.remote = remote
        self.configs = configs
        self.local = local
        self.warn = warn
        self.download = download
        self._lock = threading.Lock()
        self._predicted: dict[str, str] = {}  # path → its hash once its step is restored
        self._waiting: dict[str, list[Prospect]] = {}  # path → prospects that read it
        self._found: dict[int, tuple[str, Prospect]] = {}  # index → key, not downloaded yet
        self._horizon = DOWNLOAD_AHEAD  # download ahead the steps before this index
        self._owner = threading.get_ident()  # the make's thread

    def reached(self, index: int) -> None:
        """The make restores or runs the step at `index` of its order now."""
        with self._lock:
            self._horizon = max(self._horizon, index + 1 + DOWNLOAD_AHEAD)
        self._download_due()

    def start(self, prospects: Iterable[Prospect]) -> None:
        ready = []
        for prospect in prospects:
            if not prospect.upstream:
                ready.append((prospect, prospect.inputs))
                continue
            with self._lock:
                for path in prospect.upstream:
                    self._waiting.setdefault(path, []).append(prospect)
        self._resolve(ready)

    def _resolve(self, ready: list[tuple[Prospect, Mapping[str, str | None]]]) -> None:
        """Ask about each (prospect, its inputs' hashes), and then about the steps that its
        run, when one is found, makes known; on the make's thread the local store first,
        as the make will (elsewhere it is the make's to read). A loop, not recursion: a
        chain may be thousands of steps long."""
        here = threading.get_ident() == self._owner
        while ready:
            prospect, inputs = ready.pop()
            key = prospect.key(inputs)
            record = self.local.lookup(key, self.configs, prospect.outputs) if here else None
            if record is None:
                future = self.remote.ask(key)
                if future is None:  # the make has ended
                    continue
                if not future.done():
                    future.add_done_callback(lambda f, p=prospect, k=key: self._answered(p, k, f))
                    continue
                record = self._found_in(prospect, key, future)
            if record is not None:
                ready += self._restorable(prospect, record)

    def _answered(self, prospect: Prospect, key: str, future: Future[list[CachedRun]]) -> None:
        """On a lookup thread: the remote answered about `prospect`."""
        try:
            record = self._found_in(prospect, key, future)
            if record is not None:
                self._resolve(self._restorable(prospect, record))
        except Exception as exc:  # looking ahead only saves time: never fail the make for it
            self.warn(f"could not look ahead in the remote cache {self.remote.url}: {exc!r}")

    def _found_in(
        self, prospect: Prospect, key: str, future: Future[list[CachedRun]]
    ) -> CachedRun | None:
        """The run the remote's answer holds for `prospect` (then downloaded when due)."""
        if future.cancelled() or future.exception() is not None:
            return None  # the step's own lookup meets the failure (and says so)
        names = set(prospect.outputs)
        record = next(
            (r for r in future.result() if r.matches(self.configs) and set(r.outputs) == names),
            None,
        )
        if record is not None:
            with self._lock:
                self._found[prospect.index] = (key, prospect)
            self._download_due()
        return record

    def _restorable(
        self, prospect: Prospect, record: CachedRun
    ) -> list[tuple[Prospect, Mapping[str, str | None]]]:
        """`prospect` will be restored from `record`: the steps that read it whose inputs
        are all known now, with their inputs' hashes."""
        readers: dict[str, Prospect] = {}
        ready = []
        with self._lock:
            for name, path in prospect.outputs.items():
                digest = record.outputs.get(name, {}).get("hash")
                if isinstance(digest, str):
                    self._predicted[path] = digest
                    readers.update((p.name, p) for p in self._waiting.pop(path, []))
            for reader in readers.values():
                if all(path in self._predicted for path in reader.upstream):
                    known = {p: self._predicted[p] for p in reader.upstream}
                    ready.append((reader, {**reader.inputs, **known}))
        return ready

    def _download_due(self) -> None:
        if not self.download:
            return
        with self._lock:
            due = [i for i in self._found if i < self._horizon]
            fetches = [self._found.pop(i) for i in sorted(due)]
        for key, prospect in fetches:
            self.remote.fetch_ahead(key, self.configs, self.local, prospect.outputs)


__all__ = ["Lookahead", "Prospect"]
