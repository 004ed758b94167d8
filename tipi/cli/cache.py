"""`tipi cache gc | push | pull`: manage the run cache and share it through a remote."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from tipi.cli.app import app, guarded, stderr, stdout
from tipi.errors import TipiError

cache_app = typer.Typer(
    name="cache",
    help="The run cache: outputs of earlier runs, restored when a fingerprint matches again.",
    no_args_is_help=True,
)
app.add_typer(cache_app)

RemoteArg = Annotated[
    str,
    typer.Option(
        "--remote", metavar="URL", help="A directory, file://, s3://, gs:// (fsspec) URL."
    ),
]


class TransferFailed(TipiError):
    """A push or pull stopped on a file system error (a full disk, a lost connection)."""

    exit_code = 1


def _failed(action: str, remote: str, exc: OSError, whole: str) -> TransferFailed:
    """Why a push or pull stopped, in one line (the remote's cause, or the local error)."""
    from tipi.runcache.remote_errors import RemoteUnavailable

    cause = exc.cause if isinstance(exc, RemoteUnavailable) else str(exc)
    return TransferFailed(
        f"could not {action} {remote}: {cause}",
        hint=f"what was {whole} is whole and usable; {action.split()[0]} again once that is fixed",
    )


def _warn(message: str) -> None:
    stderr().print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def _cache_dir():
    from tipi.config.project import require_project_root
    from tipi.state.layout import CACHE_DIR

    return require_project_root() / CACHE_DIR


def _store():
    from tipi.runcache.content import ContentStore

    return ContentStore(_cache_dir(), _warn)


def _remote(url: str):
    from tipi.errors import UsageError

    if not url.strip():  # fsspec reads "" as the working directory: the project's own root
        raise UsageError(
            "--remote is empty",
            hint="give the remote cache's URL (--remote s3://bucket/prefix); in CI, check the "
            "variable that holds it is set for this job",
        )
    from tipi.runcache.remote import RemoteStore

    return RemoteStore(url, _warn)


def _lock():
    from tipi.state.lock import ProjectLock

    lock = ProjectLock(_cache_dir(), lambda m: stdout().print(m))
    lock.acquire()
    return lock


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return str(count)


@cache_app.command("gc")
@guarded
def gc_command(
    keep_last: Annotated[
        int | None,
        typer.Option("--keep-last", metavar="N", help="Keep the N newest runs of each step."),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option("--max-size", metavar="SIZE", help="Then drop the oldest runs to fit (2GB)."),
    ] = None,
) -> None:
    """Remove old runs from the run cache, and the files no remaining run needs."""
    from tipi.errors import UsageError
    from tipi.runcache.collect import collect, parse_size

    if keep_last is None and max_size is None:
        raise UsageError("say what to keep", hint="tipi cache gc --keep-last 3, or --max-size 2GB")
    limit = parse_size(max_size) if max_size is not None else None
    lock = _lock()
    try:
        done = collect(_store(), keep_last, limit)
    finally:
        lock.release()
    stdout().print(
        f"removed {done.records} run(s) and {done.objects} file(s) ({_size(done.bytes)}); "
        f"kept {done.kept_records} run(s) ({_size(done.kept_bytes)})",
        highlight=False,
    )


@cache_app.command("push")
@guarded
def push_command(remote: RemoteArg) -> None:
    """Upload the runs the remote does not have (objects first: safe to run concurrently)."""
    try:
        done = _remote(remote).push(_store())
    except OSError as exc:
        raise _failed("push to", remote, exc, "uploaded") from None
    stdout().print(
        f"pushed {done.records} run(s), {done.objects} file(s) ({_size(done.bytes)}) to {remote}",
        highlight=False,
    )


@cache_app.command("pull")
@guarded
def pull_command(remote: RemoteArg) -> None:
    """Download the runs this project does not have; the next make restores what matches."""
    lock = _lock()
    store = _store()
    try:
        done = _remote(remote).pull(store)
    except OSError as exc:
        raise _failed("pull from", remote, exc, "downloaded") from None
    finally:
        store.close()  # index the pack of what was pulled (runcache/packs.py)
        lock.release()
    stdout().print(
        f"pulled {done.records} run(s), {done.objects} file(s) ({_size(done.bytes)}) from {remote}",
        highlight=False,
    )
