"""The TipiError hierarchy: every failure a user can cause, with a hint and an exit code."""

from __future__ import annotations

import os
from pathlib import Path

_TIPI_DIR = str(Path(__file__).resolve().parent)


class Location:
    """Where in a config file something was declared (any part may be unknown).

    Immutable, compared and hashed by value, like the frozen dataclass it was; written out
    because every command imports this module, and a dataclass costs the `dataclasses` module
    (with `inspect`) and an `exec` per class, which the no-op fast path (_fastpath.py) cannot
    afford.
    """

    __slots__ = ("file", "key", "line")
    __match_args__ = ("file", "key", "line")

    file: Path | None
    key: str | None
    line: int | None

    def __init__(
        self, file: Path | None = None, key: str | None = None, line: int | None = None
    ) -> None:
        object.__setattr__(self, "file", file)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "line", line)

    def _fields(self) -> tuple[Path | None, str | None, int | None]:
        return (self.file, self.key, self.line)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"Location(file={self.file!r}, key={self.key!r}, line={self.line!r})"

    def __setattr__(self, name: str, value: object) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot assign to field '{name}'")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field '{name}'")

    def __reduce__(self) -> tuple[type[Location], tuple[object, ...]]:
        return (self.__class__, self._fields())

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(_display_path(self.file) + (f":{self.line}" if self.line else ""))
        if self.key:
            parts.append(self.key)
        return ": ".join(parts)


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class TipiError(Exception):
    """Base of every error tipi reports to a user; the CLI maps it to a message and exit code.

    Attributes:
        exit_code: the process exit code the CLI uses (2: usage/config, 1: a step failed).
        hint: one sentence saying what to do next, or None.
        location: the file, key and line the error is about, when it is about a config.
    """

    exit_code: int = 2

    def __init__(
        self, message: str, *, hint: str | None = None, location: Location | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location

    def __str__(self) -> str:
        where = str(self.location) if self.location else ""
        return f"{where}: {self.message}" if where else self.message


class ConfigError(TipiError):
    """A pipeline file is malformed or names something that does not fit (exit 2)."""


class DefinitionError(TipiError):
    """A type, class or graph definition is wrong: unknown type, bad class, cycle (exit 2)."""


class UsageError(TipiError):
    """The command line asks for something that does not exist or cannot be done (exit 2)."""


class ProcessFailure(TipiError):
    """A process raised while executing; `__cause__` holds the user's exception (exit 1)."""

    exit_code = 1

    def __init__(self, step: str, error: BaseException, *, hint: str | None = None) -> None:
        super().__init__(f"step '{step}' failed: {describe_error(error)}", hint=hint)
        self.step = step
        self.error = error


class BuildFailed(TipiError):
    """Several steps failed in a `--keep-going` make (exit 1); `failures` holds each one."""

    exit_code = 1

    def __init__(self, failures: list[tuple[str, TipiError]], *, hint: str | None = None) -> None:
        names = ", ".join(f"'{step}'" for step, _ in failures)
        super().__init__(f"{len(failures)} steps failed: {names}", hint=hint)
        self.failures = failures


class PermanenceFailure(TipiError):
    """A permanence raised in one of its lifecycle phases (exit 1)."""

    exit_code = 1

    def __init__(self, name: str, phase: str, error: BaseException) -> None:
        super().__init__(f"permanence '{name}' failed in {phase}(): {describe_error(error)}")
        self.name = name
        self.phase = phase
        self.error = error


class WorkerFailure(TipiError):
    """A step failed in a worker process or on a cluster; `details` is its traceback as text
    (the exception itself stays over there: exceptions do not all survive pickling)."""

    exit_code = 1

    def __init__(
        self,
        step: str,
        message: str,
        *,
        details: str = "",
        hint: str | None = None,
        exit_code: int = 1,
    ) -> None:
        super().__init__(message, hint=hint)
        self.step = step
        self.details = details
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[object, ...]:
        # Exceptions pickle as cls(*args); this one's args are not its signature.
        return (self.__class__, (self.step, self.message), dict(self.__dict__))

    @classmethod
    def describe(cls, step: str, error: BaseException) -> WorkerFailure:
        """The text form of `error`, made where it happened, to be sent back to the driver."""
        if isinstance(error, TipiError):
            cause = getattr(error, "error", None) or error.__cause__
            details = user_traceback(cause) if cause is not None else ""
            return cls(
                step, str(error), details=details, hint=error.hint, exit_code=error.exit_code
            )
        details = user_traceback(error)
        return cls(step, f"step '{step}' failed: {describe_error(error)}", details=details)


def describe_error(error: BaseException) -> str:
    """`Type: message` of a step's exception; one whose `__str__` raises is still a failure
    of the step, worded as Python's own traceback words it, never an error of tipi."""
    try:
        text = str(error)
    except Exception:
        text = "<exception str() failed>"
    return f"{type(error).__name__}: {text}"


def user_traceback(error: BaseException, full: bool = False) -> str:
    """The traceback of `error`, without tipi's own frames unless `full`."""
    import traceback  # only when a step failed: it costs every other command ~8 ms

    exc = traceback.TracebackException.from_exception(error)
    if not full:
        kept = [f for f in exc.stack if not f.filename.startswith(_TIPI_DIR)]
        hidden = len(exc.stack) - len(kept)
        # The standard library's frames under the user's last line (pathlib's open inside
        # write_text): the user's line is where to look, the error line says what failed.
        inner = len(kept)
        while inner > 1 and kept[inner - 1].filename.startswith(_stdlib()):
            inner -= 1
        library = len(kept) - inner
        exc.stack = traceback.StackSummary.from_list(kept[:inner])
        exc.__cause__ = exc.__context__ = None
        also = f", {library} standard library frame(s)" if library else ""
        header = f"Traceback ({hidden} tipi frame(s){also} hidden; --debug shows them):\n"
        body = "".join(exc.format())
        return header + body.split("\n", 1)[1] if body.startswith("Traceback") else header + body
    return "".join(exc.format())


def _stdlib() -> str:
    import sysconfig

    return sysconfig.get_paths()["stdlib"] + os.sep


class PipelineInterrupted(TipiError):
    """The run was interrupted (Ctrl-C); every initialized permanence was cleaned up."""

    exit_code = 130


class AccessError(TipiError):
    """The file system refused tipi a file or folder it needs: permissions, an owner other
    than the user, a read-only file system (exit 2: the machine's setup, neither a failed step
    nor a bug in tipi). `path` is the one to fix, which may be a folder above the one used."""

    def __init__(self, path: Path, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path

    @classmethod
    def about(cls, path: Path) -> AccessError:
        """The error for `path`, found unusable by a check made before using it: it names
        what on the way to it lacks which permission."""
        import errno

        culprit, problem = _refused_at(Path(os.path.abspath(path)))
        code = errno.EROFS if _read_only(culprit) else errno.EACCES
        return cls._make(culprit, problem, code, "permission denied")

    @classmethod
    def from_os_error(cls, error: BaseException) -> AccessError | None:
        """`error` as a user error when it is the file system refusing a path (EACCES, EPERM,
        EROFS); None for any other error, which stays what it was."""
        import errno

        if not isinstance(error, OSError) or error.errno not in _REFUSALS:
            return None
        given = (error.filename2, error.filename)
        named = [os.fsdecode(p) for p in given if isinstance(p, str | bytes | os.PathLike)]
        if not named:
            return None
        found = [_refused_at(Path(os.path.abspath(p))) for p in named]
        # a rename names two paths: the one whose check found something is the one to fix
        culprit, problem = next((f for f in found if f[1]), found[-1])
        refusal = error.strerror or errno.errorcode.get(error.errno, "refused")
        made = cls._make(culprit, problem, error.errno, refusal.lower())
        made.__cause__ = error  # --debug shows where it happened
        return made

    @classmethod
    def _make(cls, path: Path, problem: str, code: int, refusal: str) -> AccessError:
        import errno

        shown = _shown_path(path)
        if code == errno.EROFS:
            return cls(
                path,
                f"{shown} is on a read-only file system",
                hint="tipi writes its state in .tipi_cache/ and each step's outputs in place: "
                "run it on a writable copy of the project",
            )
        owner, me, mode = _ownership(path)
        what = f" {problem}" if problem else ""
        facts = f"mode {mode}, owner {owner}; tipi runs as {me}" if mode else f"tipi runs as {me}"
        message = f"{refusal}: {shown}{what} ({facts})"
        if owner not in (me, "?"):
            hint = f"it belongs to {owner}: run tipi as {owner}, or `chown -R {me} {shown}`"
        else:
            change = "-R u+rwX" if os.path.isdir(path) else "u+rw"
            hint = f"give yourself access: `chmod {change} {shown}`"
        return cls(path, message, hint=hint)


_REFUSALS = (13, 1, 30)  # EACCES, EPERM, EROFS (the same numbers on every POSIX system)


def _refused_at(path: Path) -> tuple[Path, str]:
    """The path on the way to `path` that the user may not use, and what it lacks: a folder
    above that cannot be entered, `path` itself unreadable or unwritable, or the folder a new
    file goes in. ("", unchanged path) when every permission is there (another cause: an
    immutable file, a mandatory access control)."""
    for folder in reversed(path.parents):
        if not os.path.isdir(folder):
            break  # missing from here down: what counts is the folder a new one goes in
        if not os.access(folder, os.X_OK):
            return folder, "cannot be entered"
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.access(path, os.X_OK):
            return path, "cannot be entered"
        if not os.access(path, os.R_OK):
            return path, "cannot be read"
        if not os.access(path, os.W_OK):
            return path, "cannot be written"
    parent = path.parent
    while not os.path.isdir(parent) and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        return parent, "cannot be written"
    return path, ""


def _read_only(path: Path) -> bool:
    """Whether `path` (or the nearest folder above it that exists) is on a read-only mount."""
    while not os.path.exists(path) and path != path.parent:
        path = path.parent
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return False


def _ownership(path: Path) -> tuple[str, str, str]:
    """(owner of `path`, the user tipi runs as, its mode in octal); '?' where unknown."""
    try:
        st = os.stat(path)
    except OSError:
        return "?", _user_name(os.geteuid() if hasattr(os, "geteuid") else None), ""
    import stat

    me = os.geteuid() if hasattr(os, "geteuid") else None
    return _user_name(st.st_uid), _user_name(me), f"{stat.S_IMODE(st.st_mode):03o}"


def _user_name(uid: int | None) -> str:
    if uid is None:
        return "?"
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def _shown_path(path: Path) -> str:
    """`path` relative to the working folder when under it (no resolving: a folder on the
    way may not be readable)."""
    try:
        return os.path.relpath(path) if path.is_relative_to(os.getcwd()) else str(path)
    except (OSError, ValueError):
        return str(path)
