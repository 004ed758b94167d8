"""progress_bar(): a tqdm drop-in drawn with Rich; inside a pipeline its bars nest under the
running step on the pipeline's ProgressManager."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from tipi import context
from tipi.permanences.progress import ProgressManager

T = TypeVar("T")

# Check the clock only every `miniters` iterations, and adapt `miniters` so that updates reach
# the display about every MIN_INTERVAL seconds (tqdm's approach): a tight loop pays a counter
# increment per item, not a display update.
MIN_INTERVAL = 0.1


class progress_bar(Generic[T]):
    """`for x in progress_bar(items, desc="train"):` - the common tqdm call forms.

    Args:
        iterable: what to iterate (may be None when driven with `update()`).
        desc: the bar's label (default: "progress"); names are made unique.
        total: the number of items, for iterables without `len()`.
        leave: keep the finished bar on screen (standalone only).
        disable: draw nothing; iterate at full speed.
        unit: the item unit shown in plain log lines.
    """

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        desc: str | None = None,
        total: float | None = None,
        leave: bool = True,
        disable: bool = False,
        unit: str = "it",
        **_ignored: Any,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.leave, self.disable, self.unit = (
            iterable,
            total,
            leave,
            disable,
            unit,
        )
        self.desc = desc or "progress"
        self.n = 0
        self._pushed = 0
        self._miniters = 1
        self._last = time.monotonic()
        self._manager: ProgressManager | None = None
        self._owned = False
        self._name = ""
        if not disable:
            self._open()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> progress_bar[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("progress_bar() was given no iterable; use update() instead")
        if self.disable:
            yield from self.iterable
            return
        n, miniters, last = self.n, self._miniters, self._last
        since = 0
        try:
            for item in self.iterable:
                yield item
                n += 1
                since += 1
                if since >= miniters:
                    now = time.monotonic()
                    elapsed = now - last
                    if elapsed >= MIN_INTERVAL:
                        self.n = n
                        self._push()
                        last = now
                    miniters = (
                        max(1, int(since * MIN_INTERVAL / elapsed)) if elapsed > 0 else since * 2
                    )
                    since = 0
        finally:
            self.n, self._miniters, self._last = n, miniters, last
            self.close()

    def update(self, n: float = 1) -> None:
        """Advance by `n` (for manual use, as tqdm's `update`)."""
        self.n += n
        if not self.disable and time.monotonic() - self._last >= MIN_INTERVAL:
            self._last = time.monotonic()
            self._push()

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.set_postfix_str(desc or "")

    def set_postfix(
        self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any
    ) -> None:
        values = {**(ordered_dict or {}), **kwargs}
        self.set_postfix_str(" ".join(f"{k}={_short(v)}" for k, v in values.items()))

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        if self._manager is not None and self._name:
            self._manager.update(self._name, status=s)

    def close(self) -> None:
        """Finish the bar (pushing the last count); safe to call twice."""
        if self._manager is None or not self._name:
            return
        self._push()
        self._manager.remove(self._name)
        self._name = ""
        if self._owned:
            self._manager.cleanup()

    def _push(self) -> None:
        if self._manager is not None and self._name and self.n != self._pushed:
            self._manager.advance(self._name, self.n - self._pushed)
            self._pushed = self.n

    def _open(self) -> None:
        run = context.current()
        manager = run.find(ProgressManager) if run is not None else None
        parent = None
        if manager is not None:
            parent = run.step  # type: ignore[union-attr]
            if parent not in manager.names:
                manager.add(parent)
        else:
            manager = ProgressManager(log_interval=5.0)
            manager.initialize()
            self._owned = True
        self._manager = manager
        self._name = _unique(manager, self.desc)
        manager.add(self._name, total=self.total, parent=parent)


def _unique(manager: ProgressManager, desc: str) -> str:
    name, n = desc, 2
    while name in manager.names:
        name, n = f"{desc} #{n}", n + 1
    return name


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
