"""progress_bar(): tqdm's API, drawn with Rich in a terminal and written as tqdm's lines in a
pipe; inside a pipeline its bars nest under the running step on the pipeline's
ProgressManager. `from tipi.helpers import tqdm, trange` replaces `from tqdm.auto import ...`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from numbers import Number
from typing import IO, Any, ClassVar, Generic, TypeVar
from weakref import WeakSet

from tipi.helpers.progress_display import BarDisplay, release_script_manager
from tipi.helpers.progress_io import (
    EMA,
    BytesOut,
    TqdmClassAPI,
    TqdmProtocols,
    isatty,
    known_colour,
    supports_unicode,
)
from tipi.permanences.progress import ProgressManager
from tipi.report.meter import warn_tqdm

T = TypeVar("T")


class _Default(float):
    """tqdm's default `mininterval`, told apart from the same value passed on purpose."""


MININTERVAL = _Default(0.1)


class progress_bar(BarDisplay, TqdmProtocols, TqdmClassAPI, Generic[T]):
    """`for x in progress_bar(items, desc="train"):` - tqdm's arguments, methods and attributes.

    In a terminal the bars are Rich bars on one live display (nested bars indented under the
    bar they run inside, or under the running step in a pipeline); elsewhere each bar writes
    tqdm's text as plain `[progress]` lines: one when it opens (a top-level bar), one at most
    every `log_interval` seconds (the pipeline's ProgressManager's, 5 s in a script) or every
    `mininterval` when one is passed, and a last one when it closes if `leave` or nested.
    To a `file=` of the user's it writes tqdm's lines as they are (within `ncols`).

    Honoured as in tqdm: iterable, desc, total, leave (None: only at position 0), file (its
    stream; disable=None turns the bar off when it is not a terminal), mininterval,
    maxinterval, miniters, disable, unit, unit_scale, unit_divisor, initial, position (a bar
    nests under the open bar at the nearest lower position; without it, in the order bars
    open), postfix, colour
    (the Rich bar's colour), delay, write_bytes. In plain lines only (Rich lays the terminal
    out itself): ncols, ascii, bar_format. Accepted and ignored: dynamic_ncols, nrows,
    smoothing (in the terminal: Rich estimates rates), lock_args, gui.
    """

    _instances: ClassVar[WeakSet[Any]] = WeakSet()

    def __new__(cls, *args: Any, **kwargs: Any) -> progress_bar[Any]:
        instance = object.__new__(cls)
        with cls.get_lock():
            cls._instances.add(instance)
        return instance

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        desc: str | None = None,
        total: float | None = None,
        leave: bool | None = True,
        file: IO[str] | None = None,
        ncols: int | None = None,
        mininterval: float = MININTERVAL,
        maxinterval: float = 10.0,
        miniters: float | None = None,
        ascii: bool | str | None = None,
        disable: bool | None = False,
        unit: str = "it",
        unit_scale: bool | float = False,
        dynamic_ncols: bool = False,
        smoothing: float = 0.3,
        bar_format: str | None = None,
        initial: float = 0,
        position: int | None = None,
        postfix: Mapping[str, Any] | Any = None,
        unit_divisor: float = 1000,
        write_bytes: bool = False,
        lock_args: tuple[Any, ...] | None = None,
        nrows: int | None = None,
        colour: str | None = None,
        delay: float = 0.0,
        gui: bool = False,
        **unknown: Any,
    ) -> None:
        if unknown:
            listed = ", ".join(sorted(unknown))
            raise TypeError(f"progress_bar() got unknown argument(s): {listed} (tqdm's are "
                            "listed in help(progress_bar))")  # fmt: skip
        file = file if file is not None else sys.stderr
        # The terminal's streams (maybe Rich's redirections of them) show bars on the display.
        self._standard = file is sys.stderr or file is sys.stdout
        if write_bytes:
            file = BytesOut(file)  # type: ignore[assignment]
        if disable is None:
            disable = not isatty(file)
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        if total == float("inf"):
            total = None
        if colour is not None and not known_colour(colour):
            warn_tqdm(f"Unknown colour ({colour}); use a Rich colour name or #rrggbb")
            colour = None
        self.iterable, self.desc, self.total, self.leave = iterable, desc or "", total, leave
        self.fp, self.ncols, self.nrows, self.write_bytes = file, ncols, nrows, write_bytes
        # A mininterval passed on purpose paces the plain lines too; tqdm's default leaves
        # them to log_interval.
        self._lines_every = None if isinstance(mininterval, _Default) else 0.0
        self.mininterval = float(mininterval or 0)
        self.maxinterval = float(maxinterval or 0)
        self.miniters = miniters or 0
        self.dynamic_miniters = miniters is None
        self.ascii = ascii if ascii is not None else not supports_unicode(file)
        self.disable, self.unit, self.unit_scale = disable, unit, unit_scale
        self.unit_divisor, self.initial, self.lock_args = unit_divisor, initial, lock_args
        self.delay, self.gui, self.dynamic_ncols = delay, gui, dynamic_ncols
        self.smoothing = smoothing or 0
        self._ema_dn, self._ema_dt = EMA(self.smoothing), EMA(self.smoothing)
        self._ema_miniters = EMA(self.smoothing)
        self.bar_format, self.colour = bar_format, colour
        self.postfix: Any = None
        self._time = time.time
        self.n = self.last_print_n = initial
        self._manager: ProgressManager | None = None
        self._name, self._owned, self._shown, self._pushed = "", False, None, initial
        self._cleared = False
        with self.get_lock():
            self.pos = self._get_free_pos(self) if position is None else -position
            if disable:
                self._instances.discard(self)
        if postfix:
            try:
                self.set_postfix(refresh=False, **postfix)
            except TypeError:
                self.postfix = postfix
        self.sp = self.status_printer(file)
        self.last_print_t = self._time()
        if not disable and delay <= 0:
            self._open()  # before start_t, as tqdm: the first line's elapsed is 0, its rate None
        self.start_t = self.last_print_t

    # Iteration and counting, as tqdm: a counter per item, the clock every `miniters` items.

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("progress_bar() was given no iterable; use update() instead")
        return self._iterate(self.iterable)

    def _iterate(self, iterable: Iterable[T]) -> Iterator[T]:
        if self.disable:
            yield from iterable
            return
        mininterval, min_start_t = self.mininterval, self.start_t + self.delay
        last_print_t, last_print_n = self.last_print_t, self.last_print_n
        n, clock = self.n, self._time
        due = last_print_n + self.miniters  # the count at which to look at the clock
        try:
            for obj in iterable:
                yield obj
                n += 1
                if n >= due:
                    cur_t = clock()
                    if cur_t - last_print_t >= mininterval and cur_t >= min_start_t:
                        self.update(n - last_print_n)
                        last_print_n, last_print_t = self.last_print_n, self.last_print_t
                    due = last_print_n + self.miniters
        finally:
            self.n = n
            self.close()

    def update(self, n: float = 1) -> bool | None:
        """Advance by `n` (negative goes back); True when the display was updated."""
        if self.disable:
            return None
        if n < 0:
            self.last_print_n += n
        self.n += n
        if self.n - self.last_print_n < self.miniters:
            return None
        cur_t = self._time()
        dt = cur_t - self.last_print_t
        if dt < self.mininterval or cur_t < self.start_t + self.delay:
            return None
        dn = self.n - self.last_print_n
        if self.smoothing and dt and dn:
            self._ema_dn(dn)
            self._ema_dt(dt)
        self._show()
        if self.dynamic_miniters:  # aim at one display per mininterval (or maxinterval)
            if self.maxinterval and dt >= self.maxinterval:
                self.miniters = dn * (self.mininterval or self.maxinterval) / dt
            elif self.smoothing:
                ratio = self.mininterval / dt if self.mininterval and dt else 1
                self.miniters = self._ema_miniters(dn * ratio)
            else:
                self.miniters = max(self.miniters, dn)
        self.last_print_n, self.last_print_t = self.n, cur_t
        return True

    def close(self) -> None:
        """End the bar: its final count stays (`leave`) or it goes; safe to call twice."""
        if self.disable:
            return
        self.disable = True
        with self.get_lock():
            self._instances.discard(self)
        if self._manager is None:
            return
        shown = self.last_print_t >= self.start_t + self.delay
        if shown:
            self._show()
        leave = self.leave if self.leave is not None else abs(self.pos) == 0
        self._manager.remove(self._name, leave=leave and shown)
        if self._owned:
            release_script_manager()
        self._manager = None

    def clear(self, nolock: bool = False) -> None:
        """Hide the bar until its next refresh (nothing to clear in a pipe)."""
        if self._manager is not None and not self.disable:
            self._cleared = True
            self._manager.update(self._name, visible=False)

    def refresh(self, nolock: bool = False, lock_args: tuple[Any, ...] | None = None) -> None:
        """Show the current state now (in a pipe: a line now)."""
        if self.disable:
            return
        if self._manager is None:
            self._open()
        else:
            self._show()
            self._manager.refresh(self._name)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        """Refresh, or show `msg` (as a line above the bars, or in the pipe)."""
        if msg is None:
            self.refresh()
        elif not self.disable:
            self.write(msg, file=self.fp)
        return True

    def unpause(self) -> None:
        """Restart the clock after a pause, so that the pause does not lower the rate."""
        if self.disable:
            return
        cur_t = self._time()
        self.start_t += cur_t - self.last_print_t
        self.last_print_t = cur_t

    def reset(self, total: float | None = None) -> None:
        """Start over at 0 (of `total`, when given), keeping the bar."""
        self.n = 0
        if total is not None:
            self.total = None if total == float("inf") else total
        if self.disable:
            return
        self.last_print_n, self._pushed = 0, 0
        self.last_print_t = self.start_t = self._time()
        self._ema_dn, self._ema_dt = EMA(self.smoothing), EMA(self.smoothing)
        self._ema_miniters = EMA(self.smoothing)
        if self._manager is not None:
            self._manager.update(self._name, completed=0)
        self.refresh()

    def moveto(self, n: int) -> None:
        """tqdm moves its cursor; the live display places bars itself."""

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """Set the label (`desc: `, as tqdm)."""
        self.desc = desc + ": " if desc else ""
        if refresh:
            self.refresh()

    def set_description_str(self, desc: str | None = None, refresh: bool = True) -> None:
        """Set the label exactly."""
        self.desc = desc or ""
        if refresh:
            self.refresh()

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        """Status after the counts: `loss=0.312, lr=0.01` (a mapping or pairs, then keywords
        in sorted order; numbers with three significant figures, as tqdm)."""
        values = dict([] if ordered_dict is None else ordered_dict)
        for key in sorted(kwargs):
            values[key] = kwargs[key]
        parts = []
        for key, value in values.items():
            shown = self.format_num(value) if isinstance(value, Number) else str(value)
            parts.append(f"{key}={shown.strip()}")
        self.postfix = ", ".join(parts)
        if refresh:
            self.refresh()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Status after the counts, as given."""
        self.postfix = str(s)
        if refresh:
            self.refresh()

    @property
    def format_dict(self) -> dict[str, Any]:
        """What the line is made of (tqdm's fields; `format_meter(**format_dict)`)."""
        return {
            "n": self.n,
            "total": self.total,
            "elapsed": self._time() - self.start_t if hasattr(self, "start_t") else 0,
            "ncols": self.ncols,
            "nrows": self.nrows,
            "prefix": self.desc,
            "ascii": self.ascii,
            "unit": self.unit,
            "unit_scale": self.unit_scale,
            "rate": self._ema_dn() / self._ema_dt() if self._ema_dt() else None,
            "bar_format": self.bar_format,
            "postfix": self.postfix,
            "unit_divisor": self.unit_divisor,
            "initial": self.initial,
            "colour": self.colour,
        }

    # Python's protocols, as tqdm's.

    def __str__(self) -> str:
        return self.format_meter(**self.format_dict)

    __repr__ = __str__

    def __enter__(self) -> progress_bar[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit anything may be gone
            self.close()


def trange(*args: int, **kwargs: Any) -> progress_bar[int]:
    """`progress_bar(range(*args), **kwargs)`, as tqdm's trange."""
    return progress_bar(range(*args), **kwargs)


tqdm = progress_bar
