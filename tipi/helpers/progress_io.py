"""The class-level side of progress_bar's tqdm API: the write lock, `write()` above the bars,
`external_write_mode()`, `wrapattr()`, the text formatters, and tqdm's moving average."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import IO, Any, ClassVar

from tipi.report import meter
from tipi.report.live import LiveProgress


class EMA:
    """Exponential moving average, debiased for its first values (tqdm's `smoothing`):
    `smoothing` 0 is the plain average, 1 the last value."""

    def __init__(self, smoothing: float = 0.3) -> None:
        self.alpha = smoothing
        self.last = 0.0
        self.calls = 0

    def __call__(self, x: float | None = None) -> float:
        beta = 1 - self.alpha
        if x is not None:
            self.last = self.alpha * x + beta * self.last
            self.calls += 1
        return self.last / (1 - beta**self.calls) if self.calls else self.last


class WriteLock:
    """tqdm's write lock: reentrant, and picklable (for `process_map`'s workers), where a
    fresh thread lock replaces the original on the other side."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        return self._lock.acquire(*args, **kwargs)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._lock = threading.RLock()


class _Wrapped:
    """`stream` whose `method` advances a bar by the length of what it writes or reads."""

    def __init__(self, callback: Callable[[int], Any], stream: Any, method: str) -> None:
        self._callback, self._stream, self._method = callback, stream, method

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._stream, name)
        if name != self._method:
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            out = attr(*args, **kwargs)
            data = args[0] if name == "write" and args else out
            self._callback(len(data) if data is not None else 0)
            return out

        return counted

    def __enter__(self) -> _Wrapped:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _is_terminal_behind_display(fp: Any) -> bool:
    """A stream written around Rich's redirection, onto the lines the live display redraws."""
    board = LiveProgress.current()
    if board is None:
        return False
    return fp is sys.__stdout__ or fp is sys.__stderr__ or fp is board.console.file


class TqdmClassAPI:
    """tqdm's class methods and static formatters, for progress_bar to inherit."""

    _lock: ClassVar[WriteLock]
    monitor_interval: ClassVar[float] = 0  # tqdm's monitor thread: tipi runs none
    monitor: ClassVar[Any] = None

    format_sizeof = staticmethod(meter.format_sizeof)
    format_interval = staticmethod(meter.format_interval)
    format_num = staticmethod(meter.format_num)
    format_meter = staticmethod(meter.format_meter)

    @staticmethod
    def status_printer(file: IO[str]) -> Callable[[str], None]:
        """A function that writes a status line to `file` (plain: one line each call)."""

        def show(text: str) -> None:
            try:
                file.write(text + "\n")
                file.flush()
            except (ValueError, OSError, AttributeError):
                pass

        return show

    @classmethod
    def get_lock(cls) -> WriteLock:
        """The lock `write()` and the bars' output hold (made on first use)."""
        if "_lock" not in cls.__dict__:
            cls._lock = WriteLock()
        return cls._lock

    @classmethod
    def set_lock(cls, lock: Any) -> None:
        """Use `lock` instead (tqdm.contrib.concurrent shares one with its workers)."""
        cls._lock = lock

    @classmethod
    @contextmanager
    def external_write_mode(
        cls, file: IO[str] | None = None, nolock: bool = False
    ) -> Iterator[None]:
        """Hold the lock while something else writes to the terminal. Writes to
        sys.stdout/sys.stderr already land above the live bars (Rich redirects them)."""
        with nullcontext() if nolock else cls.get_lock():
            yield

    @classmethod
    def write(
        cls, s: str, file: IO[str] | None = None, end: str = "\n", nolock: bool = False
    ) -> None:
        """Print `s` without breaking the bars: above them in a terminal, as a line of its
        own in a pipe. `file`: default stdout."""
        fp = file if file is not None else sys.stdout
        if fp is None:
            return
        with cls.external_write_mode(file=file, nolock=nolock):
            if _is_terminal_behind_display(fp):
                board = LiveProgress.current()
                board.console.print(s, end=end, markup=False, highlight=False, soft_wrap=True)
                return
            fp.write(s)
            fp.write(end)

    @classmethod
    @contextmanager
    def wrapattr(
        cls, stream: Any, method: str, total: float | None = None, bytes: bool = True, **kwargs: Any
    ) -> Iterator[Any]:
        """`with progress_bar.wrapattr(f, "read", total=size) as f:` - a bar of what passes
        through `stream.method` (in bytes, scaled by 1024, unless `bytes=False`)."""
        units = {"unit": "B", "unit_scale": True, "unit_divisor": 1024} if bytes else {}
        with cls(total=total, **{**units, **kwargs}) as bar:  # type: ignore[call-arg]
            yield _Wrapped(bar.update, stream, method)


class TqdmProtocols:
    """len(), bool(), `in`, reversed(), ordering by position and the position of a new bar,
    as tqdm's (a mixin: the attributes are progress_bar's)."""

    _instances: Any
    iterable: Any
    total: float | None
    pos: int

    def __len__(self) -> int:
        it = self.iterable
        if it is None:
            return self.total  # type: ignore[return-value]
        if hasattr(it, "shape"):
            return it.shape[0]  # type: ignore[no-any-return]
        if hasattr(it, "__len__"):
            return len(it)  # type: ignore[arg-type]
        if hasattr(it, "__length_hint__"):
            return it.__length_hint__()  # type: ignore[no-any-return]
        return self.total  # type: ignore[return-value]

    def __bool__(self) -> bool:
        if self.total is not None:
            return self.total > 0
        if self.iterable is None:
            raise TypeError("bool() undefined when iterable == total == None")
        return bool(self.iterable)

    def __contains__(self, item: object) -> bool:
        contains = getattr(self.iterable, "__contains__", None)
        return contains(item) if contains is not None else item in self.__iter__()

    def __reversed__(self) -> Iterator[Any]:
        if not hasattr(self.iterable, "__reversed__"):
            raise TypeError("'progress_bar' object is not reversible")
        return self._iterate(reversed(self.iterable))  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return (
            abs(self.pos) == abs(other.pos) if isinstance(other, TqdmProtocols) else NotImplemented
        )

    def __lt__(self, other: TqdmProtocols) -> bool:
        return abs(self.pos) < abs(other.pos)

    def __le__(self, other: TqdmProtocols) -> bool:
        return self < other or self == other

    def __gt__(self, other: TqdmProtocols) -> bool:
        return not self <= other

    def __ge__(self, other: TqdmProtocols) -> bool:
        return not self < other

    @classmethod
    def _get_free_pos(cls, instance: Any = None) -> int:
        taken = {
            abs(i.pos) for i in list(cls._instances) if i is not instance and hasattr(i, "pos")
        }
        return min(set(range(len(taken) + 1)) - taken)


class BytesOut:
    """A binary stream written with str (tqdm's `write_bytes`)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> None:
        self.stream.write(text.encode(self.encoding))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def isatty(file: Any) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def supports_unicode(file: Any) -> bool:
    encoding = str(getattr(file, "encoding", None) or "").lower()
    return encoding in ("utf-8", "utf8", "u8", "utf_8") or encoding.startswith("utf")


def known_colour(colour: str) -> bool:
    from rich.color import Color, ColorParseError

    try:
        Color.parse(colour)
    except ColorParseError:
        return False
    return True
